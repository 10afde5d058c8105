"""The item detail pane: the selected item's guidance, and its last result's verdict, evidence and hint.

For ``batch-view`` it also draws the captured input tensors when the result carries them
(see ``batch_preview``); the traceback of an ``error`` result is shown in full here.
"""
from __future__ import annotations

import time
from typing import Any

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from recipe_tui.core.config import Item
from recipe_tui.core.events import CheckResult

from ..evidence import cell_text, render_evidence
from ..marks import MARK_CLASSES, MARKS, follow_theme, mark, status_of, styled
from ..stage3_evidence import DRAWN, evidence_chart, filter_grid
from .curve_chart import CurveChart

HIDDEN_METRICS = {"samples"}  # batch-view's captured examples: drawn by batch_preview, not listed


class ItemDetail(VerticalScroll):
    ALLOW_MAXIMIZE = True  # z zooms it (containers are not maximizable by default)
    COMPONENT_CLASSES = {*MARK_CLASSES, "item-detail--bar"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Item"
        self.body = Static("", id="detail-body")  # focusable (tab): ↑/↓ scroll a long traceback
        self.chart = CurveChart(id="detail-chart")  # lr-find's loss vs lr, capacity's loss vs parameters
        self.chart.display = False
        self._shown: tuple[Any, ...] | None = None  # the last show()'s arguments
        self._live: dict[str, list[dict[str, Any]]] | None = None
        self._width = 0

    def compose(self):
        yield self.body
        yield self.chart

    def on_mount(self) -> None:
        self._reshow()  # filled in before mount: again, with the marks in app.tcss's colours
        follow_theme(self, self._reshow)

    def on_resize(self) -> None:
        if self.content_size.width != self._width:  # tables, bars and sparklines follow the pane's width
            self._width = self.content_size.width
            self._reshow()

    def _reshow(self) -> None:
        if self._shown is not None:
            self.show(*self._shown, home=False, live=self._live)  # the same item: the reader keeps their place

    def show(self, item: Item, stage: str, status: str, result: CheckResult | None = None,
             when: float | None = None, detail: str = "", *, home: bool = True,
             live: dict[str, list[dict[str, Any]]] | None = None) -> None:
        """``live``: the tables of the item's check while it runs (rows as they come); shown instead of the last
        result."""
        self._shown = (item, stage, status, result, when, detail)
        self._live = live
        self.border_title = item.id
        parts: list[RenderableType] = [
            Text.assemble((item.title, "bold"), "\n",
                          (f"{stage} · {'automated: enter runs it' if item.check else _manual_hint(item.id)}", "dim")),
            Text(""),
            Text(item.guidance, style="italic"),
        ]
        self._chart(item.check or "", live if live else result.metrics if result is not None else None)
        if live:
            parts += [Text(""), _live(live, self.content_size.width or 60, styled(self, "item-detail--bar"))]
        elif result is not None:
            parts += [Text(""), _verdict(mark(status_of(result), self), status_of(result), result, when)]
            width = self.content_size.width or 60
            hidden = {*HIDDEN_METRICS, *DRAWN.get(item.check or "", ())}
            evidence = render_evidence(result.metrics, width, hidden, styled(self, "item-detail--bar"))
            if evidence is not None:
                parts.append(evidence)
            filters = filter_grid(result.metrics) if item.check == "first-layer" else None
            if filters is not None:
                parts.append(filters)
            preview = batch_preview(result.metrics) if item.id == "batch-view" else None
            if preview is not None:
                parts.append(preview)
            if result.hint:
                parts.append(Text.assemble(("→ ", "bold"), result.hint))
        elif status == "ticked":
            parts += [Text(""), Text.assemble(mark("ticked", self), " ticked")]
        if detail:
            parts += [Text(""), Text(detail.rstrip(), style="dim")]
        self._update(Group(*parts), home)

    def _chart(self, check_id: str, metrics: dict[str, Any] | None) -> None:
        """The check's curve under the text (lr-find, capacity: from its result, or its rows while it runs)."""
        spec = evidence_chart(check_id, metrics) if metrics else None
        self.chart.display = spec is not None
        if spec is not None:
            self.chart.chart_title = spec.title
            self.chart.plot(spec.curves, log_x=spec.log_x, log_y=spec.log_y, x_label=spec.x_label)

    def _update(self, content: RenderableType, home: bool = True) -> None:
        self.body.update(content)
        if home:
            self.scroll_home(animate=False)

    def show_stage(self, number: int, title: str, counts: dict[str, int]) -> None:
        self._shown = None
        self.chart.display = False
        self.border_title = f"stage {number}"
        summary = "  ".join(f"{MARKS[s][0]} {n}" for s, n in counts.items() if n)
        self._update(Group(Text(f"{number} {title}", style="bold"), Text(summary),
                           Text("enter runs every automated item of this stage; space folds it.", style="dim")))


def _live(tables: dict[str, list[dict[str, Any]]], width: int, bar: Any) -> RenderableType:
    """A running check's tables so far: the newest rows of each (a sweep of 20 trials shows its latest)."""
    from ..evidence import ROWS_MAX

    counts = ", ".join(f"{len(rows)} {name}" for name, rows in tables.items())
    shown = {name: rows[-ROWS_MAX:] for name, rows in tables.items()}
    more = [f"{name}: the last {ROWS_MAX} of {len(rows)}" for name, rows in tables.items() if len(rows) > ROWS_MAX]
    body = render_evidence(shown, width, (), bar)
    note = "  (" + "; ".join(more) + ")" if more else ""
    return Group(Text.assemble(("⟳ running", "bold"), f" — so far {counts}", (note, "dim")),
                 *([body] if body is not None else []))


def _manual_hint(item_id: str) -> str:
    return "press t (or enter) to train" if item_id == "train" else "manual: space ticks it"


def _verdict(marker: Text, status: str, res: CheckResult, when: float | None) -> Text:
    ago = f"  ({_ago(when)})" if when else ""
    return Text.assemble(marker, " ", (status.upper(), "bold"), "  ", res.summary, (ago, "dim"))


def _ago(when: float) -> str:
    s = max(0, time.time() - when)
    if s < 90:
        return f"{s:.0f}s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.0f} h ago"
    return time.strftime("%Y-%m-%d", time.localtime(when))


def batch_preview(metrics: dict[str, Any]) -> RenderableType | None:
    """The captured batch of ``batch-view`` (``metrics["samples"]``: one dict per example with ``x``,
    ``y`` and, for sequences, ``text``/``target_text``; for images ``x`` is C×H×W in [0, 1]).

    Sequences are shown as text; images are drawn with half blocks (``tui/halfblock.py``) on one
    brightness scale for the batch. Anything unexpected falls back to the metrics table above.
    """
    samples = metrics.get("samples")
    if not isinstance(samples, list) or not samples or not all(isinstance(s, dict) for s in samples):
        return None
    head = Text("the batch as the model gets it:", style="dim")
    if all("text" in s for s in samples):
        rows = [Text.assemble((repr(s["text"]), "bold"), " → ", repr(s.get("target_text", s.get("y", "")))) for s in samples]
        return Group(head, *rows)
    labels = [str(s.get("label", s.get("y", ""))) for s in samples]
    if all(_depth(s.get("x")) == 3 for s in samples):
        try:
            from ..halfblock import render_image
        except ImportError:
            return Text(f"{len(samples)} images captured; drawing them needs tui/halfblock.py", style="dim")
        lo, hi = _range(s["x"] for s in samples)  # one scale for the batch: brightness is comparable
        try:
            cells = [Group(render_image(s["x"], width=min(16, len(s["x"][0][0])), vmin=lo, vmax=hi, max_rows=8),
                           Text(label[:10], style="dim")) for s, label in zip(samples, labels)]
        except (TypeError, ValueError):
            return None
        return Group(head, Columns(cells, padding=(0, 1)))
    rows = [Text(f"{cell_text(s.get('x'))} → {label}") for s, label in zip(samples, labels)]
    return Group(head, *rows)


def _range(images: Any) -> tuple[float, float]:
    values = [v for img in images for plane in img for row in plane for v in row if isinstance(v, (int, float))]
    return (min(values), max(values)) if values else (0.0, 1.0)


def _depth(x: Any) -> int:
    depth = 0
    while isinstance(x, list) and x:
        depth, x = depth + 1, x[0]
    return depth
