"""What a model's outputs look like, for the checks that read them (output-range, overfit-batch)."""
from __future__ import annotations

import math

import torch

from ..tasks import tensor_key


def looks_like_probabilities(out: torch.Tensor) -> bool:
    """Non-negative rows that sum to 1 along the class dimension: softmax was applied already."""
    if out.dim() < 2 or out.shape[-1] < 2 or not torch.isfinite(out).all():
        return False
    out = out.detach().double()
    return bool(out.min() >= -1e-6 and (out.sum(-1) - 1).abs().max() < 1e-3)


def ignores_input(x: torch.Tensor, out: torch.Tensor) -> bool:
    """The outputs for distinct examples are identical: nothing of the input reaches the output."""
    if out.shape[0] < 2 or len({tensor_key(xi) for xi in x}) < 2:
        return False
    out = out.detach().double()
    spread = (out - out[:1]).abs().max()
    return bool(spread <= 1e-6 * (out.abs().max() + 1e-12))


def probability_floor(classes: int) -> float:
    """The lowest cross-entropy of outputs confined to [0, 1] (softmax or sigmoid before the loss): a
    one-hot "logit" vector over C classes still gives ln(1 + (C−1)/e)."""
    return math.log(1 + (classes - 1) / math.e)
