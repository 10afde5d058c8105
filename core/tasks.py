"""What each task means for the loss and the metric; shared by the trainer and the checks."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

IGNORE_INDEX = -1  # language-model targets at padding positions

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_fn(task: str) -> LossFn:
    if task == "classification":
        return F.cross_entropy
    if task == "language-model":
        return lm_loss
    if task == "regression":
        return regression_loss
    raise ValueError(f"unknown task {task!r}")


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)


def regression_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.dim() == y.dim() + 1 and out.shape[-1] == 1:
        out = out.squeeze(-1)
    return F.mse_loss(out, y.to(out.dtype))


def correct_and_count(task: str, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(number right as a tensor, number of targets) for accuracy; regression has none."""
    if task == "classification":
        return (out.argmax(-1) == y).sum(), y.numel()
    if task == "language-model":
        keep = y != IGNORE_INDEX
        return ((out.argmax(-1) == y) & keep).sum(), int(keep.sum())
    return torch.zeros(()), 0


def metric_name(task: str) -> str | None:
    return None if task == "regression" else "accuracy"


def expected_init_loss(task: str, prior: torch.Tensor | None = None, target_var: float | None = None,
                       num_classes: int | None = None) -> float:
    """The loss of a model that knows nothing: ln C, the prior's entropy, or Var(y)."""
    if task == "regression":
        assert target_var is not None
        return float(target_var)
    if prior is not None:
        p = prior[prior > 0].double()
        return float(-(p * p.log()).sum())
    assert num_classes
    return math.log(num_classes)
