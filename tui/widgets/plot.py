"""One chart: its own plotext figure, built on the UI thread, cached as rich Text.

plotext's module-level API shares one global figure; each ``Plot`` owns a private figure instead.
The figure is rebuilt only when ``rebuild`` is asked to and the data version, the size or log-y
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

from rich.text import Text
from textual.widget import Widget

from ..series import MinMaxSeries, safe_log10

MIN_W, MIN_H = 16, 5  # below this a chart is unreadable: show the latest value as text instead


@dataclass(frozen=True)
class Line:
    label: str
    key: str  # RunState.series name
    color: tuple[int, int, int]  # explicit: plotext's implicit colours depend on call order


class Plot(Widget):
    def __init__(self, title: str, lines: list[Line], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.lines = lines
        self._fig: Any = None  # created on first build: plotext is not imported before the first frame
        self._text: Text = Text("no data yet", style="dim")
        self._key: tuple[Any, ...] | None = None
        self.build_seconds = 0.0

    def render(self) -> Text:
        return self._text

    def rebuild(self, series: dict[str, MinMaxSeries], version: int, log_y: bool) -> bool:
        """Rebuild if anything shown changed; returns whether it did."""
        w, h = self.content_size.width, self.content_size.height
        key = (version, w, h, log_y)
        if key == self._key or w <= 0 or h <= 0:
            return False
        self._key = key
        t0 = time.perf_counter()
        self._text = self._build(series, w, h, log_y)
        self.build_seconds = time.perf_counter() - t0
        self.border_subtitle = "log" if log_y else ""
        self.refresh()
        return True

    def _build(self, series: dict[str, MinMaxSeries], w: int, h: int, log_y: bool) -> Text:
        transform = safe_log10 if log_y else None
        data = []
        for line in self.lines:
            s = series.get(line.key)
            if s is not None and len(s):
                xs, ys = s.points(w, transform)
                if xs:
                    data.append((line, xs, ys, s.last[1]))
        if not data:
            return Text("no data yet" if not log_y else "no positive data for a log axis", style="dim")
        if w < MIN_W or h < MIN_H:
            return Text("  ".join(f"{line.label} {_fmt(last)}" for line, _, _, last in data))
        fig = self._figure()
        fig.clear_data()
        fig.plotsize(w, h)
        fig.theme("clear")
        x_lo = min(xs[0] for _, xs, _, _ in data)
        x_hi = max(xs[-1] for _, xs, _, _ in data)
        y_lo = min(min(ys) for _, _, ys, _ in data)
        y_hi = max(max(ys) for _, _, ys, _ in data)
        if y_hi - y_lo < 1e-12:  # a flat line (constant lr): give the axis some height
            pad = abs(y_hi) * 0.1 or 1.0
            y_lo, y_hi = y_lo - pad, y_hi + pad
        x_hi = x_hi if x_hi > x_lo else x_lo + 1
        for line, xs, ys, _ in data:
            fig.plot(xs, ys, color=line.color, marker="braille", label=line.label if len(data) > 1 else None)
        fig.xlim(x_lo, x_hi)
        fig.ylim(y_lo, y_hi)
        xt = nice_ticks(x_lo, x_hi, max(2, w // 14))
        fig.xticks(xt, [_fmt_step(v) for v in xt])
        yt, labels = (log_ticks(y_lo, y_hi, max(2, h // 4)) if log_y
                      else _with_labels(nice_ticks(y_lo, y_hi, max(2, h // 4))))
        fig.yticks(yt, labels)
        return Text.from_ansi(fig.build(), no_wrap=True, end="")

    def _figure(self) -> Any:
        if self._fig is None:
            from plotext._figure import _figure_class  # one private figure per chart, never the global one
            self._fig = _figure_class()
        return self._fig


def nice_ticks(lo: float, hi: float, n: int) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k apart) inside [lo, hi], about ``n`` of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks or [lo]


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
