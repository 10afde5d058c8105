"""What a task means: its loss, what "right" is, its metric, the best guess without the input, and how a
prediction is read. One small class per task; the trainer and the checks ask the task, never its name
(as nanoGPT's loop never branches on the problem: the model hands it the loss).

``task_of("classification")`` → ``Classification()``; ``Experiment.task`` stays the recipe's string.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .data import DataInfo

IGNORE_INDEX = -1  # language-model targets at padding positions (the README's contract)


@dataclass(frozen=True)
class TargetStats:
    """What an input-free predictor can know about the training targets."""

    counts: torch.Tensor | None = None  # classes (tokens): float64 count per class
    mean: torch.Tensor | None = None  # regression: per output, float64
    var: torch.Tensor | None = None  # regression: per output (population variance)
    n: int = 0  # targets counted (tokens for language models)

    @property
    def prior(self) -> torch.Tensor:
        assert self.counts is not None
        return self.counts / self.counts.sum().clamp(min=1)

    def log_prior(self) -> torch.Tensor:
        # Half a pseudo-count keeps classes absent from train finite (very unlikely, never -inf).
        assert self.counts is not None
        c = self.counts + 0.5
        return (c / c.sum()).log()

    def entropy(self) -> float:
        p = self.prior[self.prior > 0]
        return float(-(p * p.log()).sum())


class Task:
    """The interface; see the three subclasses below."""

    name: ClassVar[str]
    metric: ClassVar[str | None] = None  # the validation metric the trainer reports (correct / count)
    classes: ClassVar[bool] = False  # outputs are logits over classes (tokens); targets are class ids
    sequence: ClassVar[bool] = False  # one target per position (autoregressive), else one per example
    target_dtype: ClassVar[torch.dtype | None] = None  # targets are cast to this (None: left as they are)
    bias_kind: ClassVar[str] = ""  # what "init well" sets the final-layer bias to

    @property
    def example_labels(self) -> bool:
        """One class label per example (what confident learning and a confusion matrix of examples need)."""
        return self.classes and not self.sequence

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """numpy-made batches carry int32 labels: cast to what the loss wants."""
        if self.target_dtype is not None and y.dtype != self.target_dtype:
            return y.to(self.target_dtype)
        return y

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One loss per example, shape (N,): what the loss averages (language models: over real tokens)."""
        raise NotImplementedError

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """The point prediction: the most likely class, or the value itself."""
        return out.argmax(-1) if self.classes else out

    def sample(self, out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A prediction drawn from the model's predictive distribution (softmax over the logits); a
        regression model trained with MSE predicts the mean, which is returned as it is."""
        if not self.classes:
            return out
        probs = F.softmax(out.detach().double(), dim=-1)
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return drawn.reshape(out.shape[:-1])

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(number right as a tensor, number of targets) for the metric; (0, 0) without one."""
        return torch.zeros(()), 0

    def accuracy(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """The fraction of targets right; 1.0 when the task has no notion of right (nothing to get wrong)."""
        right, count = self.correct(out, y)
        return float(right) / count if count else 1.0

    def target_stats(self, y: torch.Tensor, info: "DataInfo") -> TargetStats:
        """Class (token) counts, or target mean/variance, of all training targets ``y``."""
        raise NotImplementedError

    def prior_loss(self, stats: TargetStats) -> float:
        """The loss of the best input-free guess: the entropy of the class prior, or Var(y)."""
        raise NotImplementedError

    def plain_loss(self, stats: TargetStats, outputs: int) -> float:
        """The loss of a plain init: a uniform softmax over ``outputs`` logits, or predicting 0."""
        raise NotImplementedError

    def bias_init(self, stats: TargetStats) -> torch.Tensor:
        """What "init well" puts in the final layer's bias: the log class priors, or the target mean."""
        raise NotImplementedError

    def loss_unit(self, y: torch.Tensor) -> float:
        """The scale of this loss on targets ``y``, for tolerances: 1 for cross-entropy, Var(y) for MSE."""
        return 1.0

    def achievable(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """The lowest loss and the highest accuracy a model can reach on this batch: examples with identical
        inputs (language models: identical prefixes) but different targets cannot all be fitted."""
        raise NotImplementedError

    def output_shape(self, y: torch.Tensor, classes: int) -> tuple[int, ...]:
        """The output shape the loss needs for targets ``y``."""
        return tuple(y.shape)


class _ClassTask(Task):
    """Shared by the two tasks whose outputs are logits over classes."""

    classes = True
    metric = "accuracy"
    target_dtype = torch.int64
    bias_kind = "log-prior"

    def prior_loss(self, stats: TargetStats) -> float:
        return stats.entropy()

    def plain_loss(self, stats: TargetStats, outputs: int) -> float:
        return math.log(max(outputs, 1))

    def bias_init(self, stats: TargetStats) -> torch.Tensor:
        return stats.log_prior()

    def _counts(self, y: torch.Tensor, info: "DataInfo") -> TargetStats:
        y = y[y >= 0]
        size = max(int(info.num_classes or 0), int(y.max()) + 1 if len(y) else 1)
        return TargetStats(counts=torch.bincount(y, minlength=size).double(), n=len(y))


class Classification(_ClassTask):
    name = "classification"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y)

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y, reduction="none")

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        return (out.argmax(-1) == y).sum(), y.numel()

    def target_stats(self, y: torch.Tensor, info: "DataInfo") -> TargetStats:
        return self._counts(y.long().reshape(-1), info)

    def achievable(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        groups: dict[bytes, list[int]] = defaultdict(list)
        for b in range(x.shape[0]):
            groups[tensor_key(x[b])].append(int(y[b]))
        return _best_of_groups(groups)

    def output_shape(self, y: torch.Tensor, classes: int) -> tuple[int, ...]:
        return (len(y), classes)


class LanguageModel(_ClassTask):
    name = "language-model"
    sequence = True

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX,
                             reduction="none").view(y.shape)
        keep = y != IGNORE_INDEX
        return (ce * keep).sum(1) / keep.sum(1).clamp(min=1)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        keep = y != IGNORE_INDEX
        return ((out.argmax(-1) == y) & keep).sum(), int(keep.sum())

    def target_stats(self, y: torch.Tensor, info: "DataInfo") -> TargetStats:
        y = y.long().reshape(-1)
        return self._counts(y[y != info.ignore_index], info)

    def achievable(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        groups: dict[bytes, list[int]] = defaultdict(list)
        for b in range(x.shape[0]):
            for t in range(x.shape[1]):
                target = int(y[b, t])
                if target != IGNORE_INDEX:
                    groups[tensor_key(x[b, : t + 1])].append(target)
        return _best_of_groups(groups)

    def output_shape(self, y: torch.Tensor, classes: int) -> tuple[int, ...]:
        return (*y.shape, classes)


class Regression(Task):
    name = "regression"
    bias_kind = "mean"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, _like(out, y).to(out.dtype))

    def per_sample_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        err = (out - _like(out, y).to(out.dtype)) ** 2
        return err.reshape(len(err), -1).mean(1)

    def target_stats(self, y: torch.Tensor, info: "DataInfo") -> TargetStats:
        y = y.double()
        y = y.reshape(len(y), -1)
        return TargetStats(mean=y.mean(0), var=y.var(0, unbiased=False), n=len(y))

    def prior_loss(self, stats: TargetStats) -> float:
        assert stats.var is not None
        return float(stats.var.mean())

    def plain_loss(self, stats: TargetStats, outputs: int) -> float:
        assert stats.var is not None and stats.mean is not None
        return float((stats.var + stats.mean ** 2).mean())

    def bias_init(self, stats: TargetStats) -> torch.Tensor:
        assert stats.mean is not None
        return stats.mean

    def loss_unit(self, y: torch.Tensor) -> float:
        scale = float(y.double().var(unbiased=False)) if y.numel() > 1 else 1.0
        return scale if scale > 0 else 1.0

    def achievable(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        yy = y.double().reshape(len(y), -1)
        groups: dict[bytes, list[torch.Tensor]] = defaultdict(list)
        for b in range(x.shape[0]):
            groups[tensor_key(x[b])].append(yy[b])
        total = sum(float(((torch.stack(v) - torch.stack(v).mean(0)) ** 2).sum()) for v in groups.values())
        return total / max(1, yy.numel()), 1.0


TASKS: dict[str, Task] = {t.name: t for t in (Classification(), LanguageModel(), Regression())}


def task_of(task: "str | Task") -> Task:
    """The task object of a recipe's ``task`` string (a task object is returned as it is)."""
    if isinstance(task, Task):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}") from None


def _like(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) vs (N, 1) would silently broadcast to an N×N loss: give ``y`` the output's shape."""
    return y.reshape(out.shape) if out.shape != y.shape and out.numel() == y.numel() else y


def tensor_key(t: torch.Tensor) -> bytes:
    """The bytes of a tensor, to group identical inputs."""
    return t.detach().cpu().contiguous().numpy().tobytes()


def _best_of_groups(groups: dict[bytes, list[int]]) -> tuple[float, float]:
    """Each group of identical inputs is best fitted by its targets' frequencies: the loss is their entropy,
    the accuracy that of the most common target."""
    n = sum(len(v) for v in groups.values())
    loss, right = 0.0, 0
    for targets in groups.values():
        counts: dict[int, int] = defaultdict(int)
        for t in targets:
            counts[t] += 1
        loss += -sum(c * math.log(c / len(targets)) for c in counts.values())
        right += max(counts.values())
    return loss / max(1, n), right / max(1, n)


def first_tensor(out: Any) -> torch.Tensor | None:
    """The prediction tensor of a model output: itself, the first tensor of a tuple, or ``logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"]
        out = list(out.values())
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (list, tuple)):
        for item in out:
            t = first_tensor(item)
            if t is not None:
                return t
    return None
