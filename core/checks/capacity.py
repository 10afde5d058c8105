"""Stage 3, "increase capacity": the model at 3–4 capacities, same seed, same steps, each an ordinary run dir.

Each point is a training run (``run_training``) tagged ``{"kind": "capacity", "group": …, "label": …}`` so that
it is listed with the other runs; its training loss is then measured in eval mode on the first
``TRAIN_EVAL_SAMPLES`` training examples (single-batch losses are too noisy to rank models by).
"""
from __future__ import annotations

import math
import time
from typing import Any

from ..capacity import CapacityPoint, capacity_points
from ..config import apply_values
from ..events import CheckRow
from ..stage_runs import TRAIN_EVAL_SAMPLES, loaded_model, numbers, train_run, train_set_loss
from .common import fmt, num, stats
from .context import CheckContext
from .verdict import Verdict

ID = "capacity"
GAIN = 0.05  # each larger model must end at least 5 % below the next smaller one
FITS = 0.01  # a training loss below 1 % of the loss at init: the model fits the training set
HINT = ("Pick a model large enough to overfit: add capacity one step at a time and check that training loss goes "
        "down. The points are ordinary runs: `recipe-tui runs` lists them.")


def check(ctx: CheckContext) -> Verdict:
    points = _distinct(ctx, capacity_points(ctx.exp))
    if len(points) < 2:  # a factory model with fewer than two capacities (or all of one size) cannot be compared
        return Verdict("skip", f"fewer than two capacities to compare: model '{ctx.exp.model.name or ctx.exp.model.factory}'"
                       " has no built-in width to vary, or checks.capacities lists fewer than two sizes.", {"points": []},
                       "Add checks.capacities = [{ … }, { … }, { … }] to the experiment: model keys for a built-in "
                       "model, factory (or torchvision) keyword arguments otherwise, smallest first.")
    group = f"capacity-{time.strftime('%Y%m%d-%H%M%S')}"
    rows: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        row = _train_point(ctx, point, i, len(points), group)
        rows.append(row)
        ctx.emit(CheckRow(id=ID, table="points", row=row))
        if ctx.stop.is_set():
            return Verdict("skip", f"stopped after {len(rows)} of {len(points)} capacities; finished runs are kept "
                           "(recipe-tui runs).", _metrics(ctx, rows, group))
    return _verdict(ctx, rows, _metrics(ctx, rows, group))


def _distinct(ctx: CheckContext, points: list[CapacityPoint]) -> list[CapacityPoint]:
    """Points that build models of different sizes (a built-in may floor its channels: cnn ×¼ and ×½ can be one
    model)."""
    from ..models import build_model

    seen, out = set(), []
    for point in points:
        model = build_model(apply_values(ctx.exp, point.values), ctx.splits().info)
        size = sum(p.numel() for p in model.parameters())
        if size not in seen:
            seen.add(size)
            out.append(point)
    return out


def _train_point(ctx: CheckContext, point: CapacityPoint, i: int, n: int, group: str) -> dict[str, Any]:
    steps = ctx.exp.checks.capacity_steps
    exp = apply_values(ctx.exp, {**point.values, "train.steps": steps, "train.early_stop": 0})  # same steps for all
    tag = {"kind": ID, "group": group, "label": point.label, "index": i}
    t = train_run(ctx, exp, tag, (i * steps, n * steps))
    row: dict[str, Any] = {"label": point.label, "changes": point.values, "status": t.status,
                           "run_dir": str(t.run_dir), "seconds": t.seconds, **numbers(ctx, t)}
    if t.status == "failed":
        return {**row, "reason": t.reason, "params": None, "train_loss": None}
    model = loaded_model(ctx, t.run_dir)
    row["params"] = sum(p.numel() for p in model.parameters())
    row["train_loss"] = _n(train_set_loss(ctx, model))
    return row


def _n(v: Any) -> Any:
    return None if v is None else num(v, 5)


def _metrics(ctx: CheckContext, rows: list[dict[str, Any]], group: str) -> dict[str, Any]:
    return {"points": rows, "group": group, "steps": ctx.exp.checks.capacity_steps, "seed": ctx.exp.train.seed,
            "metric": ctx.task.metric, "train_eval_samples": TRAIN_EVAL_SAMPLES}


def _verdict(ctx: CheckContext, rows: list[dict[str, Any]], m: dict[str, Any]) -> Verdict:
    done = sorted((r for r in rows if r["status"] == "completed" and isinstance(r.get("train_loss"), float)),
                  key=lambda r: r["params"])
    failed = [r["label"] for r in rows if r["status"] == "failed"]
    if len(done) < 2:
        return Verdict("error", f"fewer than two capacities trained ({', '.join(failed) or 'none'} failed).", m,
                       "The runs' logs say why (recipe-tui runs lists them).")
    losses = [r["train_loss"] for r in done]
    table = " → ".join(f"{r['label']} {r['params']:,} params: {fmt(r['train_loss'])}" for r in done)
    init = _loss_at_init(ctx)
    if all(v <= FITS * init for v in losses) and not failed:
        return Verdict("pass", f"every capacity fits the training set (training loss ≤ {FITS:.0%} of {fmt(init)} at "
                       f"init): {table}.", m, HINT + " Capacity is not the limit here; go on to regularize.")
    flat = [(a, b) for a, b in zip(done, done[1:]) if b["train_loss"] > a["train_loss"] * (1 - GAIN)]
    if not flat and not failed:
        return Verdict("pass", f"training loss falls with capacity over {len(done)} points ({m['steps']} steps "
                       f"each): {table}.", m, HINT)
    why = (f"{', '.join(failed)} failed; " if failed else "") + "; ".join(
        f"{b['label']} ends at {fmt(b['train_loss'])}, "
        + (f"above {a['label']}'s {fmt(a['train_loss'])}" if b["train_loss"] > a["train_loss"]
           else f"only {1 - b['train_loss'] / a['train_loss']:.1%} below {a['label']}'s {fmt(a['train_loss'])}")
        for a, b in flat)
    return Verdict("warn", f"training loss stops falling with capacity: {why} ({table}).", m,
                   "A larger model that trains no better points to a bug (e.g. a softmax before the loss), to the "
                   "optimiser being the limit — try a higher learning rate (lr-find) or more steps "
                   "(checks.capacity_steps) — or to a floor the data sets (noisy labels); then run capacity again.")


def _loss_at_init(ctx: CheckContext) -> float:
    value = ctx.task.prior_loss(stats(ctx))
    return value if math.isfinite(value) and value > 0 else 1.0
