"""Runs the experiment items train (capacity points, regularization rungs, tuning trials, ensemble members, students):
ordinary run dirs with a tag, and found again when an item runs again.

A re-run of an item does not train again what finished: a run is reused when it completed, still has its
checkpoint, and its config.json trains exactly the same thing (``training_config``: every key but the stage 4–6
plans, the ``checks`` table and the description) — whichever item, or ``train``, made it. So a stopped ladder or
ensemble picks up where it was, and the ensemble's first seed is the regularize ladder's or ``train``'s run when
their configurations agree. Each item keeps what it writes besides runs (TOML snippets, a study's journal, teacher
outputs) in a folder of the recipe's runs dir named ``<item>-<digest>``: the digest of the experiment and of the
item's plan, so that the same plan finds the same folder.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .config import Experiment
from .control import RunControl
from .events import Event, LogLine, Progress, Step
from .paths import inside
from .rundir import CHECKPOINT, CONFIG
from .runs import flatten_config, list_runs, normalised
from .runsummary import read_summary

if TYPE_CHECKING:
    from .checks.context import CheckContext

TRAIN_EVAL_SAMPLES = 4096  # the training loss of a finished run: eval mode, on at most this many training examples


def training_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a run trains, as ``--set`` keys: the config without the plans, the checks table and the description."""
    return {k: v for k, v in flatten_config(normalised(dict(config))).items() if not k.startswith("checks.")}


def digest(exp: Experiment, *parts: Any) -> str:
    """8 hex digits naming the experiment's training configuration together with ``parts`` (an item's plan)."""
    text = json.dumps([training_config(exp.to_dict()), parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def item_dir(runs_root: str | Path, exp: Experiment, name: str, create: bool = True) -> Path:
    """``<runs>/<recipe>/<name>/`` (created unless ``create`` is off), where an item keeps what is not a run."""
    path = inside(runs_root, exp.name, name)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def find_completed(runs_root: str | Path, exp: Experiment) -> Path | None:
    """The newest completed run of ``exp``'s recipe, with its checkpoint, that trained exactly ``exp``."""
    want = training_config(exp.to_dict())
    for row in reversed(list_runs(runs_root, exp.name)):
        path = Path(row["run_dir"])
        if row["status"] != "completed" or not (path / CHECKPOINT).is_file():
            continue
        try:
            if training_config(json.loads((path / CONFIG).read_text())) == want:
                return path
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class Trained:
    run_dir: Path | None
    status: str  # completed | stopped | failed
    reused: bool
    steps: int
    seconds: float
    final: dict[str, Any] = field(default_factory=dict)  # loss (last batch), val_loss, the metric
    reason: str = ""
    early_stop: dict[str, Any] = field(default_factory=dict)


def train_or_reuse(ctx: "CheckContext", exp: Experiment, tag: Mapping[str, Any], progress: tuple[int, int],
                   control: RunControl | None = None, on_event: Callable[[Event], None] | None = None) -> Trained:
    """A completed run of ``exp`` when there is one (``find_completed``), else a new run tagged ``tag``."""
    found = find_completed(ctx.runs_root, exp)
    if found is not None:
        return reused(found)
    return train_run(ctx, exp, tag, progress, control, on_event)


def reused(run_dir: Path) -> Trained:
    s = read_summary(run_dir) or {}
    metric = s.get("metric") or {}
    final = {"loss": (s.get("train_loss") or {}).get("final"), "val_loss": (s.get("val_loss") or {}).get("final")}
    if metric.get("name"):
        final[metric["name"]] = metric.get("final")
    return Trained(run_dir, "completed", True, int(s.get("steps") or 0), float(s.get("seconds") or 0.0), final,
                   early_stop=dict(s.get("early_stop") or {}))


def train_run(ctx: "CheckContext", exp: Experiment, tag: Mapping[str, Any], progress: tuple[int, int],
              control: RunControl | None = None, on_event: Callable[[Event], None] | None = None) -> Trained:
    """Train ``exp`` into a new run dir tagged ``tag``. The run's own events go to its run dir; the check reports
    progress (``progress``: steps done before this run, steps in all) and the run's warnings."""
    from .jobs import run_training

    offset, total = progress
    label = f"{tag.get('kind', '')} {tag.get('label', '')}".strip()

    def forward(e: Event) -> None:
        if isinstance(e, Step):
            ctx.emit(Progress(task=label, done=offset + e.step, total=total))
        elif isinstance(e, LogLine) and e.level != "info":
            ctx.emit(LogLine(f"{label}: {e.message}", level=e.level, detail=e.detail))
        if on_event is not None:
            on_event(e)

    t0 = time.perf_counter()
    out = run_training(exp, (control or ctx.control).with_emit(forward), runs_root=ctx.runs_root,
                       known={exp.name: ctx.exp}, tag=dict(tag))
    return Trained(out.run_dir, out.status, False, out.steps, round(time.perf_counter() - t0, 2), dict(out.final),
                   out.reason, dict(out.early_stop))


def loaded_model(ctx: "CheckContext", run_dir: Path, name: str = CHECKPOINT) -> Any:
    """The run's model (eval mode, on the check device) from its checkpoint, built by the recipes file's code."""
    from .jobs import load_trained_model

    _, model, _ = load_trained_model(run_dir, {ctx.exp.name: ctx.exp}, splits=ctx.splits())
    return model.to(ctx.device)


def train_set_loss(ctx: "CheckContext", model: Any) -> float:
    """The model's loss in eval mode on the first ``TRAIN_EVAL_SAMPLES`` training examples, without augmentation:
    what it fits (single-batch losses are too noisy to compare runs by)."""
    from torch.utils.data import Subset

    from .audit import per_sample_losses

    train = ctx.splits().train
    train = getattr(train, "base", train)  # the recipe's own augmentation (core/augment.py) left out
    subset = train if len(train) <= TRAIN_EVAL_SAMPLES else Subset(train, range(TRAIN_EVAL_SAMPLES))
    return float(per_sample_losses(model, subset, ctx.task, device=ctx.device, tick=lambda *_: ctx.tick()).loss.mean())


def numbers(ctx: "CheckContext", t: Trained) -> dict[str, Any]:
    """A table row's numbers of a trained run: validation loss, the metric, the last batch's loss."""
    row: dict[str, Any] = {"val_loss": _n(t.final.get("val_loss")), "last_batch_loss": _n(t.final.get("loss"))}
    metric = ctx.task.metric
    if metric:
        row[metric] = _n(t.final.get(metric))
    return row


def _n(v: Any) -> Any:
    from .checks.common import num
    return None if v is None else num(v, 5)
