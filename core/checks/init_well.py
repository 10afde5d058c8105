"""Stage 2, "init well": set the final layer's bias to the log class priors (the target mean for
regression) and measure what that changes in the loss at init."""
from __future__ import annotations

from typing import Any

from .common import fmt, fresh_model, num, stats
from .context import CheckContext
from .init_loss import expectations, measure_init_loss
from .verdict import Verdict

INIT_BIAS_HINT = ("Init well: set model.init_bias = true in the recipe's model table of recipes.toml "
                  "(e.g. model = {{ …, init_bias = true }} under [recipe.{name}]); training then starts from the prior "
                  "instead of spending its first iterations learning the bias.")


def check(ctx: CheckContext) -> Verdict:
    from ..init_bias import apply_init_bias

    task = ctx.task
    what = "log class priors" if task.classes else "target mean"
    already_on = ctx.exp.model.init_bias
    before, width = measure_init_loss(ctx, fresh_model(ctx, init_bias=False))
    model = fresh_model(ctx, init_bias=False)  # same seed: differs from the one above only in the bias
    try:
        applied = apply_init_bias(model, ctx.splits(), task)
    except ValueError as exc:
        return Verdict("warn", str(exc)[0].upper() + str(exc)[1:], {"loss_before": num(before)},
                       "Set the bias of the layer that produces the outputs by hand to the "
                       + ("log class priors (log of each class's frequency in train)." if task.classes else "target mean."))
    after, _ = measure_init_loss(ctx, model)
    exp = expectations(ctx, width)
    expected, uniform = exp["expected"], exp["uniform"]
    gap = uniform - expected  # what the bias can gain over a plain init
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
        return Verdict("pass", f"model.init_bias is on; {change}.", metrics, "The final layer starts at the prior.")
    if not gap > 0.05 * max(abs(uniform), 1e-12):  # (NaN: nothing to gain either)
        return Verdict("pass", f"{'classes nearly balanced' if task.classes else 'targets nearly centred'}: {change}; "
                       "little to gain.", metrics, "Nothing to do; set model.init_bias = true anyway if you like.")
    why = (f"classes are imbalanced (entropy {fmt(expected)} < ln C {fmt(uniform)})" if task.classes
           else f"targets have mean {fmt(float(stats(ctx).mean.mean()))}")
    return Verdict("warn", f"{why}: {change}.", metrics, INIT_BIAS_HINT.format(name=ctx.exp.name))
