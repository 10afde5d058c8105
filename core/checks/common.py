"""Helpers shared by the stage-2 ("set up the skeleton") checks: batches as the trainer draws them, a few
optimizer steps, fresh models, target statistics, and number formatting for summaries."""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..data import head
from ..init_bias import target_stats
from ..tasks import TargetStats, first_tensor
from .context import CheckContext

__all__ = ["fresh_model", "train_batches", "first_batch", "eval_split", "stats", "num", "fmt", "names_list",
           "pick_batch_size", "output_of", "train_steps", "curve"]

OnStep = Callable[[int, torch.Tensor, float], bool]  # (step, outputs, loss) → True to stop early


def num(x: Any, digits: int = 6) -> Any:
    """A JSON-safe number: a rounded float, or the string 'nan'/'inf' (JSON has neither)."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return float(f"{x:.{digits}g}")


def fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def names_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def fresh_model(ctx: CheckContext, seed: int | None = None, init_bias: bool | None = None) -> nn.Module:
    """``ctx.new_model`` with ``model.init_bias`` forced on or off (None: as the recipe says)."""
    if init_bias is None or init_bias == ctx.exp.model.init_bias:
        return ctx.new_model(seed)
    return ctx.new_model(seed, exp=ctx.exp.replace("model", init_bias=init_bias))


def train_batches(ctx: CheckContext, batch_size: int, seed: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches exactly as the trainer draws them (``BatchStream``: same order, same drop_last)."""
    from ..trainer import BatchStream
    seed = ctx.exp.train.seed if seed is None else seed
    return BatchStream(ctx.splits().train, batch_size, seed, ctx.device).batches()


def first_batch(ctx: CheckContext, n: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic batch of ``n`` examples: the trainer's first batch (train) or the first ``n`` (val/test)."""
    if split == "train":
        return next(train_batches(ctx, n))
    x, y = head(getattr(ctx.splits(), split), n)
    return x.to(ctx.device), y.to(ctx.device)


def eval_split(ctx: CheckContext) -> tuple[str, Dataset]:
    splits = ctx.splits()
    return ("test", splits.test) if splits.test is not None else ("val", splits.val)


def stats(ctx: CheckContext) -> TargetStats:
    """Training-target statistics (class counts, or mean/variance), computed once per job."""
    key = f"skeleton.target_stats:{ctx.exp.name}:{ctx.exp.task}"
    if key not in ctx.cache:
        splits = ctx.splits()
        ctx.cache[key] = target_stats(splits.train, ctx.task, splits.info)
    return ctx.cache[key]


def output_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = first_tensor(model(x))
    if out is None:
        raise TypeError(f"the model returned {type(out).__name__}, not a tensor (or a tuple/dict holding one).")
    return out


def pick_batch_size(shape: tuple[int, ...], n_available: int, preferred: int = 8, minimum: int = 4) -> int:
    """A batch size ≥ ``minimum`` that equals no other dimension of the input, so that a tensor's
    first dimension of that size can only be the batch (not a sequence length or a channel count)."""
    others = set(shape)
    for b in [preferred, *range(preferred - 1, minimum - 1, -1), *range(preferred + 1, 64)]:
        if b not in others and b <= n_available:
            return b
    return min(n_available, preferred)


def train_steps(ctx: CheckContext, model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                steps: int | None, lr: float, label: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                on_step: OnStep | None = None) -> list[float]:
    """Up to ``steps`` optimizer steps (None: until ``on_step`` ends it) with the recipe's optimizer at a constant
    ``lr``, in train mode; the loss of every step. Ends early on a non-finite loss, or when ``on_step(step,
    outputs, loss)`` returns True (it may switch the model to eval mode to look, and must switch it back)."""
    from ..trainer import make_optimizer
    opt = make_optimizer(model, dataclasses.replace(ctx.exp.train, lr=lr))
    loss_fn = ctx.task.loss
    model.train()
    losses = []
    for step in (range(steps) if steps is not None else itertools.count()):
        ctx.tick(label, step, steps or 0)
        x, y = next(batches)
        if transform is not None:
            x = transform(x)
        out = output_of(model, x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        losses.append(value)
        if not math.isfinite(value) or (on_step is not None and on_step(step, out.detach(), value)):
            break
    return losses


def curve(values: list[float], points: int = 50) -> list[Any]:
    """A loss curve downsampled (by striding) to at most ``points`` values, for the TUI."""
    if len(values) <= points:
        return [num(v, 5) for v in values]
    stride = len(values) / points
    return [num(values[min(len(values) - 1, int(i * stride))], 5) for i in range(points)] + [num(values[-1], 5)]
