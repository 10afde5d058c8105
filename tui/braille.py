"""Line charts drawn in braille (2 × 4 dots a cell) straight into rich Segments: axes, tick labels, explicit colours.

The charts used plotext until its cost was measured against the training it slows (DESIGN.md: the app open must
keep ≥ 0.97 × headless throughput). plotext 5 builds a Python list for every dot of the canvas, formats every cell
as an ANSI string, and rich then parses that string back: ~7 ms for one 78 × 30 chart, whatever the data, on the
UI thread, holding the GIL the trainer needs. Here only the dots of the lines are visited and each row becomes a
few Segments (one per run of a colour): ~1 ms for the same chart. The look is plotext's: an L of axes with ``┤``
and ``┬`` ticks and labels at round values (``ticks.py``).

A later line wins a cell's colour where two lines share it (the faint raw curve goes first, its smoothing on top).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.color import Color
from rich.segment import Segment
from rich.style import Style

RGB = tuple[int, int, int]
BLANK = "\u2800"
_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [dot row in the cell][dot column in the cell]


@dataclass(frozen=True)
class Trace:
    xs: Sequence[float]
    ys: Sequence[float]  # in axis units (log10 of the value on a log axis)
    color: RGB


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    ticks: Sequence[tuple[float, str]] = ()  # (position in axis units, label)


def render(traces: Sequence[Trace], x: Axis, y: Axis, w: int, h: int, label: Style = Style()) -> list[list[Segment]]:
    """``h`` rows of segments, each ``w`` cells wide: ``h - 2`` rows of plot with the y labels on the left, then the
    x axis and its labels. ``label`` styles the axes and labels; the lines carry only their colour."""
    label_w = max((len(text) for _, text in y.ticks), default=0)
    pw, ph = max(1, w - label_w - 1), max(1, h - 2)
    bits, owner = _rasterize(traces, x, y, pw, ph)
    styles = [Style(color=Color.from_rgb(*t.color)) for t in traces]
    y_labels = _y_labels(y, ph)
    rows: list[list[Segment]] = []
    for r in range(ph):
        text = y_labels.get(r)
        row = [Segment((text or "").rjust(label_w) + ("┤" if text is not None else "│"), label)]
        row.extend(_cells(bits, owner, r * pw, pw, styles))
        rows.append(row)
    ticks = {c: text for c, text in ((_col(v, x, pw), text) for v, text in x.ticks) if 0 <= c < pw}
    axis = "".join("┬" if c in ticks else "─" for c in range(pw))
    rows.append([Segment(" " * label_w + "└" + axis, label)])
    rows.append([Segment(_x_labels(ticks, label_w + 1, w), label)])
    return rows


def _rasterize(traces: Sequence[Trace], x: Axis, y: Axis, pw: int, ph: int) -> tuple[list[int], list[int]]:
    """Per cell: its dots (a bit mask) and the index of the last trace that drew there."""
    bits, owner = [0] * (pw * ph), [-1] * (pw * ph)
    dw, dh = 2 * pw - 1, 4 * ph - 1
    sx = dw / (x.hi - x.lo) if x.hi > x.lo else 0.0
    sy = dh / (y.hi - y.lo) if y.hi > y.lo else 0.0
    for index, trace in enumerate(traces):
        prev = None
        for xv, yv in zip(trace.xs, trace.ys):
            dx = min(dw, max(0, round((xv - x.lo) * sx)))
            dy = min(dh, max(0, round((y.hi - yv) * sy))) if sy else dh // 2
            if prev is None:
                _dot(bits, owner, pw, dx, dy, index)
            else:
                _segment(bits, owner, pw, prev[0], prev[1], dx, dy, index)
            prev = (dx, dy)
    return bits, owner


def _dot(bits: list[int], owner: list[int], pw: int, dx: int, dy: int, index: int) -> None:
    cell = (dy >> 2) * pw + (dx >> 1)
    bits[cell] |= _BITS[dy & 3][dx & 1]
    owner[cell] = index


def _segment(bits: list[int], owner: list[int], pw: int, x0: int, y0: int, x1: int, y1: int, index: int) -> None:
    """The dots of a straight line from (x0, y0) to (x1, y1), both ends included (the start is already drawn)."""
    n = max(abs(x1 - x0), abs(y1 - y0))
    if n == 0:
        return
    ddx, ddy = x1 - x0, y1 - y0
    for i in range(1, n + 1):
        dx = x0 + (2 * ddx * i + n) // (2 * n)
        dy = y0 + (2 * ddy * i + n) // (2 * n)
        cell = (dy >> 2) * pw + (dx >> 1)
        bits[cell] |= _BITS[dy & 3][dx & 1]
        owner[cell] = index


def _cells(bits: list[int], owner: list[int], start: int, pw: int, styles: list[Style]) -> list[Segment]:
    """One plot row as segments: one per run of cells of the same line (blank cells are spaces)."""
    out: list[Segment] = []
    run: list[str] = []
    current = -2
    for cell in range(start, start + pw):
        mask = bits[cell]
        who = owner[cell] if mask else -1
        if who != current:
            if run:
                out.append(Segment("".join(run), styles[current] if current >= 0 else None))
            run, current = [], who
        run.append(chr(0x2800 + mask) if mask else " ")
    if run:
        out.append(Segment("".join(run), styles[current] if current >= 0 else None))
    return out


def _y_labels(y: Axis, ph: int) -> dict[int, str]:
    """Row → label; a tick is on the row whose dots hold its value (the first one wins a row)."""
    out: dict[int, str] = {}
    dh = 4 * ph - 1
    for value, text in y.ticks:
        if y.hi > y.lo and y.lo - 1e-12 <= value <= y.hi + 1e-12:
            out.setdefault(min(ph - 1, max(0, round((y.hi - value) * dh / (y.hi - y.lo)) >> 2)), text)
    return out


def _col(value: float, x: Axis, pw: int) -> int:
    if x.hi <= x.lo:
        return 0
    return round((value - x.lo) * (2 * pw - 1) / (x.hi - x.lo)) >> 1


def _x_labels(ticks: dict[int, str], offset: int, w: int) -> str:
    """The x labels centred under their ticks; one that would overlap the previous one or leave the row is left out."""
    line = [" "] * w
    free = 0
    for col in sorted(ticks):
        text = ticks[col]
        start = max(0, offset + col - (len(text) - 1) // 2)
        end = start + len(text)
        if start < free or end > w:
            continue
        line[start:end] = text
        free = end + 1
    return "".join(line)
