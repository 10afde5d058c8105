"""One chart: its own plotext figure, built on the UI thread, cached as rich Text.

plotext's module-level API shares one global figure; each ``Plot`` owns a private figure instead.
The figure is rebuilt only when ``rebuild`` is asked to and the data, the size or log-y
changed; ``render`` just returns the cached text. Series come in downsampled to about two points per
column (min and max of each bucket), which keeps a build cheap whatever the history length.

plotext 5's ``yscale("log")`` re-applies log10 to the stored data on every build, so log-y is done
here: log10 of the values is plotted and the ticks are labelled with the original values.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from ..series import MinMaxSeries, safe_log10

MIN_W, MIN_H = 16, 5  # below this a chart is unreadable: show the latest value as text instead
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Line:
    label: str
    key: str  # RunState.series name; its colour is the component class plot--<key> (app.tcss)

    @property
    def component(self) -> str:
        return "plot--" + self.key.replace("_", "-")


class Plot(Widget):
    COMPONENT_CLASSES = {"plot--train-loss", "plot--val-loss", "plot--metric", "plot--lr", "plot--grad-norm"}

    def __init__(self, title: str, lines: list[Line], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines = lines
        self.chart_title = title
        self.border_title = title
        self._colors: tuple[RGB, ...] = ()
        self._fig: Any = None  # created on first build: plotext is not imported before the first frame
        self._text: Text = Text("no data yet", style="dim")
        self._strips: list[Strip] | None = None  # _text cut into lines once per build, not once per frame
        self._base: Any = None
        self._key: tuple[Any, ...] | None = None
        self.build_seconds = 0.0

    def invalidate(self) -> None:
        """Forget what was drawn: the next ``rebuild`` draws whatever it is given."""
        self._key = None

    def render(self) -> Text:
        """The current chart as rich Text (what tests and screenshots read)."""
        return self._text

    def render_line(self, y: int) -> Strip:
        # A braille chart is thousands of one-cell colour spans; turning it into strips on every frame
        # through the generic text path cost ~30 ms a frame. It is done once per build instead, with
        # the widget's style looked up once (``rich_style`` is recomputed from CSS on every access).
        if self._strips is None:
            self._base = self.rich_style
            segments = self._text.render(self.app.console, end="")
            width = self.content_size.width
            self._strips = [Strip(Segment.apply_style(line, self._base)).crop_extend(0, width, self._base)
                            for line in Segment.split_lines(segments)]
        return self._strips[y] if y < len(self._strips) else Strip.blank(self.content_size.width, self._base)

    def line_colors(self) -> tuple[RGB, ...]:
        """Explicit colours (plotext's implicit ones depend on call order), from the component classes;
        a line without one gets the widget's text colour."""
        own = self.rich_style.color
        out = []
        for line in self.lines:
            color = self.get_component_rich_style(line.component, partial=True, default=Style.null()).color or own
            r, g, b = color.get_truecolor()
            out.append((r, g, b))
        return tuple(out)

    def _set_legend(self, colors: tuple[RGB, ...]) -> None:
        """The legend lives in the border title: inside the plot it would cost two rows of data."""
        self._colors = colors
        legend = " ".join(f"[rgb({r},{g},{b})]━ {line.label}[/]" for line, (r, g, b) in zip(self.lines, colors))
        self.border_title = f"{self.chart_title} {legend}" if len(self.lines) > 1 else self.chart_title

    def retitle(self, title: str) -> None:
        if title != self.chart_title:
            self.chart_title = title
            self._set_legend(self._colors)

    def on_mount(self) -> None:
        self._set_legend(self.line_colors())

    def rebuild(self, series: dict[str, MinMaxSeries], log_y: bool) -> bool:
        """Rebuild if anything shown changed; returns whether it did.

        Series only grow, so their point counts tell whether new data arrived; the identity of the
        dict tells a different run apart.
        """
        w, h = self.content_size.width, self.content_size.height
        counts = tuple(len(series[line.key]) if line.key in series else 0 for line in self.lines)
        colors = self.line_colors()
        key = (id(series), counts, w, h, log_y, colors)
        if key == self._key or w <= 0 or h <= 0:
            return False
        self._key = key
        if colors != self._colors:  # another theme
            self._set_legend(colors)
        self._figure()  # a first-time import is not drawing cost: keep it out of the budget
        t0 = time.perf_counter()
        self._text = self.draw(series, w, h, log_y, colors)
        self._strips = None
        self.build_seconds = time.perf_counter() - t0
        subtitle = "log" if log_y else ""
        if self.border_subtitle != subtitle:  # setting it repaints the border, even to the same value
            self.border_subtitle = subtitle
        self.refresh()
        return True

    def draw(self, series: dict[str, MinMaxSeries], w: int, h: int, log_y: bool, colors: tuple[RGB, ...]) -> Text:
        """The chart as text for a ``w`` × ``h`` cell area, ``colors`` one per line (pure: no widget
        state is read or changed)."""
        transform = safe_log10 if log_y else None
        data = []
        for line, color in zip(self.lines, colors):
            s = series.get(line.key)
            if s is not None and len(s):
                xs, ys = s.points(w, transform)
                if xs:
                    data.append((line, xs, ys, s.last[1], color))
        if not data:
            return Text("no data yet" if not log_y else "no positive data for a log axis", style="dim")
        if w < MIN_W or h < MIN_H:
            return Text("  ".join(f"{line.label} {_fmt(last)}" for line, _, _, last, _ in data))
        fig = self._figure()
        fig.clear_data()
        fig.plotsize(w, h)
        fig.theme("clear")
        x_lo = min(xs[0] for _, xs, _, _, _ in data)
        x_hi = max(xs[-1] for _, xs, _, _, _ in data)
        y_lo = min(min(ys) for _, _, ys, _, _ in data)
        y_hi = max(max(ys) for _, _, ys, _, _ in data)
        if y_hi - y_lo < 1e-12:  # a flat line (constant lr): give the axis some height
            pad = abs(y_hi) * 0.1 or 1.0
            y_lo, y_hi = y_lo - pad, y_hi + pad
        x_hi = x_hi if x_hi > x_lo else x_lo + 1
        fig.xaxes(True, False)  # an L of axes: the widget border already frames the chart
        fig.yaxes(True, False)
        for _, xs, ys, _, color in data:
            fig.plot(xs, ys, color=color, marker="braille")
        fig.xlim(x_lo, x_hi)
        fig.ylim(y_lo, y_hi)
        xt = [t for t in nice_ticks(x_lo, x_hi, max(2, w // 14)) if t == int(t)] or [x_lo]  # steps are integers
        fig.xticks(xt, [_fmt_step(v) for v in xt])
        yt, labels = (log_ticks(y_lo, y_hi, max(2, h // 3)) if log_y
                      else _with_labels(nice_ticks(y_lo, y_hi, max(2, h // 3))))
        fig.yticks(yt, labels)
        return Text.from_ansi(fig.build().rstrip("\n"), no_wrap=True, end="")  # no empty last row

    def _figure(self) -> Any:
        if self._fig is None:
            from plotext._figure import _figure_class  # one private figure per chart, never the global one
            self._fig = _figure_class()
        return self._fig


def nice_ticks(lo: float, hi: float, n: int) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) inside [lo, hi]: at most about ``n``, at least two."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10.0 ** math.floor(math.log10(raw))
    mants = (1, 2, 5, 10)
    i = next(k for k, m in enumerate(mants) if m * mag >= raw)
    while True:
        step = mants[i] * mag
        first = math.ceil(lo / step - 1e-9) * step
        count = int(math.floor((hi - first) / step + 1e-9)) + 1
        if count >= 2 or step < (hi - lo) * 1e-6:
            return [round(first + k * step, 12) for k in range(max(1, count))]
        i -= 1  # too coarse for two ticks: 5 → 2 → 1 → 0.5 …
        if i < 0:
            i, mag = 2, mag / 10


def log_ticks(lo: float, hi: float, n: int) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis given in log10 units; labels are the original values."""
    if hi - lo >= 1:
        every = max(1, math.ceil((math.floor(hi) - math.ceil(lo) + 1) / n))
        ticks = [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1, every)]
    else:  # less than a decade: round values in linear space, placed at their logs
        ticks = [math.log10(v) for v in nice_ticks(10 ** lo, 10 ** hi, n) if v > 0]
    return ticks, [_fmt(10 ** t) for t in ticks]


def _with_labels(ticks: list[float]) -> tuple[list[float], list[str]]:
    return ticks, [_fmt(t) for t in ticks]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _fmt_step(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"
