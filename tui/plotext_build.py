"""plotext's part of drawing a chart: a ``Layout`` (lines, size, axes, all plain values) in, plotext's ANSI text out.

Imports nothing but plotext (lazily), so that the chart process (``chart_process``) can run it without textual or
rich: the app sends layouts there and turns the text it gets back into segments (``plot.ansi_rows``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    """Everything plotext is told for one chart: ``lines`` are (xs, ys, colour) in axis units (log10 already taken
    for a log axis), drawn in order; ticks are (position, label) pairs."""
    w: int
    h: int
    lines: tuple[tuple[list[float], list[float], RGB], ...]
    x_lim: tuple[float, float]
    y_lim: tuple[float, float]
    x_ticks: tuple[tuple[float, str], ...]
    y_ticks: tuple[tuple[float, str], ...]


def new_figure() -> Any:
    """A plotext figure of one's own (never plotext's global one), set up once: no frame, an L of axes (the widget
    border frames the chart), no colours but the lines' own, and any size (not capped at the terminal's)."""
    from plotext._figure import _figure_class  # the class behind plotext.plot; its instances share nothing

    fig = _figure_class()
    fig._limit_size(False, False)  # plotext caps a plot at the terminal size, which a widget need not be within
    fig.theme("clear")
    fig.xaxes(True, False)
    fig.yaxes(True, False)
    return fig


def build_ansi(layout: Layout, figure: Any = None) -> str:
    """plotext's output for ``layout``, drawn on ``figure`` (a ``new_figure``; a fresh one when none is given)."""
    fig = figure if figure is not None else new_figure()
    fig.clear_data()
    fig.plotsize(layout.w, layout.h)
    for xs, ys, color in layout.lines:  # in order: a later line wins a cell it shares (the smoothing over the raw)
        fig.plot(xs, ys, color=tuple(color), marker="braille")
    fig.xlim(*layout.x_lim)
    fig.ylim(*layout.y_lim)
    fig.xticks([t for t, _ in layout.x_ticks], [label for _, label in layout.x_ticks])
    fig.yticks([t for t, _ in layout.y_ticks], [label for _, label in layout.y_ticks])
    return fig.build()
