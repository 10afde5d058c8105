"""A check's evidence (its result's ``metrics``) as something to read: small tables instead of flattened
dicts, sparklines instead of ``[51 values]``, bars for class counts, a grid for a confusion matrix.

Generic, so that a new check's metrics read well without code here: scalars are packed into a key/value
grid; a dict of dicts becomes a table (one column per outer key, e.g. per split); a list of numbers is
written out when short and drawn as a sparkline when long (lists of one length share a scale, so two
curves compare); a list of dicts becomes a table of its first rows; an empty list or dict reads "none".
Special cases: per-split ``counts`` beside ``classes`` are bars, a square integer matrix named
``confusion`` is a grid with the most confused pairs. Rich only (no Textual): tests render it plainly.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text

SPARK = "▁▂▃▄▅▆▇█"
INLINE_MAX = 12  # lists of numbers up to this long are written out
ROWS_MAX = 8  # rows shown of a list of dicts (or lists)
GRID_MAX = 12  # classes drawn in a confusion grid; beyond, only the most confused pairs
PAIRS = 5


def render_evidence(metrics: dict[str, Any], width: int = 60, hidden: Sequence[str] = (),
                    bar_style: Style | str = "") -> RenderableType | None:
    """The renderable for ``metrics`` in about ``width`` columns, or None when there is nothing to show."""
    items = [(k, v) for k, v in metrics.items() if k not in hidden]
    if not items:
        return None
    classes = _names(metrics)
    scalars = [(k, v) for k, v in items if _inline(v)]
    parts: list[RenderableType] = []
    if scalars:
        parts.append(_packed(scalars, width))
    curves = [v for _, v in items if _numbers(v) and len(v) > INLINE_MAX]
    curves += [r for _, v in items if isinstance(v, list) for r in v if _numbers(r) and len(r) > INLINE_MAX]
    shared = _shared_ranges(curves)
    for key, value in items:
        if _inline(value):
            continue
        body = _block(key, value, classes, width, shared, bar_style)
        parts.append(Group(Text(key, style="bold dim"), body))
    return Group(*parts)


# -- what goes where --------------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_number(x) for x in v)


def _inline(v: Any) -> bool:
    """A value that fits on one line of the key/value grid."""
    if not isinstance(v, (list, dict)):
        return True
    if not v:
        return True  # "none"
    if isinstance(v, list):
        return len(v) <= INLINE_MAX and all(not isinstance(x, (list, dict)) for x in v)
    return len(v) <= 6 and all(not isinstance(x, (list, dict)) for x in v.values())


def _names(metrics: dict[str, Any]) -> list[str]:
    names = metrics.get("classes") or metrics.get("class_names") or []
    return [str(n) for n in names] if isinstance(names, list) else []


def _block(key: str, value: Any, classes: list[str], width: int, shared: dict[int, tuple[float, float]],
           bar_style: Style | str) -> RenderableType:
    if _numbers(value):
        return sparkline_text(value, width - 2, shared.get(len(value)))
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        if "confusion" in key and _square_counts(value):
            return confusion_grid(value, classes)
        if all(_numbers(r) and len(r) > INLINE_MAX for r in value):  # several curves
            return Group(*(sparkline_text(r, width - 2, shared.get(len(r))) for r in value[:ROWS_MAX]))
        return _rows_table([dict(enumerate(r)) for r in value], header=False)
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return _rows_table(value, header=True)
    if isinstance(value, dict) and value and all(isinstance(x, dict) for x in value.values()):
        counts = {name: d["counts"] for name, d in value.items() if _numbers(d.get("counts"))}
        if counts and len(counts) == len(value):
            return class_bars(counts, classes, width, bar_style)
        return _columns_table(value)
    if isinstance(value, dict):
        return _packed(list(value.items()), width)
    return Text(cell_text(value), overflow="fold")


# -- pieces -------------------------------------------------------------------------------------------

def cell_text(v: Any, depth: int = 0) -> str:
    """One value in a few characters."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "—"
    if isinstance(v, list):
        if not v:
            return "none"
        if len(v) > (4 if depth else INLINE_MAX):  # a long list inside a cell: its shape and range
            return _mini_spark(v) if _numbers(v) else f"{len(v):,} items"
        return ", ".join(cell_text(x, depth + 1) for x in v)
    if isinstance(v, dict):
        if not v:
            return "none"
        shown = [f"{k} {cell_text(x, depth + 1)}" for k, x in list(v.items())[:6]]
        return " · ".join(shown) + (" …" if len(v) > 6 else "")
    return str(v)


def _mini_spark(values: list[float]) -> str:
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return f"{len(values)} values, none finite"
    return f"{sparkline_text(values, 0).plain.split()[0]} {cell_text(min(finite))}…{cell_text(max(finite))}"


def _packed(pairs: list[tuple[Any, Any]], width: int) -> Table:
    """Key/value pairs, as many pairs a row as the width allows (at least one)."""
    cells = [(str(k), cell_text(v)) for k, v in pairs]
    pair = max(len(k) for k, _ in cells) + min(max(len(v) for _, v in cells), 40) + 3
    per_row = max(1, min(3, len(cells), width // pair))
    table = Table.grid(padding=(0, 1))
    for _ in range(per_row):
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
    for i in range(0, len(cells), per_row):
        row = [x for pair in cells[i:i + per_row] for x in pair]
        table.add_row(*row)
    return table


def _columns_table(value: dict[str, dict[str, Any]]) -> Table:
    """A dict of dicts: one column per outer key, one row per inner key."""
    rows: list[str] = list(dict.fromkeys(k for d in value.values() for k in d))
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("", style="dim", no_wrap=True)
    for name in value:
        table.add_column(str(name), overflow="fold")
    for r in rows:
        table.add_row(str(r), *(cell_text(d.get(r), 1) if r in d else "" for d in value.values()))
    return table


def _rows_table(rows: list[dict[Any, Any]], header: bool) -> RenderableType:
    columns = list(dict.fromkeys(k for r in rows[:ROWS_MAX] for k in r))
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, show_header=header, header_style="bold dim")
    for c in columns:
        table.add_column(str(c), overflow="fold", justify="right" if all(_is_number(r.get(c)) for r in rows[:ROWS_MAX]) else "left")
    for r in rows[:ROWS_MAX]:
        table.add_row(*(_cell(c, r.get(c)) for c in columns))
    if len(rows) <= ROWS_MAX:
        return table
    return Group(table, Text(f"… and {len(rows) - ROWS_MAX:,} more", style="dim"))


def _cell(column: Any, value: Any) -> str:
    """A table cell; a run dir by its folder's name (the whole path is in the JSON)."""
    if column == "run_dir" and isinstance(value, str) and "/" in value:
        return value.rstrip("/").rsplit("/", 1)[1]
    return cell_text(value, 1)


def _shared_ranges(series: list[list[float]]) -> dict[int, tuple[float, float]]:
    """Lists of one length (two curves of one run) get one scale, so their sparklines compare."""
    by_len: dict[int, list[float]] = {}
    for s in series:
        by_len.setdefault(len(s), []).extend(x for x in s if math.isfinite(x))
    return {n: (min(v), max(v)) for n, v in by_len.items() if v}


def sparkline_text(values: Sequence[float], width: int, scale: tuple[float, float] | None = None) -> Text:
    """``▇▅▃▂▁  2.3 → 0.077 (min 0.07, max 2.3, 51 values)``: the shape, then the numbers that matter."""
    finite = [float(v) for v in values if math.isfinite(v)]
    if not finite:
        return Text(f"{len(values)} values, none finite", style="dim")
    lo, hi = scale or (min(finite), max(finite))
    cols = min(len(values), max(4, min(width - 36, 60)))
    step = len(values) / cols
    chars = []
    for c in range(cols):
        chunk = [float(v) for v in values[int(c * step):max(int((c + 1) * step), int(c * step) + 1)]]
        ok = [v for v in chunk if math.isfinite(v)]
        if not ok:
            chars.append("·")
            continue
        level = (sum(ok) / len(ok) - lo) / (hi - lo) if hi > lo else 0.5
        chars.append(SPARK[min(len(SPARK) - 1, max(0, int(level * len(SPARK))))])
    numbers = (f"  {cell_text(float(values[0]))} → {cell_text(float(values[-1]))} "
               f"(min {cell_text(min(finite))}, max {cell_text(max(finite))}, {len(values)} values)")
    return Text.assemble(("".join(chars), "bold"), (numbers, "dim"))


def class_bars(counts: dict[str, list[float]], classes: Sequence[str], width: int, bar_style: Style | str = "",
               order: Sequence[int] | None = None) -> Table:
    """One row per class (``order``: which, default all): a bar for the first split, the count in each."""
    first = next(iter(counts.values()))
    peak = max(first) or 1
    bar = max(3, min(30, width - 10 - 8 * len(counts)))  # label, counts, spacing: the bar gets the rest
    table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, header_style="bold dim")
    table.add_column("class", no_wrap=True, style="dim", max_width=10)
    table.add_column("", no_wrap=True)
    for name in counts:
        table.add_column(str(name), justify="right", no_wrap=True)
    for c in (range(len(first)) if order is None else order):
        label, n = (classes[c] if c < len(classes) else str(c)), first[c]
        table.add_row(label[:10], Text("█" * max(1 if n else 0, round(bar * n / peak)), style=bar_style),
                      *(cell_text(v[c]) if c < len(v) else "" for v in counts.values()))
    return table


def _square_counts(m: list[list[Any]]) -> bool:
    return len(m) > 1 and all(isinstance(r, list) and len(r) == len(m) and all(_is_number(x) for x in r) for r in m)


def confusion_grid(cm: list[list[float]], classes: list[str]) -> RenderableType:
    """Rows: the given class, columns: the predicted one (diagonal bold), then the most confused pairs."""
    k = len(cm)
    names = [classes[i] if i < len(classes) else str(i) for i in range(k)]
    parts: list[RenderableType] = []
    if k <= GRID_MAX:
        table = Table(box=None, padding=(0, 1), show_edge=False, pad_edge=False, header_style="bold dim")
        table.add_column("given╲pred", style="dim", no_wrap=True)
        for name in names:
            table.add_column(name[:6], justify="right", no_wrap=True)
        for i, row in enumerate(cm):
            table.add_row(names[i][:10], *(Text(cell_text(v), style="bold" if i == j else ("" if v else "dim"))
                                           for j, v in enumerate(row)))
        parts.append(table)
    pairs = sorted(((cm[i][j], i, j) for i in range(k) for j in range(k) if i != j and cm[i][j]), reverse=True)
    if pairs:
        text = ", ".join(f"{names[i]} → {names[j]} ({cell_text(n)})" for n, i, j in pairs[:PAIRS])
        parts.append(Text.assemble(("most confused (given → predicted): ", "dim"), text))
    else:
        parts.append(Text("no confusions", style="dim"))
    return Group(*parts)
