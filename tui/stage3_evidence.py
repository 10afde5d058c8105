"""Stage 3's evidence as pictures, from a check result's ``metrics``: lr-find's loss against the learning rate and
capacity's training loss against the parameter count (curves for a ``CurveChart``, both on a log x axis), and
first-layer's filters as a grid of half-block images. Rich and plain data only: tests read them without a screen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.text import Text

FILTERS_SHOWN = 32  # filters drawn (the check keeps up to 64)
FILTER_CELLS = 8  # columns per filter image
DRAWN = {"lr-find": ("curves",), "first-layer": ("filters", "filters_u8")}  # metrics drawn here: left out of the evidence table


@dataclass(frozen=True)
class ChartSpec:
    title: str
    curves: list[tuple[str, list[float], list[float]]]  # (label, xs, ys) as CurveChart.plot takes them
    log_x: bool
    x_label: str
    log_y: bool = False


def evidence_chart(check_id: str, metrics: dict[str, Any]) -> ChartSpec | None:
    """What to chart for this check's result (or its live rows), or None when it has no curve."""
    if check_id == "lr-find":
        return _lr_find(metrics)
    if check_id == "capacity":
        return _capacity(metrics)
    return None


def _lr_find(metrics: dict[str, Any]) -> ChartSpec | None:
    curves = []
    for c in metrics.get("curves") or []:
        if isinstance(c, dict) and _numbers(c.get("lr")) and _numbers(c.get("loss")):
            curves.append((f"seed {c.get('seed')}", list(c["lr"]), list(c["loss"])))
    if not curves:
        return None
    lr = metrics.get("suggested_lr")
    title = "loss vs lr" + (f" · suggested {lr:.2g}" if isinstance(lr, (int, float)) else "")
    finite = [y for _, _, ys in curves for y in ys if math.isfinite(y) and y > 0]
    return ChartSpec(title, curves, log_x=True, x_label="learning rate",
                     log_y=bool(finite) and max(finite) > 10 * min(finite))


def _capacity(metrics: dict[str, Any]) -> ChartSpec | None:
    rows = sorted((r for r in metrics.get("points") or [] if isinstance(r, dict) and _number(r.get("params"))),
                  key=lambda r: r["params"])
    curves = []
    for key, label in (("train_loss", "train loss"), ("val_loss", "val loss")):
        pts = [(float(r["params"]), float(r[key])) for r in rows if _number(r.get(key))]
        if pts:
            curves.append((label, [p for p, _ in pts], [v for _, v in pts]))
    if not curves or len(curves[0][1]) < 2:
        return None
    return ChartSpec("loss vs parameters", curves, log_x=True, x_label="parameters")


def filter_grid(metrics: dict[str, Any]) -> RenderableType | None:
    """first-layer's filters as half-block images on one brightness scale (± ``scale``, zero grey), so that strong and
    weak filters compare; None when there are none. From ``filters_u8`` (one byte a weight, kept in checklist.json),
    else ``filters`` (N × C × H × W lists, present in a fresh result)."""
    from .halfblock import render_image

    decoded = _filters(metrics)
    if decoded is None:
        return None
    filters, scale = decoded
    shown = filters[:FILTERS_SHOWN]
    try:
        cells = [render_image(f, width=FILTER_CELLS, vmin=-scale, vmax=scale, max_rows=FILTER_CELLS // 2)
                 for f in shown]
    except (TypeError, ValueError):
        return None
    count = metrics.get("count", len(filters))
    head = Text(f"first-layer filters: {len(shown)} of {count} (black −{scale:.2g}, grey 0, white +{scale:.2g})",
                style="dim")
    return Group(head, Columns(cells, padding=(0, 1), width=FILTER_CELLS))


def _filters(metrics: dict[str, Any]) -> tuple[Any, float] | None:
    """(filters as an N × C × H × W array or nested lists, the scale they are drawn on), or None."""
    packed = metrics.get("filters_u8")
    if isinstance(packed, dict) and _number(packed.get("scale")) and packed["scale"] > 0:
        import base64

        import numpy as np

        try:
            raw = np.frombuffer(base64.b64decode(packed["data"]), dtype=np.uint8)
            scale = float(packed["scale"])
            return raw.reshape(packed["shape"]).astype(np.float64) / 255 * 2 * scale - scale, scale
        except (KeyError, TypeError, ValueError):
            pass
    filters = metrics.get("filters")
    if not isinstance(filters, list) or not filters:
        return None
    scale = metrics.get("scale")
    return filters, float(scale) if _number(scale) and scale > 0 else _abs_max(filters)


def _abs_max(values: Any) -> float:
    def largest(v: Any) -> float:
        if isinstance(v, list):
            return max((largest(x) for x in v), default=0.0)
        return abs(float(v)) if _number(v) else 0.0

    return largest(values) or 1.0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v: Any) -> bool:
    return isinstance(v, Sequence) and len(v) > 1 and all(_number(x) for x in v)
