"""Stage 2: "verify loss @ init" and "init well" (final-layer bias)."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from ..events import CheckResult
from . import check, result
from .context import CheckContext
from .skeleton_common import fmt, fresh_model, num, output_of, stats, train_batches

INIT_BIAS_HINT = ("Init well: set model.init_bias = true in the recipe's model table of recipes.toml "
                  "(e.g. model = {{ …, init_bias = true }} under [recipe.{name}]); training then starts from the prior "
                  "instead of spending its first iterations learning the bias.")


def measure_init_loss(ctx: CheckContext, model: nn.Module) -> tuple[float, int]:
    """Mean loss over ``checks.init_loss_batches`` training batches in train mode (what step 0 sees),
    and the width of the model's output (its number of classes)."""
    cfg = ctx.exp.checks
    loss_fn = ctx.loss_fn()
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
    loss of a plain init (uniform softmax over the outputs, or predicting 0)."""
    st = stats(ctx)
    if ctx.exp.task == "regression":
        assert st.var is not None and st.mean is not None
        return {"expected": float(st.var.mean()), "uniform": float((st.var + st.mean ** 2).mean())}
    classes = max(width, len(st.counts)) if width > 1 else len(st.counts)
    return {"expected": st.entropy(), "uniform": math.log(max(classes, 1)), "classes": classes}


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(abs(b), 1e-3)


@check("init-loss", "Verify loss at init")
def init_loss(ctx: CheckContext) -> CheckResult:
    tol = ctx.exp.checks.init_loss_tolerance
    measured, width = measure_init_loss(ctx, ctx.new_model())
    exp = expectations(ctx, width)
    expected, uniform = exp["expected"], exp["uniform"]
    regression = ctx.exp.task == "regression"
    what = "Var(y)" if regression else ("ln C" if _close(expected, uniform, 0.01) else "the entropy of the class prior")
    metrics: dict[str, Any] = {"loss": num(measured), "expected": num(expected), "uniform_guess": num(uniform),
                               "tolerance": tol, "batches": ctx.exp.checks.init_loss_batches}
    if "classes" in exp:
        metrics["classes"] = int(exp["classes"])
    base = f"loss at init {fmt(measured)}, expected {fmt(expected)} ({what})"
    if not math.isfinite(measured):
        return result("init-loss", "fail", f"loss at init is {measured}: the model produces non-finite outputs before any training.",
                      metrics, "Look for log(0), division by zero or overflow in the forward pass and in the data (NaN inputs?).")
    if _close(measured, expected, tol):
        return result("init-loss", "pass", f"{base}: within {tol:.0%}.", metrics,
                      "The model starts where a network that knows nothing should.")
    classes = len(stats(ctx).counts) if stats(ctx).counts is not None else 0
    if not regression and classes and exp.get("classes", 0) > classes and _close(measured, uniform, tol):
        return result("init-loss", "warn", f"{base}: it matches a uniform guess over the model's {exp['classes']} outputs "
                      f"(ln {exp['classes']} = {fmt(uniform)}), but there are {classes} classes.", metrics,
                      f"Build the last layer with {classes} outputs: the extra ones only absorb probability mass.")
    if not ctx.exp.model.init_bias and _close(measured, uniform, tol):
        what_uniform = "predicting 0" if regression else f"a uniform guess over {exp.get('classes')} outputs (ln C = {fmt(uniform)})"
        why = "the targets are not centred" if regression else "the classes are imbalanced"
        return result("init-loss", "warn", f"{base}: it matches {what_uniform}, but {why}.", metrics,
                      "Init well: set the final-layer bias to the " + ("target mean" if regression else "log class priors")
                      + " (run the init-bias item; set model.init_bias = true in recipes.toml).")
    if measured > expected:
        hint = ("The outputs at init are too large (over-confident): scale down the final layer's weights "
                "(e.g. ×0.01 or zero-init) or check the input scale; also check the loss and the labels.")
        if regression:
            hint = "The outputs at init are far from the targets: check the target scale (standardise y) and the final layer's init."
        return result("init-loss", "fail", f"{base}: {measured / max(expected, 1e-12):.2f}× too high.", metrics, hint)
    return result("init-loss", "warn", f"{base}: lower than any model that ignores its input can reach.", metrics,
                  "Fine for a pretrained model; otherwise the labels may leak into the inputs, or the loss is computed wrongly "
                  "(wrong reduction, targets in the input).")


@check("init-bias", "Init well: final-layer bias")
def init_bias(ctx: CheckContext) -> CheckResult:
    from ..init_bias import apply_init_bias

    regression = ctx.exp.task == "regression"
    hint_on = INIT_BIAS_HINT.format(name=ctx.exp.name)
    already_on = ctx.exp.model.init_bias
    before, width = measure_init_loss(ctx, fresh_model(ctx, init_bias=False))
    model = fresh_model(ctx, init_bias=False)  # same seed: differs from the one above only in the bias
    try:
        applied = apply_init_bias(model, ctx.splits(), ctx.exp.task)
    except ValueError as exc:
        return result("init-bias", "warn", str(exc)[0].upper() + str(exc)[1:], {"loss_before": num(before)},
                      "Set the bias of the layer that produces the outputs by hand to the "
                      + ("target mean." if regression else "log class priors (log of each class's frequency in train)."))
    after, _ = measure_init_loss(ctx, model)
    exp = expectations(ctx, width)
    expected, uniform = exp["expected"], exp["uniform"]
    gap = uniform - expected  # what the bias can gain over a plain init
    matters = gap > 0.05 * max(abs(uniform), 1e-12)
    what = "target mean" if regression else "log class priors"
    metrics: dict[str, Any] = {"layer": applied["layer"], "kind": applied["kind"], "loss_before": num(before),
                               "loss_after": num(after), "expected": num(expected), "gain_possible": num(gap),
                               "bias": applied["bias"][:32], "init_bias_on": already_on}
    change = f"bias of '{applied['layer']}' ← {what}: init loss {fmt(before)} → {fmt(after)} (best input-free {fmt(expected)})"
    if ctx.fix and not already_on:
        # The fix holds for the rest of this job's checks; only recipes.toml carries it into training.
        ctx.exp = ctx.exp.replace("model", init_bias=True)
        fixed, _ = measure_init_loss(ctx, ctx.new_model())
        metrics["init_loss_after_fix"] = num(fixed)
        change += f"; applied for this job (init-loss re-measured: {fmt(fixed)})"
    if already_on:
        return result("init-bias", "pass", f"model.init_bias is on; {change}.", metrics,
                      "The final layer starts at the prior.")
    if not matters:
        return result("init-bias", "pass",
                      f"{'targets nearly centred' if regression else 'classes nearly balanced'}: {change}; little to gain.",
                      metrics, "Nothing to do; set model.init_bias = true anyway if you like.")
    why = (f"targets have mean {fmt(float(stats(ctx).mean.mean()))}" if regression
           else f"classes are imbalanced (entropy {fmt(expected)} < ln C {fmt(uniform)})")
    return result("init-bias", "warn", f"{why}: {change}.", metrics, hint_on)
