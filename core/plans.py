"""The plans of the recipe's stages 4–6: what the ``regularize``, ``tune``, ``ensemble`` and ``distill`` items train.

One table each under an experiment (``[recipe.NAME.regularize]``, ``.tune``, ``.ensemble``, ``.distill``), validated
as strictly as the rest of the file. A plan is not the configuration of any run: ``recipe-tui runs`` never lists
its keys as a run's changes, and two runs that differ only in a plan are the same training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .validate import (MAX_BATCH, MAX_STEPS, ConfigError, KeyPath, Locator, build, describe, plain_values, ranged,
                       ranged_list, suggest)

RUNGS = ("augment", "dropout", "weight-decay", "batch-size", "early-stop")
# data.augmentation presets (core/augment.py): none, small shifts and rotations (digits, one-channel images), crops,
# flips and colour (natural images), random token replacement (token sequences)
AUGMENTATIONS = ("none", "shift-rotate", "crop-flip-colour", "token-dropout")
SAMPLERS = ("random", "tpe")
PRUNERS = ("median", "none")
SPACE_KINDS = ("log-uniform", "uniform", "int", "choice")
MEMBERS = ("seeds", "trials")
BASES = ("auto", "recipe", "tune")
TUNABLE = ("data", "model", "train")  # the sections a search space may name
NOT_TUNABLE = ("train.steps",)  # tune.steps sets every trial's steps


@dataclass(frozen=True)
class RegularizeConfig:
    rungs: list[str] = field(default_factory=lambda: list(RUNGS))  # after the recipe itself, in this order
    steps: int = ranged(0, 0, MAX_STEPS)  # every rung's training steps; 0 = train.steps
    augmentation: str = "auto"  # auto: the preset suited to the data, or one of AUGMENTATIONS[1:]
    dropout: list[float] = ranged_list([0.1, 0.3], 0.0, 1.0, lo_open=True, hi_open=True)
    weight_decay: list[float] = ranged_list([1e-4, 1e-3, 1e-2], 0.0, 10.0, lo_open=True)
    batch_sizes: list[int] = ranged_list([], 1, MAX_BATCH)  # BatchNorm models only; empty: half the recipe's
    early_stop: int = ranged(3, 1, MAX_STEPS)  # patience of the early-stopping rung, in evaluations


@dataclass(frozen=True)
class TuneConfig:
    trials: int = ranged(20, 1, 100_000)  # the study's trial budget (trials already in the study count)
    steps: int = ranged(0, 0, MAX_STEPS)  # every trial's training steps; 0 = train.steps
    sampler: str = "random"  # random (the recipe: random over grid search) | tpe (the "Bayesian toolbox")
    pruner: str = "median"  # median: stop trials worse than the median at the same step | none
    storage: str = ""  # "": a journal file in the study's folder; a journal file path; an RDB URL (sqlite:///…)
    study: str = ""  # "": <recipe>-tune-<digest of the experiment and this table>
    space: dict[str, Any] = field(default_factory=dict)  # "--set key" = { log-uniform = [lo, hi] } | …; {}: default


@dataclass(frozen=True)
class EnsembleConfig:
    size: int = ranged(5, 2, 100)  # members
    members: str = "seeds"  # seeds: `size` seeds of the base configuration | trials: the best `size` tune trials
    base: str = "auto"  # the configuration seeds train: auto (tune's best when the study has one, else the recipe)
    steps: int = ranged(0, 0, MAX_STEPS)  # each seed member's training steps; 0 = train.steps


@dataclass(frozen=True)
class DistillConfig:
    temperature: float = ranged(4.0, 0.0, 100.0, lo_open=True)  # T: softmax(z / T) of teacher and student
    alpha: float = ranged(0.5, 0.0, 1.0)  # weight of the soft targets (1 − alpha: of the hard labels)
    width: int = ranged(0, 0, 65_536)  # the student's model.width (built-in models); 0: the recipe's
    steps: int = ranged(0, 0, MAX_STEPS)  # the students' training steps; 0 = train.steps


PLANS: dict[str, type] = {"regularize": RegularizeConfig, "tune": TuneConfig, "ensemble": EnsembleConfig,
                          "distill": DistillConfig}


def check_plans(sections: dict[str, Any], schema: dict[str, type], loc: Locator, path: KeyPath,
                whole: Callable[[dict[str, Any], Locator, KeyPath], None]) -> None:
    """Choices of the plan keys (and of ``data.augmentation``), the search space, and open-ended training. ``whole``
    checks a whole experiment's sections (what depends on several keys): each value of the space must pass it."""
    data, train = sections["data"], sections["train"]
    reg, tune, ens = sections["regularize"], sections["tune"], sections["ensemble"]
    for where_, value, choices in (
            (("data", "augmentation"), data.augmentation, AUGMENTATIONS),
            (("regularize", "augmentation"), reg.augmentation, ("auto", *AUGMENTATIONS[1:])),
            (("tune", "sampler"), tune.sampler, SAMPLERS), (("tune", "pruner"), tune.pruner, PRUNERS),
            (("ensemble", "members"), ens.members, MEMBERS), (("ensemble", "base"), ens.base, BASES)):
        if value not in choices:
            raise loc.error(path + where_, f"'{value}' is not one of {', '.join(choices)}{suggest(value, choices)}")
    for n, rung in enumerate(reg.rungs, start=1):
        if rung not in RUNGS:
            raise loc.error(path + ("regularize", "rungs", n), f"'{rung}' is not a rung{suggest(rung, RUNGS)} "
                            f"(one of {', '.join(RUNGS)})")
        if rung in reg.rungs[:n - 1]:
            raise loc.error(path + ("regularize", "rungs", n), f"'{rung}' is listed twice")
    if train.steps == 0 and train.schedule != "constant":
        raise loc.error(path + ("train", "schedule"), f"'{train.schedule}' needs an end to decay to, and train.steps "
                        "= 0 trains open-ended: use \"constant\" (the recipe: decay at the very end)")
    for key, entry in tune.space.items():
        check_space_entry(key, entry, sections, schema, loc, path + ("tune", "space", key), whole)


def check_space_entry(key: str, entry: Any, sections: dict[str, Any], schema: dict[str, type], loc: Locator,
                      where_: KeyPath, whole: Callable[[dict[str, Any], Locator, KeyPath], None]) -> None:
    """One search-space entry: a ``--set`` key of data, model or train, one kind, and bounds (or choices) that the
    key accepts (its type and range) and that make a valid experiment (its choices, keys that depend on it)."""
    parts = key.split(".")
    if len(parts) < 2 or parts[0] not in TUNABLE or key in NOT_TUNABLE:
        raise loc.error(where_, "must be a --set key of data, model or train (e.g. \"train.lr\"; tune.steps sets "
                        "the steps)")
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in SPACE_KINDS:
        raise loc.error(where_, f"expected one of {{ log-uniform = [lo, hi] }}, {{ uniform = [lo, hi] }}, "
                        f"{{ int = [lo, hi] }}, {{ choice = [a, b, …] }}, got {describe(entry)}")
    kind, values = next(iter(entry.items()))
    if not isinstance(values, list) or not values:
        raise loc.error(where_ + (kind,), f"expected an array, got {describe(values)}")
    if kind != "choice":
        _check_bounds(kind, values, loc, where_ + (kind,))
    elif len({repr(v) for v in values}) != len(values):
        raise loc.error(where_ + (kind,), "lists a choice twice")
    section = sections[parts[0]]
    if parts[1] == "kwargs" and len(parts) > 2:
        return  # the user's factory (or torchvision) keyword arguments: passed as written
    if len(parts) != 2:
        raise loc.error(where_, f"{parts[0]}.{parts[1]} is not a table")
    hint = schema[parts[0]].__annotations__.get(parts[1], "")
    if kind in ("log-uniform", "uniform") and "float" not in str(hint) and parts[1] in plain_values(section):
        use = "integers: use int" if "int" in str(hint) else "no numbers: use choice"
        raise loc.error(where_ + (kind,), f"{parts[0]}.{parts[1]} takes {use}")
    for value in values:  # every bound or choice: a value of the key (type, range), in a valid experiment
        try:
            changed = build(schema[parts[0]], {**plain_values(section), parts[1]: value}, (parts[0],), Locator("", ""))
            whole({**sections, parts[0]: changed, "tune": TuneConfig()}, Locator("", ""), ())
        except ConfigError as exc:
            reason = str(exc).removeprefix(": ").removeprefix(f"{key}: ").rstrip(".")
            raise loc.error(where_ + (kind,), f"{value!r} is not a value {key} takes: {reason}") from None


def _check_bounds(kind: str, values: list[Any], loc: Locator, where_: KeyPath) -> None:
    numbers = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numbers or not all(math.isfinite(v) for v in values):
        raise loc.error(where_, f"expected [low, high], two finite numbers, got {describe(values)}")
    lo, hi = values
    if kind == "int" and not (isinstance(lo, int) and isinstance(hi, int)):
        raise loc.error(where_, f"expected two integers, got {describe(values)}")
    if not lo < hi:
        raise loc.error(where_, f"low must be below high, got [{lo}, {hi}]")
    if kind == "log-uniform" and lo <= 0:
        raise loc.error(where_, f"a log-uniform range must be above 0, got [{lo}, {hi}]")
