"""Axis ticks at round values, and how numbers are written on charts and in their titles."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    ticks: Sequence[tuple[float, str]] = ()  # (position in axis units, label)


def nice_ticks(lo: float, hi: float, n: int) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) inside [lo, hi]: as many as fit in ``n``, at least two."""
    if hi <= lo:
        return [lo]
    n = max(2, n)
    mag = 10.0 ** math.floor(math.log10((hi - lo) / n))
    previous: list[float] = []
    for step in (m * mag * k for k in (0.1, 1.0, 10.0, 100.0) for m in (1, 2, 5)):  # finest first
        first = math.ceil(lo / step - 1e-9) * step
        count = int(math.floor((hi - first) / step + 1e-9)) + 1
        ticks = [round(first + k * step, 12) for k in range(max(1, count))]
        if count <= n:
            return ticks if count >= 2 or not previous else previous
        previous = ticks
    return previous


def log_ticks(lo: float, hi: float, n: int) -> tuple[list[float], list[str]]:
    """Ticks for a log10 axis given in log10 units; labels are the original values. Few decades get 2× and 5× ticks
    too (or 3×), so that a short log axis still has enough labels to read values from."""
    if hi - lo >= 1:
        first, last = math.floor(lo), math.floor(hi)
        decades = last - first + 1
        mantissas = (1, 2, 5) if decades * 3 <= n else (1, 3) if decades * 2 <= n else (1,)
        every = 1 if len(mantissas) > 1 else max(1, math.ceil(decades / n))
        ticks = [k + math.log10(m) for k in range(first, last + 1, every) for m in mantissas]
        ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
    else:  # less than a decade: round values in linear space, placed at their logs
        ticks = [math.log10(v) for v in nice_ticks(10 ** lo, 10 ** hi, n) if v > 0]
    return ticks, [fmt(10 ** t) for t in ticks]


def value_axis(lo: float, hi: float, n: int, log: bool) -> Axis:
    """A value axis over [lo, hi] (log10 units when ``log``) with about ``n`` labelled ticks."""
    if log:
        ticks, labels = log_ticks(lo, hi, n)
        return Axis(lo, hi, list(zip(ticks, labels)))
    return Axis(lo, hi, [(t, fmt(t)) for t in nice_ticks(lo, hi, n)])


def step_axis(lo: float, hi: float, n: int) -> Axis:
    """Training steps: integer ticks written 500, 1k, 1.5k, 2M."""
    ticks = [t for t in nice_ticks(lo, hi, n) if t == int(t)] or [lo]
    return Axis(lo, hi, [(t, fmt_step(t)) for t in ticks])


def fmt(v: float) -> str:
    return f"{v:.3g}"


def fmt_value(v: float | None, digits: int = 4) -> str:
    """A number in a title, to ``digits`` significant digits; very small or large ones as ``5.017e-5`` (not Python's
    ``5.017e-05`` or ``0.00005017``: a title has no cell to spare)."""
    if v is None:
        return "–"
    if not math.isfinite(v) or v == 0 or 1e-3 <= abs(v) < 10 ** digits:
        return f"{v:.{digits}g}"
    if 10 ** digits <= abs(v) < 1e6:
        return f"{v:.0f}"  # 12345, not 1.234e4
    mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def fmt_step(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"
