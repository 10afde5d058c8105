"""Stage 2, "input-independent baseline": train on the real inputs and on zeroed ones; real must do better."""
from __future__ import annotations

import math
from typing import Any

import torch

from .common import curve, fmt, num, train_batches, train_steps
from .context import CheckContext
from .verdict import Verdict


def check(ctx: CheckContext) -> Verdict:
    cfg = ctx.exp.checks
    steps, lr = cfg.zero_input_steps, ctx.exp.train.lr
    tail = max(5, steps // 10)
    real = train_steps(ctx, ctx.new_model(), train_batches(ctx, cfg.batch_size), steps, lr, "zero-input: real inputs")
    zero = train_steps(ctx, ctx.new_model(), train_batches(ctx, cfg.batch_size), steps, lr, "zero-input: zeroed inputs",
                       transform=torch.zeros_like)
    r = sum(real[-tail:]) / len(real[-tail:])
    z = sum(zero[-tail:]) / len(zero[-tail:])
    metrics: dict[str, Any] = {"steps": steps, "lr": lr, "real_final": num(r), "zero_final": num(z),
                               "margin": cfg.zero_input_margin, "real_curve": curve(real), "zero_curve": curve(zero)}
    both = f"after {steps} steps the loss is {fmt(r)} on real inputs and {fmt(z)} on zeroed inputs"
    if not math.isfinite(r):
        return Verdict("fail", f"training on real inputs diverged (loss {r}) within {len(real)} steps.", metrics,
                       "Lower the learning rate; check the inputs for NaN/Inf and their scale (batch-view).")
    if math.isfinite(z) and r <= z * (1 - cfg.zero_input_margin):
        return Verdict("pass", f"{both}: the model extracts information from its input.", metrics,
                       "The model performs worse with inputs set to zero, as it should.")
    if math.isfinite(z) and z < 1e-3 and r < 1e-3:
        return Verdict("warn", f"{both}: the task is solved without looking at the input.", metrics,
                       "The targets can be predicted without the input (a constant label?): check the labels "
                       "(class-balance).")
    if math.isfinite(z) and r < z:
        return Verdict("warn", f"{both}: real inputs help only {1 - r / z:.1%} (want ≥ {cfg.zero_input_margin:.0%}).",
                       metrics, "Little is learnt from the input in this budget: the input may be mostly ignored or "
                       "badly scaled; compare over more steps (checks.zero_input_steps) and look at batch-view.")
    return Verdict("fail", f"{both}: the model does no better with its input than without.", metrics,
                   "The model ignores its input: check the forward pass (is x used? overwritten? masked to zero? "
                   "detached?) and that inputs and labels are paired.")
