"""One chart: drawn by plotext on a private figure, cached as strips, rebuilt only when its owner asks with a new key.

plotext's module-level API shares one global figure and is not thread-safe: each ``Plot`` owns its own figure,
built on the UI thread (``show``), or lays the chart out (``prepare``) for an owner that has plotext build it elsewhere. Owners (the charts pane, ``CurveChart``) give it ``Curve``s of plain values, already
downsampled to about two points per column (``MinMaxSeries.points``), so a build costs the same whatever the
history length (plotext's build is linear in points). A log axis is drawn here: plotext 5's ``yscale("log")``
re-applies log10 to the stored data on every build, so log10 of the values is plotted and the ticks are labelled
with the values themselves. Colours are explicit (plotext's implicit ones depend on call order). plotext's ANSI
output becomes rows of rich Segments once per build; ``render_line`` only hands out the cached strips.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from ..plotext_build import Layout, build_ansi, new_figure
from ..ticks import fmt_value, step_axis, value_axis

MIN_W, MIN_H = 16, 5  # below this a chart is unreadable: the latest values are shown as text instead
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Curve:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]  # the values themselves (a log axis takes their log10)
    color: RGB


class Plot(Widget):
    COMPONENT_CLASSES = {"plot--train-loss", "plot--val-loss", "plot--metric", "plot--lr", "plot--grad-norm"}

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self._rows: list[list[Segment]] = [[Segment("no data yet", Style(dim=True))]]
        self._strips: list[Strip] | None = None  # the rows as strips, made once per build, not once per frame
        self._base: Style = Style()
        self._key: tuple[Any, ...] | None = None
        self._fig: Any = None  # this chart's plotext figure (``figure``)
        self.builds = 0  # how many times it was drawn (tests and benchmarks read it)
        self.build_seconds = 0.0  # what the last build took
        self.built_at = 0.0  # when (time.monotonic)

    class Resized(Message):
        """This chart's size changed: its owner draws it again (the owner's own size may not change when its split
        does, e.g. when a row of the grid appears)."""

    def on_resize(self) -> None:
        self.post_message(self.Resized())

    # -- what owners call -----------------------------------------------------------------------------
    def color(self, component: str) -> RGB:
        """A line colour from a component class (app.tcss): explicit, so that a line keeps it in every theme."""
        color = self.get_component_rich_style(component, partial=True, default=Style.null()).color or self.rich_style.color
        r, g, b = color.get_truecolor() if color is not None else (200, 200, 200)
        return (r, g, b)

    def faint(self, rgb: RGB, keep: float = 0.4) -> RGB:
        """``rgb`` blended into the background: a raw curve behind its smoothing."""
        bg = self.background_colors[1].rgb
        return (round(bg[0] + (rgb[0] - bg[0]) * keep), round(bg[1] + (rgb[1] - bg[1]) * keep),
                round(bg[2] + (rgb[2] - bg[2]) * keep))

    def set_titles(self, title: str, subtitle: str = "") -> None:
        """Setting a border title repaints the border even when it is the same: only on a change."""
        if self.border_title != title:
            self.border_title = title
        if self.border_subtitle != subtitle:
            self.border_subtitle = subtitle

    def invalidate(self) -> None:
        """Forget what was drawn: the next ``show`` draws whatever it is given."""
        self._key = None

    def show(self, key: Any, curves: Callable[[], Sequence[Curve]], *, log_y: bool = False, log_x: bool = False,
             steps_x: bool = True) -> bool:
        """Draw ``curves()`` unless ``key``, the size and the axes are what was drawn last; returns whether it drew.
        ``steps_x``: x is a training step (integer ticks written 1k, 2M)."""
        made = self.prepare(key, curves, log_y=log_y, log_x=log_x, steps_x=steps_x)
        if made is None:
            return False
        figure = self.figure() if isinstance(made, Layout) else None  # a first-time import is not drawing cost
        t0 = time.perf_counter()
        self.put_rows(self.rows_of(made, figure), time.perf_counter() - t0)
        return True

    def prepare(self, key: Any, curves: Callable[[], Sequence[Curve]], *, log_y: bool = False, log_x: bool = False,
                steps_x: bool = True) -> Layout | list[list[Segment]] | None:
        """``show``'s first half, for an owner that has plotext draw elsewhere (``Charts``): None when ``key``, the
        size and the axes are what was drawn last; else what plotext is to draw (``layout``) or the rows themselves.
        The owner hands the rows to ``put_rows``."""
        w, h = self.content_size.width, self.content_size.height
        full = (key, w, h, log_y, log_x, steps_x)
        if full == self._key or w <= 0 or h <= 0:
            return None
        self._key = full
        return self.layout(curves(), w, h, log_y=log_y, log_x=log_x, steps_x=steps_x)

    def put_rows(self, rows: list[list[Segment]], seconds: float = 0.0) -> None:
        """Show ``rows`` (a build's result; ``seconds``: what it took on this thread)."""
        self._rows = rows
        self._strips = None
        self.build_seconds = seconds
        self.builds += 1
        self.built_at = time.monotonic()
        self.refresh()

    # -- drawing --------------------------------------------------------------------------------------
    def figure(self) -> Any:
        """This chart's own plotext figure (made on first use: plotext is not imported before the first frame)."""
        if self._fig is None:
            self._fig = new_figure()
        return self._fig

    @staticmethod
    def draw(curves: Sequence[Curve], w: int, h: int, *, log_y: bool = False, log_x: bool = False,
             steps_x: bool = True, figure: Any = None) -> list[list[Segment]]:
        """The chart as ``h`` rows of segments for a ``w`` × ``h`` area, drawn by plotext on ``figure`` (a private
        one, see ``new_figure``; a fresh one when none is given). Pure: no widget state is read."""
        return Plot.rows_of(Plot.layout(curves, w, h, log_y=log_y, log_x=log_x, steps_x=steps_x), figure)

    @staticmethod
    def rows_of(made: Layout | list[list[Segment]], figure: Any = None) -> list[list[Segment]]:
        """The rows of ``layout``'s result: plotext's drawing of a ``Layout`` (on ``figure``), or the rows given."""
        return ansi_rows(build_ansi(made, figure)) if isinstance(made, Layout) else made

    @staticmethod
    def layout(curves: Sequence[Curve], w: int, h: int, *, log_y: bool = False, log_x: bool = False,
               steps_x: bool = True) -> Layout | list[list[Segment]]:
        """What plotext is to draw for ``curves`` in a ``w`` × ``h`` area (axes, ticks, colours, log10 taken), or the
        rows to show instead: a note when there is nothing to draw, the latest values when the area is too small."""
        shown = [(c, *_on_axes(c, log_x, log_y)) for c in curves]
        shown = [(c, xs, ys) for c, xs, ys in shown if xs]
        if not shown:
            note = "no positive data for a log axis" if (log_y or log_x) and any(c.ys for c in curves) else "no data yet"
            return [[Segment(note, Style(dim=True))]]
        if w < MIN_W or h < MIN_H:
            return [[Segment("  ".join(f"{c.label} {fmt_value(c.ys[-1])}" for c in curves if c.ys))]]
        x_lo, x_hi = min(xs[0] for _, xs, _ in shown), max(xs[-1] for _, xs, _ in shown)
        y_lo, y_hi = min(min(ys) for _, _, ys in shown), max(max(ys) for _, _, ys in shown)
        if y_hi - y_lo < 1e-12 * max(1.0, abs(y_hi)):  # a flat line: give the axis some height
            pad = 0.1 if log_y else abs(y_hi) * 0.1 or 1.0
            y_lo, y_hi = y_lo - pad, y_hi + pad
        x_hi = x_hi if x_hi > x_lo else x_lo + 1
        n_x, n_y = max(2, w // 10), max(2, (h - 2) // 2)  # a label every ~10 columns and every other row
        x_axis = step_axis(x_lo, x_hi, n_x) if steps_x and not log_x else value_axis(x_lo, x_hi, n_x, log_x)
        y_axis = value_axis(y_lo, y_hi, n_y, log_y)
        return Layout(w, h, tuple((xs, ys, c.color) for c, xs, ys in shown), (x_axis.lo, x_axis.hi),
                      (y_axis.lo, y_axis.hi), tuple(x_axis.ticks), tuple(y_axis.ticks))

    def render_line(self, y: int) -> Strip:
        if self._strips is None:
            self._base = self.rich_style  # computed from CSS on every access: once per build
            width = self.content_size.width
            self._strips = [Strip(Segment.apply_style(row, self._base)).crop_extend(0, width, self._base)
                            for row in self._rows]
        return self._strips[y] if y < len(self._strips) else Strip.blank(self.content_size.width, self._base)

    def render(self) -> Text:
        """The chart as plain text, one line per row (what tests and screenshots read)."""
        return Text("\n".join("".join(seg.text for seg in row) for row in self._rows), no_wrap=True, end="")


def _on_axes(curve: Curve, log_x: bool, log_y: bool) -> tuple[list[float], list[float]]:
    """The curve's points in axis units, x ascending; points a log axis cannot show (≤ 0, not finite) are left out."""
    xs: list[float] = []
    ys: list[float] = []
    for x, y in zip(curve.xs, curve.ys):
        if log_x:
            if not x > 0:
                continue
            x = math.log10(x)
        if log_y:
            if not y > 0:
                continue
            y = math.log10(y)
        if math.isfinite(x) and math.isfinite(y):
            xs.append(x)
            ys.append(y)
    if xs and any(b < a for a, b in zip(xs, xs[1:])):
        pairs = sorted(zip(xs, ys))
        xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    return xs, ys


def ansi_rows(ansi: str) -> list[list[Segment]]:
    """plotext's ANSI output as rows of segments (no empty last row).

    plotext writes few distinct escape codes (a reset, one colour per line), thousands of times: each code's Style
    is made once, by rich's own decoder, and cached; the text between codes is sliced out with one regular
    expression. A quarter of the cost of decoding the whole output with ``Text.from_ansi`` (which the tests
    compare it with), on the UI thread that shares the GIL with the trainer."""
    rows: list[list[Segment]] = []
    for line in ansi.rstrip("\n").split("\n"):
        row: list[Segment] = []
        style: Style | None = None
        parts = _ESCAPE.split(line)  # text, code, text, code, …, text
        for k, part in enumerate(parts):
            if k % 2:
                style = _style_of(part, style)
            elif part:
                row.append(Segment(part, style))
        rows.append(row)
    return rows


_ESCAPE = re.compile(r"\x1b\[([0-9;]*)m")
_STYLES: dict[str, Style | None] = {"0": None, "": None}  # SGR parameters → the style they switch to


def _style_of(code: str, current: Style | None) -> Style | None:
    """The style after SGR ``code``: plotext resets (``0``) before each colour run, so a code alone gives it."""
    style = _STYLES.get(code, _MISSING)
    if style is _MISSING:
        spans = Text.from_ansi(f"\x1b[{code}mx").spans
        found = spans[0].style if spans else None
        style = _STYLES[code] = found if isinstance(found, Style) and found else None
    if current is not None and style is not None and not code.startswith("0"):
        return current + style  # plotext 5 writes fore- and background as separate codes
    return style


_MISSING = Style()


__all__ = ["Curve", "Layout", "MIN_H", "MIN_W", "Plot", "RGB", "new_figure"]
