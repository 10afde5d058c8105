"""The dataset pane: split sizes, input shape, the class histogram, and what the data checks found."""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.style import Style
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from recipe_tui.core.events import CheckResult

from ..bridge import DataSummary
from ..evidence import class_bars
from ..marks import MARK_CLASSES, follow_theme, mark, styled

MAX_CLASSES = 40  # beyond this the histogram shows the most and least frequent classes only


class DatasetPane(VerticalScroll):
    ALLOW_MAXIMIZE = True  # z zooms it (containers are not maximizable by default)
    COMPONENT_CLASSES = {*MARK_CLASSES, "dataset--bar"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Dataset"
        self.summary: DataSummary | None = None
        self.message = "loading…"
        self.checks: list[tuple[str, str, CheckResult | None]] = []  # (item id, status, last result)
        self.body = Static(self.message, id="dataset-body")

    def compose(self):
        yield self.body

    def show_summary(self, summary: DataSummary) -> None:
        self.summary = summary
        self._redraw()

    def show_message(self, message: str) -> None:
        """E.g. why the data did not load."""
        self.message = message
        self._redraw()

    def show_checks(self, checks: list[tuple[str, str, CheckResult | None]]) -> None:
        self.checks = checks
        self._redraw()

    def _redraw(self) -> None:
        # What the checks found comes before the histogram: it is the part that needs reading.
        parts: list[RenderableType] = []
        s = self.summary
        if s is None:
            parts.append(Text(self.message, style="dim"))
        else:
            shape = "×".join(str(d) for d in s.input_shape)
            classes = f" · {s.num_classes} {'tokens' if s.kind == 'sequence' else 'classes'}" if s.num_classes else ""
            parts.append(Text.assemble((f"{s.kind} {shape}", "bold"), classes))
            parts.append(Text("  ".join(f"{name} {n:,}" for name, n in s.sizes)))
        for item_id, status, res in self.checks:
            summary = res.summary if res is not None else "not run: select it, press enter"
            parts.append(Text.assemble(mark(status, self), f" {item_id}: ", (summary, "" if res else "dim")))
        if s is not None:
            parts.append(_histogram(s, self.content_size.width, styled(self, "dataset--bar")) if s.histograms
                         else Text(s.note, style="dim"))
        self.body.update(Group(*parts))

    def on_mount(self) -> None:
        follow_theme(self, self._redraw)

    def on_resize(self) -> None:
        self._redraw()  # bar lengths follow the pane's width


def _histogram(s: DataSummary, width: int, bar_style: Style) -> RenderableType:
    """One row per class: a bar for the first split (train) and the count of every split."""
    first = next(iter(s.histograms.values()))
    order = list(range(len(first)))
    if len(order) > MAX_CLASSES:  # keep the extremes: imbalance is what the histogram is for
        by_count = sorted(order, key=lambda c: first[c], reverse=True)
        order = sorted(by_count[:MAX_CLASSES // 2]) + sorted(by_count[-MAX_CLASSES // 2:])
    return class_bars(s.histograms, s.class_names, width, bar_style, order)
