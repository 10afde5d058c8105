"""Chart series whose memory and redraw cost stay bounded however long the run gets.

A ``MinMaxSeries`` keeps at most ``capacity`` buckets of equally many consecutive points, each with its
minimum and maximum (and where they happened). When it is full, neighbouring buckets merge pairwise
and the bucket size doubles: appending is O(1) amortised, and ``points(n)`` costs O(capacity) no
matter whether a million points went in. A spike always survives: it is the maximum of some bucket,
and a merge keeps the larger maximum.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from typing import Callable

Transform = Callable[[float], float]


class MinMaxSeries:
    # 1024: between 512 and 1024 buckets at any time, enough for two points per column of a chart
    # 250 columns wide, and few enough that downsampling stays a small part of a redraw.
    __slots__ = ("capacity", "size", "count", "_xlo", "_ylo", "_xhi", "_yhi", "_n", "first", "last", "lo", "hi")

    def __init__(self, capacity: int = 1024) -> None:
        assert capacity >= 4 and capacity % 2 == 0
        self.capacity = capacity
        self.size = 1  # points per full bucket
        self.count = 0  # points appended (non-finite values are not)
        self._xlo: list[float] = []
        self._ylo: list[float] = []
        self._xhi: list[float] = []
        self._yhi: list[float] = []
        self._n: list[int] = []  # points in each bucket (only the last is ever partial)
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.lo, self.hi = math.inf, -math.inf  # the smallest and largest value so far

    def __len__(self) -> int:
        return self.count

    def append(self, x: float, y: float) -> None:
        if not math.isfinite(y):
            return  # a NaN loss ends the run with a message; it has no place on an axis
        self.count += 1
        self.last = (x, y)
        if y < self.lo:
            self.lo = y
        if y > self.hi:
            self.hi = y
        if self.first is None:
            self.first = (x, y)
        if self._n and self._n[-1] < self.size:
            i = len(self._n) - 1
            self._n[i] += 1
            if y < self._ylo[i]:
                self._xlo[i], self._ylo[i] = x, y
            if y > self._yhi[i]:
                self._xhi[i], self._yhi[i] = x, y
            return
        if len(self._n) == self.capacity:
            self._halve()  # every bucket is full then, so the merged ones are too: start a new one
        self._new_bucket(x, y)

    def _new_bucket(self, x: float, y: float) -> None:
        self._xlo.append(x)
        self._ylo.append(y)
        self._xhi.append(x)
        self._yhi.append(y)
        self._n.append(1)

    def _halve(self) -> None:
        xlo, ylo, xhi, yhi, n = [], [], [], [], []
        for a in range(0, len(self._n), 2):
            b = a + 1
            if b < len(self._n):
                lo = a if self._ylo[a] <= self._ylo[b] else b
                hi = a if self._yhi[a] >= self._yhi[b] else b
                n.append(self._n[a] + self._n[b])
            else:
                lo = hi = a
                n.append(self._n[a])
            xlo.append(self._xlo[lo])
            ylo.append(self._ylo[lo])
            xhi.append(self._xhi[hi])
            yhi.append(self._yhi[hi])
        self._xlo, self._ylo, self._xhi, self._yhi, self._n = xlo, ylo, xhi, yhi, n
        self.size *= 2

    def points(self, buckets: int, transform: Transform | None = None,
               x_min: float | None = None) -> tuple[list[float], list[float]]:
        """At most ``2 * buckets + 2`` points in x order: min and max of each of ``buckets`` groups.

        The first and last points are always included, so the curve ends at the current value.
        ``transform`` (e.g. log10) must be monotonic; points it cannot map (it raises) are dropped.
        ``x_min``: only the buckets from the one holding ``x_min`` on (a zoom to the recent history).
        """
        nb = len(self._n)
        if nb == 0:
            return [], []
        buckets = max(1, buckets)
        first = 0
        if x_min is not None and self.first is not None and x_min > self.first[0]:
            # buckets follow each other in x: the larger x of a bucket's two extremes grows with the index
            first = min(nb - 1, bisect_left(range(nb), x_min, key=lambda i: max(self._xlo[i], self._xhi[i])))
        pts: list[tuple[float, float]] = [self.first] if self.first and first == 0 else []
        prev_y = pts[0][1] if pts else self._ylo[first]
        groups = min(buckets, nb - first)  # exactly this many, whatever the history length: same cost at 1k or 1M
        span = nb - first
        for g in range(groups):
            start, end = first + g * span // groups, first + (g + 1) * span // groups
            lo = min(range(start, end), key=self._ylo.__getitem__)
            hi = max(range(start, end), key=self._yhi.__getitem__)
            x_a, x_b = sorted((self._xlo[lo], self._xhi[hi]))
            y_lo, y_hi = self._ylo[lo], self._yhi[hi]
            # Visit the extreme nearer the previous point first: the line crosses each bucket's range
            # once instead of zig-zagging (drawing costs grow with line length). Both extremes still
            # appear, each moved by less than the bucket's width, which is under one column.
            near, far = (y_lo, y_hi) if abs(prev_y - y_lo) <= abs(prev_y - y_hi) else (y_hi, y_lo)
            if end == nb and self.last is not None and self.last[0] == x_b:
                far = self.last[1]  # the newest point is an extreme: the curve must end on it
                near = y_lo if far == y_hi else y_hi
            pts.append((x_a, near))
            if x_b != x_a or far != near:
                pts.append((x_b, far))
            prev_y = far
        if self.last:
            pts.append(self.last)
        xs: list[float] = []
        ys: list[float] = []
        prev_x = None
        for x, y in pts:
            if transform is not None:
                try:
                    y = transform(y)
                except (ValueError, OverflowError):
                    continue
            if x == prev_x and xs:
                continue  # a second value at the same x would draw a vertical jump; one value per x is enough
            xs.append(x)
            ys.append(y)
            prev_x = x
        return xs, ys


def safe_log10(y: float) -> float:
    """log10 for the log-y charts; non-positive values cannot be drawn on a log axis (ValueError drops them)."""
    if y <= 0:
        raise ValueError(y)
    return math.log10(y)
