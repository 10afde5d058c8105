"""The charts' border titles: the latest values, written as fully as the chart's width allows.

Each title comes as variants, longest first; ``fit`` takes the first one that fits, so that at 80 or 120 columns a
title drops its words before its numbers (``loss ━ train 5.017e-5 ━ val 0.1393`` → ``━ train 5.02e-5 ━ val 0.139``
→ ``━ 5.02e-5 ━ 0.139``): the legend's coloured strokes still say which line is which. Markup (the strokes'
colours) is not counted.
"""
from __future__ import annotations

from typing import Sequence

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text

from .plotext_build import RGB
from .run_state import RunState
from .ticks import fmt_step, fmt_value

Overlay = tuple[str, RunState, RGB]  # another run laid over the current one: its label, its state, its colour
BORDER = 6  # "╭─ " and " ─╮" around a border title


def fit(variants: Sequence[str], width: int) -> str:
    """The first of ``variants`` (markup) whose text fits a border title of a widget ``width`` cells wide; the last,
    shortest one when none does (the border then cuts it)."""
    room = width - BORDER
    for variant in variants:
        if cell_len(Text.from_markup(variant).plain) <= room:
            return variant
    return variants[-1]


def stroke(color: RGB, label: str = "") -> str:
    """A legend's coloured line, with its label when there is one."""
    r, g, b = color
    return f"[rgb({r},{g},{b})]━{' ' + escape(label) if label else ''}[/]"


def _value(value: float | None, digits: int) -> str:
    return "" if value is None else f" {fmt_value(value, digits)}"


def _others(overlays: Sequence[Overlay], name: str, digits: int, values: bool) -> str:
    """Other runs' legends: their labels (in every variant: without them their lines cannot be told apart), with
    their latest ``name`` where ``values``."""
    return "".join(" " + stroke(color, label) + (_value(run.latest.get(name), digits) if values else "")
                   for label, run, color in overlays)


def loss_titles(state: RunState, train: RGB, val: RGB, overlays: Sequence[Overlay]) -> list[str]:
    """The loss chart: train and val loss (val when the run has some or nothing is overlaid), then other runs."""
    latest = state.latest
    with_val = bool(len(state.series["val_loss"])) or not overlays
    out = []
    for prefix, digits, labels, values in (("loss ", 4, True, True), ("loss ", 4, True, False), ("", 3, True, False),
                                           ("", 3, False, False)):
        title = prefix + stroke(train, "train" if labels else "") + _value(latest.get("train_loss"), digits)
        if with_val:
            title += " " + stroke(val, "val" if labels else "") + _value(latest.get("val_loss"), digits)
        out.append(title + _others(overlays, "train_loss", digits, values))
    return out


def metric_titles(state: RunState, overlays: Sequence[Overlay]) -> list[str]:
    """The validation metric with its best value and step, then other runs' strokes."""
    name, latest, best = state.metric_name or "metric", state.latest.get("metric"), state.best
    out = []
    for words, digits, where, values in ((f"val {name}", 4, True, True), (f"val {name}", 4, True, False),
                                         (name, 3, True, False), (name, 3, False, False), ("", 3, False, False)):
        title = (words + _value(latest, digits)).strip() or "val"
        if best is not None:
            title += f" · best {fmt_value(best[1], digits)}" + (f" @ {fmt_step(best[0])}" if where else "")
        out.append(title + _others(overlays, "metric", digits, values))
    return out


def grad_titles(state: RunState) -> list[str]:
    value = state.latest.get("grad_norm")
    return [f"grad norm{_value(value, 4)}", f"grad{_value(value, 3)}"]


def subtitles(smoothed: bool, from_step: float | None, log: str) -> list[str]:
    """``log``: "" (linear), "log" (chosen with l) or "log (auto)"."""
    parts = [p for p in ("smoothed" if smoothed else "", f"from step {fmt_step(round(from_step))}"
                         if from_step is not None else "", log) if p]
    short = [p.replace("smoothed", "ema").replace("log (auto)", "log").replace("from step ", "≥") for p in parts]
    return [" · ".join(parts), " · ".join(short)]
