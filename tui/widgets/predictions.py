"""The prediction dynamics pane: what the model predicts, at the latest evaluation, for a fixed handful of validation
examples (``Predictions`` events; ``core/probe.py``). Classifiers: a row per example with its true label, the
predicted one and small bars of the top class probabilities; language models: the sampled sequences (names for
``names-lm``); regression: targets beside predictions. It shows the run on the charts: live while training, or a
re-opened past run's last evaluation.
"""
from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.widgets import Static

from recipe_tui.core.events import Predictions

TOP = 3  # classes drawn per example, at most (as many as the pane's width takes)
BAR = 5  # cells of a probability bar
CLASS_CELLS = BAR + 8  # one class: "8 █████ .97 " with a class name of up to 2 characters
EIGHTHS = " ▏▎▍▌▋▊▉█"


class PredictionsPane(VerticalScroll):
    ALLOW_MAXIMIZE = True

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Predictions"
        self.body = Static("", id="predictions-body")
        self.shown: Predictions | None = None
        self._width = 0
        self._shape: tuple[object, ...] = ()  # what decides the body's height: a new one needs a layout pass

    def compose(self):
        yield self.body

    def on_resize(self) -> None:
        if self.content_size.width != self._width:  # as many classes per example as the width takes
            self._width = self.content_size.width
            self.show(self.shown)

    def show(self, event: Predictions | None) -> None:
        """The latest evaluation's predictions (None: no run, or a run from before they were recorded). The pane takes
        its place in the bottom row only once there is something to show (below 160 columns in place of the dataset
        pane: app.tcss)."""
        self.shown = event
        self._place(event is not None)
        if event is None:
            self._show_nothing()
            return
        self.border_title = f"Predictions · step {event.step:,}"
        # A classifier's rows are one line each (never wrapped): each evaluation of a run draws as many lines as the
        # last at the same width, and needs no layout pass (it reflows the whole screen, ~10 ms of the UI thread taken
        # from the trainer at every evaluation). Sampled text and numbers can wrap differently: always laid out.
        shape = (event.kind, len(event.examples), self.content_size.width) if event.kind == "classes" else ()
        self.body.update(render_predictions(event, self.content_size.width or 40),
                         layout=not shape or shape != self._shape)
        self._shape = shape

    def expect(self) -> None:
        """A run that records predictions starts: the pane takes its place now rather than at the run's first
        evaluation, where the layout pass (~100 ms of the UI thread at 160×50) would take the GIL from the trainer."""
        self.shown = None
        self._show_nothing()
        self._place(True)  # not through show(None), which would take the pane out of the row first

    def _show_nothing(self) -> None:
        self.border_title = "Predictions"
        self._shape = ()
        self.body.update(Text("no predictions yet: they are recorded at each evaluation", style="dim"))

    def _place(self, placed: bool) -> None:
        """The bottom row (this pane's parent) shows the pane: its class ``-predictions``, set only on a change (a class
        change is a layout pass)."""
        row = self.parent
        if isinstance(row, DOMNode) and row.has_class("-predictions") != placed:
            row.set_class(placed, "-predictions")


def render_predictions(event: Predictions, width: int = 40) -> RenderableType:
    """The renderable for one ``Predictions`` event in about ``width`` columns (Rich only: tests render it plainly)."""
    if event.kind == "classes":
        return _classes(event.examples, max(1, min(TOP, (width - 6) // CLASS_CELLS)))
    if event.kind == "text":
        rows = [Text.assemble((f"{i + 1:>2} ", "dim"), (str(ex.get("text", "")) or "∅", "bold"))
                for i, ex in enumerate(event.examples)]
        return Group(Text("sampled from the model:", style="dim"), *rows)
    table = Table.grid(padding=(0, 1))
    for column in ("target", "prediction"):
        table.add_column(column)
    for ex in event.examples:
        table.add_row(_numbers(ex.get("target")), _numbers(ex.get("prediction")))
    return Group(Text("target → prediction", style="dim"), table)


def _classes(examples: list[dict[str, Any]], top: int) -> RenderableType:
    """A row per example: ``3 ✔ 3 █████ .97 8 ▏ .02``: true label, right/wrong, then the ``top`` likeliest classes
    with bars of their probabilities (the true class green, a wrong prediction red)."""
    rows = []
    for ex in examples:
        label, predicted = ex.get("label"), ex.get("predicted")
        right = label == predicted
        line = Text.assemble((f"{label!s:>3} ", "bold"), ("✔ " if right else "✘ ", "green" if right else "red"),
                             no_wrap=True, overflow="ellipsis")  # one line per example (``show`` counts on it)
        for cls, p in _top(ex)[:top]:
            style = "green" if cls == str(label) else ("red" if cls == str(predicted) else "")
            line.append_text(Text.assemble((f"{cls} ", style), (bar(p), style or "dim"), f" {_p(p)} "))
        rows.append(line)
    return Group(Text("label · likeliest classes", style="dim"), *rows)


def _top(ex: dict[str, Any]) -> list[tuple[str, float]]:
    """The example's ``TOP`` most likely classes as (class, p), from ``probs`` (every class) or ``top`` (many)."""
    if isinstance(ex.get("probs"), list):
        pairs = [(str(i), float(p)) for i, p in enumerate(ex["probs"])]
    elif isinstance(ex.get("top"), dict):
        pairs = [(str(c), float(p)) for c, p in ex["top"].items()]
    else:
        return []
    return sorted(pairs, key=lambda cp: -cp[1])


def _p(p: float) -> str:
    """``.97``, ``1.0``: a probability in three characters."""
    return "1.0" if p >= 0.995 else f"{p:.2f}".lstrip("0")


def bar(p: float, width: int = BAR) -> str:
    """``p`` in [0, 1] as a bar ``width`` cells long, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[rest] if rest else "")).ljust(width)


def _numbers(values: Any) -> str:
    if isinstance(values, list):
        return " ".join(f"{v:.3g}" if isinstance(v, (int, float)) else str(v) for v in values)
    return str(values)
