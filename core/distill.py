"""Knowledge distillation (Hinton et al. 2015): a student trained on the ensemble's softened outputs, mixed with
the hard labels. The trainer is not changed: a student run (``train.teacher`` names a teacher-outputs file) gets
a training split whose targets carry the teacher's log-probabilities beside each label, and a task whose loss is

    (1 − α) · CE(student, label) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

(``distill.temperature`` T, ``distill.alpha`` α; T² keeps the soft gradients' scale, as in the paper). Validation
targets are plain labels, so evaluation, the metric and early stopping see the task's own loss. The teacher file
holds the ensemble's log of averaged probabilities on the training split, in its order (``teacher_file``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .config import ConfigError, Experiment
from .tasks import IGNORE_INDEX, Task, task_of

if TYPE_CHECKING:
    from .data import Splits

TEACHER = "teacher.pt"


def with_teacher(exp: Experiment, splits: "Splits") -> tuple[Task, Dataset]:
    """(the soft-target task, the training split with the teacher's outputs beside each label)."""
    path = Path(exp.train.teacher or "")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"train.teacher: cannot read the teacher outputs {path}: {exc}; run the distill item "
                          "again to write them.") from None
    teacher = state["log_probs"].float()
    if len(teacher) != len(splits.train):
        raise ConfigError(f"train.teacher: {path} holds outputs for {len(teacher):,} training samples, the training "
                          f"split has {len(splits.train):,}: run the distill item again.")
    base = task_of(exp.task)
    if not base.classes:
        raise ConfigError("train.teacher: distillation needs a task with classes (classification, language model).")
    return soft_task(base, exp.distill.temperature, exp.distill.alpha), with_targets(splits.train, teacher)


def write_teacher(folder: Path, log_probs: torch.Tensor, members: list[str]) -> Path:
    """The teacher file (temporary file, then rename: never half-written)."""
    path = folder / TEACHER
    tmp = path.with_name(TEACHER + ".tmp")
    torch.save({"log_probs": log_probs.to(torch.float16 if log_probs.numel() > 2**24 else torch.float32),
                "members": members}, tmp)
    tmp.replace(path)
    return path


def pack(y: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The label (as a float: class ids are exact below 2^24) in front of the teacher's log-probabilities."""
    return torch.cat([y.unsqueeze(-1).float(), teacher.float()], dim=-1)


def with_targets(train: Dataset, teacher: torch.Tensor) -> Dataset:
    from .data import TensorPairs

    if isinstance(train, TensorPairs):  # the trainer's fast path: whole batches indexed at once
        return TensorPairs(train.x, pack(train.y.long(), teacher))
    return _Packed(train, teacher)


class _Packed(Dataset):
    def __init__(self, base: Dataset, teacher: torch.Tensor) -> None:
        self.base, self.teacher = base, teacher

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor]:
        x, y = self.base[i]
        return x, pack(torch.as_tensor(y).long(), self.teacher[i])


class SoftTargets:
    """Mixed into the task's own class (so everything else stays the task's): packed targets → the distillation
    loss; plain targets (validation) → the task's loss."""

    temperature: float = 4.0
    alpha: float = 0.5

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return y if y.is_floating_point() else super().targets(y)  # type: ignore[misc]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not y.is_floating_point():
            return super().loss(out, y)  # type: ignore[misc]
        hard, teacher = y[..., 0].long(), y[..., 1:]
        t, a = self.temperature, self.alpha
        student = F.log_softmax(out.float() / t, dim=-1)
        soft = F.log_softmax(teacher / t, dim=-1)
        kl = (soft.exp() * (soft - student)).sum(-1)
        real = hard != IGNORE_INDEX
        kl = (kl * real).sum() / real.sum().clamp(min=1)
        return (1 - a) * super().loss(out, hard) + a * t * t * kl  # type: ignore[misc]

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        return super().correct(out, y[..., 0].long() if y.is_floating_point() else y)  # type: ignore[misc]

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return super().per_sample_loss(out, y[..., 0].long() if y.is_floating_point() else y)  # type: ignore[misc]


def soft_task(base: Task, temperature: float, alpha: float) -> Task:
    cls = type(f"Distilled{type(base).__name__}", (SoftTargets, type(base)), {})
    task = cls()
    task.temperature, task.alpha = temperature, alpha
    return task
