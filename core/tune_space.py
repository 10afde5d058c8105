"""The search space of ``tune``: the plan's ``[recipe.NAME.tune] space``, or a default one; what Optuna samples from
it; and where the recipe itself lies in it (the first trial is the recipe, so the table has its number at the same
budget).

An entry is a ``--set`` key and one kind: ``{ log-uniform = [lo, hi] }``, ``{ uniform = [lo, hi] }``,
``{ int = [lo, hi] }`` or ``{ choice = [a, b, …] }`` (validated in ``core/plans.py``). The default: the learning rate
log-uniform over ÷10…×10 of the recipe's; for a built-in model also its width (½, 1, 2 ×) and dropout (0–0.5).
"""
from __future__ import annotations

from typing import Any

from .config import Experiment
from .overrides import value_at

DROPOUT_KEY = {"mlp": "model.dropout", "char-transformer": "model.dropout", "cnn": "model.dropout2d"}


def space_of(exp: Experiment) -> dict[str, dict[str, list[Any]]]:
    if exp.tune.space:
        return {k: dict(v) for k, v in exp.tune.space.items()}
    lr = exp.train.lr
    space: dict[str, dict[str, list[Any]]] = {"train.lr": {"log-uniform": [lr / 10, min(10.0, lr * 10)]}}
    m = exp.model
    if m.factory is None and m.name in ("mlp", "cnn", "char-mlp", "char-transformer"):
        step = m.heads if m.name == "char-transformer" else 1  # the transformer's width divides into its heads
        widths = sorted({max(step, round(m.width * f / step) * step) for f in (0.5, 1, 2)})
        if len(widths) > 1:
            space["model.width"] = {"choice": widths}
    if m.factory is None and m.name in DROPOUT_KEY:
        space[DROPOUT_KEY[m.name]] = {"uniform": [0.0, 0.5]}
    return space


def suggest(trial: Any, key: str, entry: dict[str, list[Any]]) -> Any:
    """Optuna samples one value of an entry (the trial's sampler decides how)."""
    kind, values = next(iter(entry.items()))
    if kind == "choice":
        return trial.suggest_categorical(key, values)
    if kind == "int":
        return trial.suggest_int(key, values[0], values[1])
    return trial.suggest_float(key, float(values[0]), float(values[1]), log=kind == "log-uniform")


def recipe_point(exp: Experiment, space: dict[str, dict[str, list[Any]]]) -> dict[str, Any] | None:
    """The recipe's own value of every key, or None when one lies outside its entry (then it is not a trial)."""
    point = {}
    for key, entry in space.items():
        kind, values = next(iter(entry.items()))
        try:
            value = value_at(exp, key)
        except (AttributeError, KeyError):
            return None
        inside = value in values if kind == "choice" else (
            isinstance(value, (int, float)) and not isinstance(value, bool) and values[0] <= value <= values[1])
        if not inside:
            return None
        point[key] = float(value) if kind in ("uniform", "log-uniform") else value
    return point
