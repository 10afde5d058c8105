"""The ensemble of stage 6: its members (``[recipe.NAME.ensemble]``) and what averaging them gives.

Members are either ``size`` seeds of one configuration — the recipe, or the tuning study's best (``base``) — trained
for ``ensemble.steps`` (runs that exist already are reused: ``stage_runs.find_completed``), or the ``size`` best
completed trials of the tuning study, as they are. The ensemble averages the members' probabilities (classification,
language models; its loss is the cross-entropy of the averaged distribution) or their predictions (regression).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.nn.functional as F

from .config import Experiment, apply_values
from .data import iter_batches
from .tasks import Task, first_tensor

if TYPE_CHECKING:
    from .checks.context import CheckContext


@dataclass(frozen=True)
class Member:
    label: str  # "seed 1338", "trial 4"
    exp: Experiment | None  # what to train (seed members); None: an existing run (a trial)
    run_dir: Path | None = None


class NoMembers(Exception):
    """The plan names members that do not exist (no study, too few trials): the sentence says what to do."""


def members(ctx: "CheckContext") -> tuple[list[Member], str]:
    """(the members, where their configuration comes from)."""
    from .tune import best_trial

    plan, exp = ctx.exp.ensemble, ctx.exp
    if plan.members == "trials":
        return _trial_members(ctx), "the best trials of the tuning study"
    best = best_trial(exp, ctx.runs_root) if plan.base != "recipe" else None
    if plan.base == "tune" and best is None:
        raise NoMembers("ensemble.base = \"tune\" but the tuning study has no completed trial: run tune first.")
    base, source = exp, "the recipe"
    if best is not None:
        params, study, number = best
        base, source = apply_values(exp, params), f"trial {number} of study '{study}' (the tuning study's best)"
    steps = plan.steps or exp.train.steps
    if not steps:
        raise NoMembers("train.steps = 0 (open-ended) and ensemble.steps = 0: every member needs a budget.")
    seeds = [exp.train.seed + i for i in range(plan.size)]
    return [Member(f"seed {s}", apply_values(base, {"train.seed": s, "train.steps": steps})) for s in seeds], source


def _trial_members(ctx: "CheckContext") -> list[Member]:
    from optuna.trial import TrialState

    from .tune import open_study, study_place

    place = study_place(ctx.exp, ctx.runs_root, create=False)
    if "://" not in place.storage and not Path(place.storage).is_file():
        raise NoMembers("ensemble.members = \"trials\" but there is no tuning study yet: run tune first.")
    done = open_study(ctx.exp, place).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    found = [t for t in sorted(done, key=lambda t: t.value)
             if Path(t.user_attrs.get("run_dir", ""), "checkpoint.pt").is_file()]
    size = ctx.exp.ensemble.size
    if len(found) < size:
        raise NoMembers(f"ensemble.members = \"trials\" needs {size} completed trials with their runs; the study has "
                        f"{len(found)}: run tune with more trials, or use members = \"seeds\".")
    return [Member(f"trial {t.number}", None, Path(t.user_attrs["run_dir"])) for t in found[:size]]


def outputs(model: torch.nn.Module, data: Any, task: Task, device: torch.device, batch: int,
            tick: Any = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(what the member says, targets) batch by batch, in order: log-probabilities over the classes, or the
    predictions themselves (regression)."""
    model.eval()
    with torch.no_grad():
        for x, y in iter_batches(data, batch):
            if tick is not None:
                tick()
            x = x.float() if x.dtype == torch.float64 else x
            out = first_tensor(model(x.to(device))).float().cpu()
            yield (F.log_softmax(out, -1) if task.classes else out), task.targets(y)


class Average:
    """The running average of the members' outputs: probabilities (kept as log of the mean, without leaving log
    space) or predictions."""

    def __init__(self, task: Task) -> None:
        self.task, self.total, self.count = task, None, 0

    def add(self, out: torch.Tensor) -> None:
        if self.total is None:
            self.total = out.clone()
        else:
            self.total = torch.logaddexp(self.total, out) if self.task.classes else self.total + out
        self.count += 1

    def mean(self) -> torch.Tensor:
        assert self.total is not None
        return self.total - math.log(self.count) if self.task.classes else self.total / self.count


def score(task: Task, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Validation loss and metric of outputs over the whole split. For log-probabilities the task's cross-entropy
    is the negative log-likelihood itself (a log-softmax of log-probabilities changes nothing)."""
    right, count = task.correct(out, y)
    result = {"val_loss": float(task.loss(out, y))}
    if task.metric:
        result[task.metric] = float(right) / max(1, count)
    return result


def split_outputs(ctx: "CheckContext", model: torch.nn.Module, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A member's outputs and the targets over a whole split, concatenated."""
    parts = list(outputs(model, data, ctx.task, ctx.device, ctx.exp.train.eval_batch_size, ctx.tick))
    return torch.cat([o for o, _ in parts]), torch.cat([y for _, y in parts])
