"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; fastai's ``lr_find``), and the rules that
read a suggestion off its curve.

One sweep: a fresh model and the recipe's optimizer; the learning rate grows exponentially from ``start`` to
``end`` over ``steps`` steps, one training batch each; the loss is smoothed with a debiased exponential moving
average (β = 0.98), and the sweep stops once the smoothed loss exceeds ``DIVERGE`` × its best (or is not finite).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from .config import TrainConfig
from .tasks import Task, first_tensor

BETA = 0.98
DIVERGE = 4.0
WARMUP = 10  # smoothed points ignored by the divergence test and the rules: the average is still settling
RULES = ("steepest", "valley", "min_div_10")


@dataclass
class Sweep:
    seed: int
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # raw, one batch each
    smoothed: list[float] = field(default_factory=list)
    diverged: bool = False  # stopped because the loss blew up (else it reached the end lr)

    def suggestions(self) -> dict[str, float | None]:
        return suggest(self.lrs, self.smoothed)


def sweep(model: nn.Module, task: Task, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], cfg: TrainConfig,
          start: float, end: float, steps: int, seed: int, tick: Callable[[int], None]) -> Sweep:
    """Run one range test; ``tick(step)`` is called every step (it raises to stop)."""
    from .trainer import make_optimizer

    opt = make_optimizer(model, dataclasses.replace(cfg, lr=start))
    model.train()
    out = Sweep(seed=seed)
    avg, best = 0.0, math.inf
    for i in range(steps):
        tick(i)
        lr = start * (end / start) ** (i / max(1, steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(batches)
        loss = task.loss(first_tensor(model(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            out.diverged = True
            break
        avg = BETA * avg + (1 - BETA) * value
        smooth = avg / (1 - BETA ** (i + 1))
        out.lrs.append(lr), out.losses.append(value), out.smoothed.append(smooth)
        if i >= WARMUP:
            best = min(best, smooth)
            if smooth > DIVERGE * best:
                out.diverged = True
                break
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float | None]:
    """Each rule's learning rate (None when the curve is too short or never falls).

    - ``steepest``: where the smoothed loss falls fastest against log lr, before its minimum;
    - ``valley``: fastai's rule — the longest stretch over which the loss keeps falling, two thirds of the way down;
    - ``min_div_10``: the learning rate of the minimum, divided by ten.
    """
    lr, loss = np.asarray(lrs[WARMUP:]), np.asarray(smoothed[WARMUP:])
    if len(loss) < 5 or not loss.min() < loss[0]:
        return {rule: None for rule in RULES}
    low = int(loss.argmin())
    slope = np.gradient(loss, np.log10(lr))
    steep = int(slope[: max(low, 1)].argmin())
    return {"steepest": float(lr[steep]), "valley": float(lr[_valley(loss)]), "min_div_10": float(lr[low] / 10)}


def _valley(loss: np.ndarray) -> int:
    """fastai's ``valley``: the longest decreasing subsequence, a point two thirds of the way down it (O(n²), n ≤ a
    few hundred)."""
    n = len(loss)
    lds = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[end] < lds[i]:
            end, start = i, i - lds[i]
    third = (end - start) / 3
    return min(n - 1, max(0, start + int(third) + int(third / 2)))


def geometric_mean(values: list[float]) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def downsample(xs: list[float], ys: list[float], points: int = 100) -> tuple[list[float], list[float]]:
    """At most ``points`` (x, y) pairs, evenly spaced, the last one kept."""
    if len(xs) <= points:
        return list(xs), list(ys)
    idx = sorted(set(np.linspace(0, len(xs) - 1, points).round().astype(int).tolist()))
    return [xs[i] for i in idx], [ys[i] for i in idx]
