"""Stage 2 checks that train: fixed seed, input-independent baseline, overfit one batch, gradient flow."""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any

import torch

from ..events import CheckResult
from . import check, result
from .context import CheckContext
from .skeleton_common import first_batch, fmt, names_list, num, output_of, train_batches, train_steps


def _curve(values: list[float], points: int = 50) -> list[Any]:
    """A loss curve downsampled (by striding) to at most ``points`` values, for the TUI."""
    if len(values) <= points:
        return [num(v, 5) for v in values]
    stride = len(values) / points
    return [num(values[min(len(values) - 1, int(i * stride))], 5) for i in range(points)] + [num(values[-1], 5)]


# ---------------------------------------------------------------------------------------------------- seed


class _Diverged(Exception):
    """A short run failed (NaN/Inf loss): repeatability says nothing then."""


def _short_run(ctx: CheckContext, seed: int) -> list[float]:
    """``checks.seed_steps`` steps through the real trainer (its batch order, its optimizer), losses of each."""
    from ..events import Event
    from ..trainer import Trainer

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

    model = ctx.new_model(seed)
    Trainer(model, ctx.exp.task, ctx.splits().train, None, cfg, ctx.control.with_emit(collect), device=ctx.device).fit()
    ctx.tick()  # a stop during fit ends the check here
    if failure:
        raise _Diverged(failure[0])
    return losses


@check("seed", "Fix the random seed")
def seed_check(ctx: CheckContext) -> CheckResult:
    seed = ctx.exp.train.seed
    try:
        a = _short_run(ctx, seed)
        b = _short_run(ctx, seed)
        c = _short_run(ctx, seed + 1)
    except _Diverged as exc:
        return result("seed", "fail", f"a short run with seed {seed} diverged: {exc}", {"steps": ctx.exp.checks.seed_steps},
                      "The loss is NaN/Inf within a few steps: lower the learning rate, check the inputs for NaN "
                      "(data-stats) and the loss for log(0); then run seed again.")
    n = min(len(a), len(b))
    diffs = [abs(x - y) for x, y in zip(a, b)]
    same = len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))
    other = len(a) != len(c) or any(x != y for x, y in zip(a, c))
    metrics: dict[str, Any] = {"steps": ctx.exp.checks.seed_steps, "seed": seed, "losses": [num(v, 8) for v in a],
                               "losses_repeat": [num(v, 8) for v in b], "losses_other_seed": [num(v, 8) for v in c]}
    if not same:
        worst = max(range(n), key=lambda i: diffs[i]) if n else 0
        max_diff = max(diffs) if diffs else float("nan")
        rel = max_diff / max(abs(a[worst]), 1e-12) if n else float("nan")
        metrics.update(max_abs_diff=num(max_diff), first_diff_step=next((i + 1 for i, d in enumerate(diffs) if d), 0))
        if math.isfinite(rel) and rel < 1e-4:
            return result("seed", "warn", f"two runs with seed {seed} differ slightly: at most {max_diff:.2g} "
                          f"(step {worst + 1} of {n}).", metrics,
                          "Tiny differences come from nondeterministic kernels (GPU atomics, cuDNN autotuning): "
                          "torch.use_deterministic_algorithms(True) and torch.backends.cudnn.benchmark = False make runs repeat exactly.")
        return result("seed", "fail", f"two runs with seed {seed} give different losses: largest difference {fmt(max_diff)} "
                      f"at step {worst + 1} of {n} ({fmt(a[worst])} vs {fmt(b[worst])}).", metrics,
                      "Something random is not seeded by the recipe's seed: a numpy Generator or random.Random created "
                      "without a seed, a time-based seed, or random augmentation in the data/model that bypasses torch's RNG.")
    if not other:
        return result("seed", "warn", f"seed {seed} repeats exactly, but seed {seed + 1} gives the same losses too: "
                      "train.seed has no effect.", metrics,
                      "Something re-seeds with a constant (e.g. torch.manual_seed(0) inside the model or data factory); "
                      "remove it so that different seeds give different runs (ensembles need that).")
    return result("seed", "pass", f"two runs with seed {seed} give identical losses over {n} steps "
                  f"({fmt(a[0])} → {fmt(a[-1])}); seed {seed + 1} gives different ones.", metrics,
                  "Running the code twice gives the same outcome.")


# ---------------------------------------------------------------------------------------------------- zero-input


@check("zero-input", "Input-independent baseline")
def zero_input(ctx: CheckContext) -> CheckResult:
    cfg = ctx.exp.checks
    steps, lr = cfg.zero_input_steps, ctx.exp.train.lr
    tail = max(5, steps // 10)
    real = train_steps(ctx, ctx.new_model(), train_batches(ctx, cfg.batch_size), steps, lr, "zero-input: real inputs")
    zero = train_steps(ctx, ctx.new_model(), train_batches(ctx, cfg.batch_size), steps, lr, "zero-input: zeroed inputs",
                       transform=torch.zeros_like)
    r = sum(real[-tail:]) / len(real[-tail:])
    z = sum(zero[-tail:]) / len(zero[-tail:])
    metrics: dict[str, Any] = {"steps": steps, "lr": lr, "real_final": num(r), "zero_final": num(z),
                               "margin": cfg.zero_input_margin, "real_curve": _curve(real), "zero_curve": _curve(zero)}
    both = f"after {steps} steps the loss is {fmt(r)} on real inputs and {fmt(z)} on zeroed inputs"
    if not math.isfinite(r):
        return result("zero-input", "fail", f"training on real inputs diverged (loss {r}) within {len(real)} steps.", metrics,
                      "Lower the learning rate; check the inputs for NaN/Inf and their scale (batch-view).")
    if math.isfinite(z) and r <= z * (1 - cfg.zero_input_margin):
        return result("zero-input", "pass", f"{both}: the model extracts information from its input.", metrics,
                      "The model performs worse with inputs set to zero, as it should.")
    if math.isfinite(z) and z < 1e-3 and r < 1e-3:
        return result("zero-input", "warn", f"{both}: the task is solved without looking at the input.", metrics,
                      "The targets can be predicted without the input (a constant label?): check the labels (class-balance).")
    if math.isfinite(z) and r < z:
        return result("zero-input", "warn", f"{both}: real inputs help only {1 - r / z:.1%} "
                      f"(want ≥ {cfg.zero_input_margin:.0%}).", metrics,
                      "Little is learnt from the input in this budget: the input may be mostly ignored or badly scaled; "
                      "compare over more steps (checks.zero_input_steps) and look at batch-view.")
    return result("zero-input", "fail", f"{both}: the model does no better with its input than without.", metrics,
                  "The model ignores its input: check the forward pass (is x used? overwritten? masked to zero? detached?) "
                  "and that inputs and labels are paired.")


# ---------------------------------------------------------------------------------------------------- overfit-batch


def _key(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().numpy().tobytes()


def achievable(task: str, x: torch.Tensor, y: torch.Tensor, ignore_index: int) -> tuple[float, float]:
    """The lowest loss and the highest accuracy a model can reach on this batch: examples with identical
    inputs (language models: identical prefixes) but different targets cannot all be fitted."""
    groups: dict[bytes, list[Any]] = defaultdict(list)
    if task == "language-model":
        for b in range(x.shape[0]):
            for t in range(x.shape[1]):
                target = int(y[b, t])
                if target != ignore_index:
                    groups[_key(x[b, : t + 1])].append(target)
    elif task == "classification":
        for b in range(x.shape[0]):
            groups[_key(x[b])].append(int(y[b]))
    else:
        yy = y.double().reshape(len(y), -1)
        groups_r: dict[bytes, list[torch.Tensor]] = defaultdict(list)
        for b in range(x.shape[0]):
            groups_r[_key(x[b])].append(yy[b])
        total = sum(float(((torch.stack(v) - torch.stack(v).mean(0)) ** 2).sum()) for v in groups_r.values())
        return total / max(1, yy.numel()), 1.0
    n = sum(len(v) for v in groups.values())
    loss, right = 0.0, 0
    for targets in groups.values():
        counts: dict[int, int] = defaultdict(int)
        for t in targets:
            counts[t] += 1
        loss += -sum(c * math.log(c / len(targets)) for c in counts.values())
        right += max(counts.values())
    return loss / max(1, n), right / max(1, n)


def _accuracy(task: str, out: torch.Tensor, y: torch.Tensor, ignore_index: int) -> float:
    from ..tasks import correct_and_count
    if task == "regression":
        return 1.0
    if task == "language-model":
        keep = y != ignore_index
        return float(((out.argmax(-1) == y) & keep).sum()) / max(1, int(keep.sum()))
    right, count = correct_and_count(task, out, y)
    return float(right) / max(1, count)


def looks_like_probabilities(out: torch.Tensor) -> bool:
    """Non-negative rows that sum to 1 along the class dimension: softmax was applied already."""
    if out.dim() < 2 or out.shape[-1] < 2 or not torch.isfinite(out).all():
        return False
    out = out.detach().double()
    return bool(out.min() >= -1e-6 and (out.sum(-1) - 1).abs().max() < 1e-3)


def ignores_input(x: torch.Tensor, out: torch.Tensor) -> bool:
    """The outputs for distinct examples are identical: nothing of the input reaches the output."""
    if out.shape[0] < 2 or len({_key(xi) for xi in x}) < 2:
        return False
    out = out.detach().double()
    spread = (out - out[:1]).abs().max()
    return bool(spread <= 1e-6 * (out.abs().max() + 1e-12))


@check("overfit-batch", "Overfit one batch")
def overfit_batch(ctx: CheckContext) -> CheckResult:
    from ..trainer import make_optimizer

    cfg = ctx.exp.checks
    task = ctx.exp.task
    ignore = ctx.splits().info.ignore_index
    n = max(2, min(16, cfg.overfit_batch_size))
    x, y = first_batch(ctx, n)
    floor, best_acc = achievable(task, x, y, ignore)
    if task == "regression":
        scale = float(y.double().var(unbiased=False)) if y.numel() > 1 else 1.0
        target = floor + cfg.overfit_loss * (scale if scale > 0 else 1.0)
    else:
        target = floor + cfg.overfit_loss
    model = ctx.new_model()
    loss_fn = ctx.loss_fn()
    opt = make_optimizer(model, dataclasses.replace(ctx.exp.train, lr=cfg.overfit_lr))
    losses: list[float] = []
    reached_at = None
    fit: tuple[str, float, float, torch.Tensor] | None = None  # (mode, loss, accuracy, outputs) once fitted

    def fitted(loss: float, acc: float) -> bool:
        return loss <= target and acc >= best_acc - 1e-9

    for step in range(cfg.overfit_steps):
        ctx.tick("overfit one batch", step, cfg.overfit_steps)
        model.train()
        out = output_of(model, x)
        loss = loss_fn(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        losses.append(value)
        if not math.isfinite(value):
            break
        acc = _accuracy(task, out.detach(), y, ignore)
        if fitted(value, acc):  # fitted in the mode it trains in (BatchNorm: with batch statistics)
            reached_at, fit = step + 1, ("train", value, acc, out.detach())
            break
        if step % 10 == 9:  # dropout makes the train-mode loss noisy: eval mode is the other way to get there
            model.eval()
            with torch.no_grad():
                out_e = output_of(model, x)
                e_loss, e_acc = float(loss_fn(out_e, y)), _accuracy(task, out_e, y, ignore)
            if fitted(e_loss, e_acc):
                reached_at, fit = step + 1, ("eval", e_loss, e_acc, out_e)
                break
    model.eval()
    with torch.no_grad():
        out_e = output_of(model, x)
        eval_loss, eval_acc = float(loss_fn(out_e, y)), _accuracy(task, out_e, y, ignore)
    best = min([v for v in losses if math.isfinite(v)], default=float("nan"))
    metrics: dict[str, Any] = {"examples": n, "steps": len(losses), "lr": cfg.overfit_lr, "loss": num(min(best, eval_loss)),
                               "eval_loss": num(eval_loss), "target": num(target), "floor": num(floor),
                               "curve": _curve(losses)}
    if task != "regression":
        metrics.update(accuracy=num(eval_acc), best_accuracy=num(best_acc))
    shown = out_e if fit is None else fit[3]
    if task == "classification":
        metrics.update(labels=[int(v) for v in y.tolist()], predictions=[int(v) for v in shown.argmax(-1).tolist()])
    floor_note = f" (the best possible on this batch is {fmt(floor)})" if floor > 1e-6 else ""
    if fit is not None:
        mode, fit_loss, fit_acc, _ = fit
        metrics.update(mode=mode, loss=num(fit_loss))
        if task != "regression":
            metrics["accuracy"] = num(fit_acc)
        acc_note = "" if task == "regression" else f", {fit_acc:.0%} labelled right" + (
            " (all that this batch allows)" if best_acc < 1 else "")
        return result("overfit-batch", "pass", f"overfit {n} examples to loss {fmt(fit_loss)}{floor_note} "
                      f"in {reached_at} steps ({mode} mode){acc_note}.", metrics,
                      "The model can memorise a batch; now increase capacity a bit and check that training loss goes down.")
    if not losses or not math.isfinite(losses[-1]):
        return result("overfit-batch", "fail", f"the loss became {losses[-1] if losses else 'unknown'} at step {len(losses)} "
                      f"while overfitting {n} examples.", metrics,
                      "Lower checks.overfit_lr; look for log(0), division by zero or exploding activations.")
    reached = min(best, eval_loss) if math.isfinite(eval_loss) else best
    base = f"after {len(losses)} steps on {n} examples the loss is stuck at {fmt(reached)} (target ≤ {fmt(target)}{floor_note})"
    hint_ignores = ("Check the forward pass: is x used at all, overwritten, multiplied by a zero mask or detached? "
                    "(see zero-input and grad-flow).")
    if task != "regression":
        classes = out_e.shape[-1]
        prob_floor = math.log(1 + (classes - 1) / math.e)  # CE of logits confined to [0, 1], at best one-hot
        bounded = bool(out_e.min() >= -1e-6 and out_e.max() <= 1 + 1e-6)
        if looks_like_probabilities(out_e) or (bounded and abs(reached - floor - prob_floor) <= 0.02 * prob_floor):
            metrics.update(cause="probabilities", probability_floor=num(prob_floor))
            what = ("the outputs are probabilities (non-negative, rows sum to 1)" if looks_like_probabilities(out_e)
                    else "the outputs stay within [0, 1]")
            return result("overfit-batch", "fail", f"{base}; {what}: cross-entropy of outputs in [0, 1] cannot go below "
                          f"ln(1 + (C−1)/e) = {fmt(prob_floor)} for C = {classes}.", metrics,
                          "Remove the softmax (or sigmoid) at the end of the model: cross-entropy expects raw logits and "
                          "applies log-softmax itself (see output-range).")
    if task != "regression" and not bool(out_e.ne(0).any()):
        metrics.update(cause="dead-outputs")
        return result("overfit-batch", "fail", f"{base}; every output is exactly 0: a ReLU after the last layer has died.",
                      metrics, "Remove the activation after the last layer (the loss wants raw logits), or lower "
                      "checks.overfit_lr / train.lr.")
    if ignores_input(x, out_e):
        metrics.update(cause="ignores-input")
        return result("overfit-batch", "fail", f"{base}; the outputs are identical for every example: the model ignores its input.",
                      metrics, hint_ignores)
    if task == "classification":
        counts = torch.bincount(y.reshape(-1).long().cpu()).double()
        p = counts[counts > 0] / counts.sum()
        input_free = float(-(p * p.log()).sum())  # the best loss without looking at the input
        metrics["input_free_floor"] = num(input_free)
        if input_free > floor + 1e-6 and abs(reached - input_free) <= 0.03 * input_free + 0.01:
            metrics.update(cause="ignores-input")
            return result("overfit-batch", "fail", f"{base}: the entropy of the batch's labels, {fmt(input_free)}, the best "
                          "a model that ignores its input can do.", metrics, hint_ignores)
    tail = max(5, len(losses) // 10)
    recent, before = sum(losses[-tail:]) / tail, sum(losses[-2 * tail:-tail]) / tail if len(losses) >= 2 * tail else float("nan")
    if task != "regression" and reached <= target and eval_acc < best_acc:
        metrics.update(cause="labels")
        return result("overfit-batch", "fail", f"the loss reached {fmt(reached)} but only {eval_acc:.0%} of the batch is "
                      f"labelled right (possible: {best_acc:.0%}).", metrics,
                      "Predictions and labels do not align although the loss is low: check how predictions are read "
                      "(argmax over the right dimension) and that labels are not shifted.")
    if math.isfinite(before) and recent < 0.9 * before:
        metrics.update(cause="not-converged")
        return result("overfit-batch", "warn", f"{base}, but still going down ({fmt(before)} → {fmt(recent)}).", metrics,
                      "Give it more steps (checks.overfit_steps) or a higher checks.overfit_lr; if it never gets there, add capacity.")
    metrics.update(cause="plateau")
    return result("overfit-batch", "fail", f"{base}; it has stopped improving.", metrics,
                  "Over fit a single batch: if you cannot reach zero loss there is a bug or too little capacity — "
                  "check output-range and grad-flow, that labels belong to their inputs, and try a larger model or another lr.")


# ---------------------------------------------------------------------------------------------------- grad-flow


@check("grad-flow", "Every parameter learns")
def grad_flow(ctx: CheckContext) -> CheckResult:
    from ..trainer import make_optimizer

    model = ctx.new_model()
    model.train()
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    if not trainable:
        return result("grad-flow", "fail", f"the model has no trainable parameter ({len(frozen)} frozen).",
                      {"frozen": frozen[:50]}, "Set requires_grad = True on the parameters that should learn.")
    opt = make_optimizer(model, ctx.exp.train)
    x, y = first_batch(ctx, ctx.exp.checks.batch_size)
    before = {n: p.detach().clone() for n, p in trainable}
    ctx.tick("grad-flow", 0, 2)
    loss = ctx.loss_fn()(output_of(model, x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    no_grad = [n for n, p in trainable if p.grad is None]
    zero_grad = [n for n, p in trainable if p.grad is not None and not bool(p.grad.ne(0).any())]
    non_finite = [n for n, p in trainable if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    norms = {n: float(p.grad.norm()) for n, p in trainable if p.grad is not None}
    opt.step()
    ctx.tick("grad-flow", 1, 2)
    unchanged = [n for n, p in trainable if torch.equal(p.detach(), before[n])]
    unchanged_only = [n for n in unchanged if n not in no_grad and n not in zero_grad]
    smallest = sorted(((n, v) for n, v in norms.items() if v > 0), key=lambda kv: kv[1])[:5]
    metrics: dict[str, Any] = {"parameters": len(trainable), "no_grad": no_grad[:50], "zero_grad": zero_grad[:50],
                               "non_finite_grad": non_finite[:50], "unchanged": unchanged[:50], "frozen": frozen[:50],
                               "loss": num(float(loss.detach())),
                               "smallest_grad_norms": [[n, num(v, 4)] for n, v in smallest]}
    frozen_note = f"; {len(frozen)} frozen (requires_grad=False) not checked: {names_list(frozen, 3)}" if frozen else ""
    if non_finite:
        return result("grad-flow", "fail", f"{len(non_finite)} parameter tensors got non-finite gradients: {names_list(non_finite)}.",
                      metrics, "Look for log(0), sqrt(0) or division by zero in the forward pass, or too large inputs.")
    problems = []
    if no_grad:
        problems.append(f"{len(no_grad)} got no gradient at all ({names_list(no_grad)})")
    if zero_grad:
        problems.append(f"{len(zero_grad)} got an all-zero gradient ({names_list(zero_grad)})")
    if unchanged_only:
        problems.append(f"{len(unchanged_only)} did not change after the step ({names_list(unchanged_only)})")
    if problems:
        return result("grad-flow", "fail", f"of {len(trainable)} trainable parameter tensors, " + "; ".join(problems)
                      + frozen_note + ".", metrics,
                      "No gradient: the layer is not used in forward, or its output is detached (.detach(), .item(), "
                      ".numpy(), torch.no_grad) on the way to the loss. Zero gradient: a dead branch (multiplied by 0, "
                      "dead ReLUs, a constant output). Unchanged: the parameter is not in the optimizer or is overwritten.")
    return result("grad-flow", "pass", f"all {len(trainable)} trainable parameter tensors got a non-zero gradient and "
                  f"changed after one step{frozen_note}.", metrics, "Every parameter learns.")

