"""A small chart of a check's curves, for a pane to embed: x/y lists, each curve in its own explicit colour, the
legend in the title, optional log axes. E.g. lr-find's loss against the learning rate (log x), capacity's loss
against the parameter count (log x).
"""
from __future__ import annotations

from itertools import cycle
from typing import Sequence

from rich.markup import escape

from ..ticks import fmt_value
from .plot import RGB, Curve, Plot

COLORS: tuple[RGB, ...] = ((80, 160, 255), (255, 160, 40), (90, 200, 120), (230, 100, 210), (80, 215, 215),
                           (235, 215, 80), (240, 95, 95), (170, 160, 255))
CurveData = tuple[str, Sequence[float], Sequence[float]]  # (label, xs, ys)


class CurveChart(Plot):
    DEFAULT_CSS = """
    CurveChart {
        height: 12;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    """

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(title, id=id)
        self.chart_title = title
        self._args: tuple[list[CurveData], bool, bool, str] = ([], False, False, "")

    def plot(self, curves: Sequence[CurveData], *, log_x: bool = False, log_y: bool = False, x_label: str = "") -> None:
        """Draw these curves (now, or once the chart has a size); the title gets each curve's legend and last value."""
        self._args = ([(label, list(xs), list(ys)) for label, xs, ys in curves], log_x, log_y, x_label)
        self.invalidate()
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        data, log_x, log_y, x_label = self._args
        lines = [Curve(label, xs, ys, color) for (label, xs, ys), color in zip(data, cycle(COLORS))]
        self.show(tuple((c.label, tuple(c.xs), tuple(c.ys)) for c in lines), lambda: lines, log_y=log_y, log_x=log_x,
                  steps_x=False)
        legend = " ".join(f"[rgb({c.color[0]},{c.color[1]},{c.color[2]})]━ {escape(c.label)}[/]"
                          + (f" {fmt_value(c.ys[-1])}" if c.ys else "") for c in lines)
        axes = " · ".join(part for part in (f"x: {x_label}" if x_label else "", "log x" if log_x else "",
                                            "log y" if log_y else "") if part)
        self.set_titles(f"{escape(self.chart_title)} {legend}".strip(), axes)
