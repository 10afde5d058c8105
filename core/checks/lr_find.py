"""Stage 3, "a safe learning rate": the learning-rate range test, three rules, several seeds (core/lrfind.py).

Single-rule finders are unreliable on noisy curves, so the verdict reads three rules on ``checks.lr_find_repeats``
sweeps and says how much they agree: the suggestion is the median over the sweeps of the rules' geometric mean,
the suggested range spans every rule of every sweep.
"""
from __future__ import annotations

import statistics
from typing import Any

from ..control import Stopped
from ..events import CheckRow
from ..lrfind import RULES, Sweep, downsample, geometric_mean, sweep
from .common import fmt, num, train_batches
from .context import CheckContext
from .verdict import Verdict

ID = "lr-find"
RECIPE = ("The recipe: Adam with 3e-4 is a safe start; keep the learning rate constant (no decay) in this stage "
          "and tune it at the very end.")


def check(ctx: CheckContext) -> Verdict:
    c = ctx.exp.checks
    sweeps: list[Sweep] = []
    try:
        for r in range(c.lr_find_repeats):
            s = _one_sweep(ctx, ctx.exp.train.seed + r, r)
            sweeps.append(s)
            ctx.emit(CheckRow(id=ID, table="sweeps", row=_row(s)))
    except Stopped:
        metrics = _metrics(ctx, sweeps)
        return Verdict("skip", f"stopped after {len(sweeps)} of {c.lr_find_repeats} sweeps; the finished ones are in "
                       "the metrics.", metrics)
    return _verdict(ctx, sweeps, _metrics(ctx, sweeps))


def _one_sweep(ctx: CheckContext, seed: int, r: int) -> Sweep:
    c = ctx.exp.checks
    total = c.lr_find_steps * c.lr_find_repeats

    def tick(i: int) -> None:
        if i % 10:
            ctx.tick()  # stop is honoured every step; progress every tenth
        else:
            ctx.tick(ID, r * c.lr_find_steps + i, total)

    model = ctx.new_model(seed)
    batches = train_batches(ctx, ctx.exp.train.batch_size, seed)
    return sweep(model, ctx.task, batches, ctx.exp.train, c.lr_find_start, c.lr_find_end, c.lr_find_steps, seed, tick)


def _row(s: Sweep) -> dict[str, Any]:
    rules = s.suggestions()
    found = [v for v in rules.values() if v]
    low = min(range(len(s.smoothed)), key=s.smoothed.__getitem__) if s.smoothed else None
    return {"seed": s.seed, **{k: num(v, 3) if v else None for k, v in rules.items()},
            "suggested": num(geometric_mean(found), 3) if found else None,
            "agreement": num(max(found) / min(found), 3) if found else None,
            "min_loss": num(s.smoothed[low], 4) if low is not None else None,
            "min_loss_lr": num(s.lrs[low], 3) if low is not None else None,
            "end_lr": num(s.lrs[-1], 3) if s.lrs else None, "diverged": s.diverged, "steps": len(s.lrs)}


def _metrics(ctx: CheckContext, sweeps: list[Sweep]) -> dict[str, Any]:
    rows = [_row(s) for s in sweeps]
    curves = []
    for s in sweeps:
        lr, loss = downsample(s.lrs, s.smoothed)
        curves.append({"seed": s.seed, "lr": [num(v, 4) for v in lr], "loss": [num(v, 5) for v in loss]})
    found = [r["suggested"] for r in rows if r["suggested"]]
    every = [r[k] for r in rows for k in RULES if r[k]]
    train = ctx.exp.train
    return {"recipe_lr": train.lr, "optimizer": train.optimizer, "schedule": train.schedule,
            "suggested_lr": num(statistics.median(found), 3) if found else None,
            "range": [num(min(every), 3), num(max(every), 3)] if every else None,
            "spread": num(max(found) / min(found), 3) if found else None,
            "rule_agreement": num(statistics.median(r["agreement"] for r in rows if r["agreement"]), 3) if found else None,
            "rules": list(RULES), "sweeps": rows, "curves": curves,
            "start_lr": ctx.exp.checks.lr_find_start, "end_lr": ctx.exp.checks.lr_find_end}


def _verdict(ctx: CheckContext, sweeps: list[Sweep], m: dict[str, Any]) -> Verdict:
    lr, schedule = ctx.exp.train.lr, ctx.exp.train.schedule
    decay = (f" A '{schedule}' schedule is configured: keep the learning rate constant in this stage "
             "(train.schedule = \"constant\").") if schedule != "constant" else ""
    if m["suggested_lr"] is None:
        return Verdict("warn", f"the loss fell at no learning rate from {fmt(m['start_lr'])} to {fmt(m['end_lr'])} "
                       f"in {len(sweeps)} sweeps: nothing to suggest.{decay}", m,
                       "A loss that no learning rate lowers points to a bug (see stage 2: overfit-batch, grad-flow) "
                       "or to inputs the model cannot use. " + RECIPE)
    lo, hi = m["range"]
    said = (f"suggested lr {fmt(m['suggested_lr'])} (range {fmt(lo)}–{fmt(hi)} over {len(RULES)} rules × "
            f"{len(sweeps)} seeds; the seeds' suggestions within {m['spread']:.2g}×, the rules within "
            f"{m['rule_agreement']:.2g}× of each other)")
    inside = lo <= lr <= hi
    if inside and not decay:
        return Verdict("pass", f"the recipe's lr {fmt(lr)} is inside the range: {said}.", m, RECIPE)
    where = "inside" if inside else ("below" if lr < lo else "above")
    hint = (f"Try train.lr = {fmt(m['suggested_lr'])} (--set train.lr={fmt(m['suggested_lr'])})"
            + (", or keep yours: it is inside the range" if inside else "") + f". {RECIPE}")
    if not inside and lr > hi:
        hint = "A learning rate above the range risks a wiggling or diverging loss. " + hint
    return Verdict("warn", f"the recipe's lr {fmt(lr)} is {where} the range: {said}.{decay}", m, hint)

