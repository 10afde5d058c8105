"""The learning rate as one line of the charts pane: ``lr 0.003 · constant``, or, while a schedule moves it, a
sparkline of its history with the current value and its range. A constant lr is one number: it took a quarter of
the charts as a flat line, and it never needs redrawing.
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from ..series import MinMaxSeries
from ..ticks import fmt_step, fmt_value
from .plot import RGB

SPARK = "▁▂▃▄▅▆▇█"


class LrStrip(Widget):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text("lr –", style="dim")
        self._key: object = None
        self.builds = 0

    def invalidate(self) -> None:
        self._key = None

    def show(self, series: MinMaxSeries, color: RGB) -> bool:
        """Redraw if what the line says changed; returns whether it did."""
        width = self.content_size.width
        constant = len(series) > 0 and series.hi - series.lo <= 1e-12 * abs(series.hi)
        key = (width, color, series.hi if constant else len(series), constant)
        if key == self._key or width <= 0:
            return False
        self._key = key
        self._text = self.line(series, width, color)
        self.builds += 1
        self.refresh()
        return True

    @staticmethod
    def line(series: MinMaxSeries, width: int, color: RGB) -> Text:
        if not len(series) or series.last is None:
            return Text("lr –", style="dim")
        last = series.last[1]
        if series.hi - series.lo <= 1e-12 * abs(series.hi):
            return Text.assemble(("lr ", "bold"), fmt_value(last), (" · constant", "dim"))
        tail = f" {fmt_value(last)} at step {fmt_step(series.last[0])} (range {fmt_value(series.lo)}–{fmt_value(series.hi)})"
        room = max(8, width - 3 - len(tail))
        _, ys = series.points(room // 2)
        if len(ys) > room:
            ys = ys[len(ys) - room:]
        span = series.hi - series.lo
        spark = "".join(SPARK[min(7, int((y - series.lo) / span * 8))] for y in ys)
        return Text.assemble(("lr ", "bold"), (spark, Style(color=f"rgb({color[0]},{color[1]},{color[2]})")), tail)

    def render(self) -> Text:
        return self._text
