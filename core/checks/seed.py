"""Stage 2, "fix random seed": two short runs with the recipe's seed repeat exactly; another seed differs."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from .common import fmt, num
from .context import CheckContext
from .verdict import Verdict


class Diverged(Exception):
    """A short run failed (NaN/Inf loss): repeatability says nothing then."""


def short_run(ctx: CheckContext, seed: int) -> list[float]:
    """``checks.seed_steps`` steps through the real trainer (its batch order, its optimizer), losses of each.

    Every run starts the way ``run_training`` does: seed, then load the data, then build the model. Loading
    afresh is the point: a split or augmentation drawn from an unseeded generator differs between runs, and
    data loading that draws from the seeded global RNG (``random_split`` without a generator) must not make
    the second run differ from the first just because the data was already loaded."""
    from ..data import load_data
    from ..events import Event
    from ..models import build_initialized_model
    from ..trainer import Trainer, seed_everything

    steps = ctx.exp.checks.seed_steps
    cfg = dataclasses.replace(ctx.exp.train, steps=steps, seed=seed, log_every=1, eval_every=10**9,
                              checkpoint_every=10**9)
    losses: list[float] = []
    failure: list[str] = []

    def collect(event: Event) -> None:
        if event.type == "step":
            losses.append(event.loss)
        elif event.type == "failed":
            failure.append(event.reason)

    seed_everything(seed)
    splits = load_data(ctx.exp)
    model = build_initialized_model(ctx.exp, splits)
    Trainer(model, ctx.task, splits.train, None, cfg, ctx.control.with_emit(collect), device=ctx.device).fit()
    ctx.tick()  # a stop during fit ends the check here
    if failure:
        raise Diverged(failure[0])
    return losses


def check(ctx: CheckContext) -> Verdict:
    seed = ctx.exp.train.seed
    try:
        a = short_run(ctx, seed)
        b = short_run(ctx, seed)
        c = short_run(ctx, seed + 1)
    except Diverged as exc:
        return Verdict("fail", f"a short run with seed {seed} diverged: {exc}", {"steps": ctx.exp.checks.seed_steps},
                       "The loss is NaN/Inf within a few steps: lower the learning rate, check the inputs for NaN "
                       "(data-stats) and the loss for log(0); then run seed again.")
    same = len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))
    other = len(a) != len(c) or any(x != y for x, y in zip(a, c))
    metrics: dict[str, Any] = {"steps": ctx.exp.checks.seed_steps, "seed": seed, "losses": [num(v, 8) for v in a],
                               "losses_repeat": [num(v, 8) for v in b], "losses_other_seed": [num(v, 8) for v in c]}
    if not same:
        return _differs(seed, a, b, metrics)
    if not other:
        return Verdict("warn", f"seed {seed} repeats exactly, but seed {seed + 1} gives the same losses too: "
                       "train.seed has no effect.", metrics,
                       "Something re-seeds with a constant (e.g. torch.manual_seed(0) inside the model or data factory); "
                       "remove it so that different seeds give different runs (ensembles need that).")
    return Verdict("pass", f"two runs with seed {seed} give identical losses over {min(len(a), len(b))} steps "
                   f"({fmt(a[0])} → {fmt(a[-1])}); seed {seed + 1} gives different ones.", metrics,
                   "Running the code twice gives the same outcome.")


def _differs(seed: int, a: list[float], b: list[float], metrics: dict[str, Any]) -> Verdict:
    """Two runs with the same seed differ: by a hair (nondeterministic kernels) or for real (an unseeded RNG)."""
    n = min(len(a), len(b))
    diffs = [abs(x - y) for x, y in zip(a, b)]
    worst = max(range(n), key=lambda i: diffs[i]) if n else 0
    max_diff = max(diffs) if diffs else float("nan")
    rel = max_diff / max(abs(a[worst]), 1e-12) if n else float("nan")
    metrics.update(max_abs_diff=num(max_diff), first_diff_step=next((i + 1 for i, d in enumerate(diffs) if d), 0))
    if math.isfinite(rel) and rel < 1e-4:
        return Verdict("warn", f"two runs with seed {seed} differ slightly: at most {max_diff:.2g} "
                       f"(step {worst + 1} of {n}).", metrics,
                       "Tiny differences come from nondeterministic kernels (GPU atomics, cuDNN autotuning): "
                       "torch.use_deterministic_algorithms(True) and torch.backends.cudnn.benchmark = False make runs "
                       "repeat exactly.")
    return Verdict("fail", f"two runs with seed {seed} give different losses: largest difference {fmt(max_diff)} "
                   f"at step {worst + 1} of {n} ({fmt(a[worst])} vs {fmt(b[worst])}).", metrics,
                   "Something random is not seeded by the recipe's seed: a numpy Generator or random.Random created "
                   "without a seed, a time-based seed, or random augmentation in the data/model that bypasses torch's RNG.")
