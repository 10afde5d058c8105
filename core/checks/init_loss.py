"""Stage 2, "verify loss @ init": the loss of a fresh model must be that of the best input-free guess
(ln C for balanced classes, the prior's entropy, Var(y) for regression)."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from .common import fmt, num, output_of, stats, train_batches
from .context import CheckContext
from .verdict import Verdict


def measure_init_loss(ctx: CheckContext, model: nn.Module) -> tuple[float, int]:
    """Mean loss over ``checks.init_loss_batches`` training batches in train mode (what step 0 sees),
    and the width of the model's output (its number of classes)."""
    cfg = ctx.exp.checks
    loss_fn = ctx.task.loss
    batches = train_batches(ctx, cfg.batch_size)
    model.train()
    total, width = 0.0, 0
    with torch.no_grad():
        for i in range(cfg.init_loss_batches):
            ctx.tick("init loss", i, cfg.init_loss_batches)
            x, y = next(batches)
            out = output_of(model, x)
            width = out.shape[-1] if out.dim() > 1 else 1
            total += float(loss_fn(out.float(), y))
    return total / cfg.init_loss_batches, width


def expectations(ctx: CheckContext, width: int) -> dict[str, float]:
    """``expected``: the loss of the best input-free guess (prior entropy, Var(y)); ``uniform``: the
    loss of a plain init (uniform softmax over the outputs, or predicting 0); ``classes``: how many outputs
    a uniform guess spreads over (class tasks only)."""
    st, task = stats(ctx), ctx.task
    if not task.classes:
        return {"expected": task.prior_loss(st), "uniform": task.plain_loss(st, width)}
    classes = max(width, len(st.counts)) if width > 1 else len(st.counts)
    return {"expected": task.prior_loss(st), "uniform": task.plain_loss(st, classes), "classes": classes}


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(abs(b), 1e-3)


def check(ctx: CheckContext) -> Verdict:
    tol, classes_task = ctx.exp.checks.init_loss_tolerance, ctx.task.classes
    measured, width = measure_init_loss(ctx, ctx.new_model())
    exp = expectations(ctx, width)
    expected, uniform = exp["expected"], exp["uniform"]
    what = ("the entropy of the class prior" if not close(expected, uniform, 0.01) else "ln C") if classes_task else "Var(y)"
    metrics: dict[str, Any] = {"loss": num(measured), "expected": num(expected), "uniform_guess": num(uniform),
                               "tolerance": tol, "batches": ctx.exp.checks.init_loss_batches}
    if "classes" in exp:
        metrics["classes"] = int(exp["classes"])
    base = f"loss at init {fmt(measured)}, expected {fmt(expected)} ({what})"
    if not math.isfinite(measured):
        return Verdict("fail", f"loss at init is {measured}: the model produces non-finite outputs before any training.",
                       metrics, "Look for log(0), division by zero or overflow in the forward pass and in the data "
                       "(NaN inputs?).")
    if close(measured, expected, tol):
        return Verdict("pass", f"{base}: within {tol:.0%}.", metrics,
                       "The model starts where a network that knows nothing should.")
    classes = len(stats(ctx).counts) if stats(ctx).counts is not None else 0
    if classes_task and classes and exp.get("classes", 0) > classes and close(measured, uniform, tol):
        return Verdict("warn", f"{base}: it matches a uniform guess over the model's {exp['classes']} outputs "
                       f"(ln {exp['classes']} = {fmt(uniform)}), but there are {classes} classes.", metrics,
                       f"Build the last layer with {classes} outputs: the extra ones only absorb probability mass.")
    if not ctx.exp.model.init_bias and close(measured, uniform, tol):
        return _plain_init(ctx, base, uniform, exp, metrics)
    if measured > expected:
        hint = ("The outputs at init are too large (over-confident): scale down the final layer's weights "
                "(e.g. ×0.01 or zero-init) or check the input scale; also check the loss and the labels.")
        if not classes_task:
            hint = "The outputs at init are far from the targets: check the target scale (standardise y) and the final layer's init."
        return Verdict("fail", f"{base}: {measured / max(expected, 1e-12):.2f}× too high.", metrics, hint)
    return Verdict("warn", f"{base}: lower than any model that ignores its input can reach.", metrics,
                   "Fine for a pretrained model; otherwise the labels may leak into the inputs, or the loss is computed "
                   "wrongly (wrong reduction, targets in the input).")


def _plain_init(ctx: CheckContext, base: str, uniform: float, exp: dict[str, float], metrics: dict[str, Any]) -> Verdict:
    """The loss is that of a plain init although the best input-free guess is better: "init well"."""
    if ctx.task.classes:
        what_uniform, why = f"a uniform guess over {exp.get('classes')} outputs (ln C = {fmt(uniform)})", "the classes are imbalanced"
    else:
        what_uniform, why = "predicting 0", "the targets are not centred"
    return Verdict("warn", f"{base}: it matches {what_uniform}, but {why}.", metrics,
                   "Init well: set the final-layer bias to the " + ("log class priors" if ctx.task.classes else "target mean")
                   + " (run the init-bias item; set model.init_bias = true in recipes.toml).")
