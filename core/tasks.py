"""What each task means for the loss and the metric; shared by the trainer and the checks."""
from __future__ import annotations

from typing import Any, Callable

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
    if out.shape != y.shape and out.numel() == y.numel():
        y = y.reshape(out.shape)  # (N,) vs (N, 1) would silently broadcast to an N×N loss
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
