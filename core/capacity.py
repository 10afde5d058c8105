"""The capacities the ``capacity`` check trains: ``checks.capacities`` when given, else the built-in model's width at
×¼, ×½, ×1 and ×2 (the recipe: "increase the capacity a bit, does training loss go down?")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import BUILTIN_MODELS, Experiment

MULTIPLIERS = ((0.25, "¼"), (0.5, "½"), (1.0, "1"), (2.0, "2"))


@dataclass(frozen=True)
class CapacityPoint:
    label: str  # "width ×2", "width=64", "channels=16, depth=3"
    values: dict[str, Any]  # --set keys → values: {"model.width": 256}


def capacity_points(exp: Experiment) -> list[CapacityPoint]:
    """The points to train, smallest first as the recipe lists them; [] when there is nothing to vary (a built-in
    without a width, or a factory/torchvision model without ``checks.capacities``)."""
    m = exp.model
    builtin = m.factory is None and m.name in BUILTIN_MODELS
    if exp.checks.capacities:
        prefix = "model." if builtin else "model.kwargs."
        return [CapacityPoint(", ".join(f"{k}={v}" for k, v in entry.items()),
                              {prefix + k: v for k, v in entry.items()}) for entry in exp.checks.capacities]
    if not builtin or m.name == "linear":
        return []
    step = m.heads if m.name == "char-transformer" else 1  # the transformer's width must divide into its heads
    points, seen = [], set()
    for factor, shown in MULTIPLIERS:
        width = max(step, round(m.width * factor / step) * step)
        if width not in seen:
            seen.add(width)
            points.append(CapacityPoint(f"width ×{shown} ({width})", {"model.width": width}))
    return points
