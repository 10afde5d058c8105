"""Stage 2, "overfit one batch": fit a handful of examples down to the lowest loss they allow; when the
model cannot, the first matching entry of ``DIAGNOSES`` says why.

The fit goes on while it makes progress: it stops once the batch is fitted, when the eval-mode loss has not
improved by ``MIN_GAIN`` for ``checks.overfit_steps`` steps (patience), or when ``checks.overfit_seconds``
are spent. Progress and the losses the verdict names are measured in eval mode: dropout makes the train-mode
loss noisy, and that noise is not a failure to overfit."""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from ..tasks import Task
from .common import curve, first_batch, fmt, num, output_of, train_steps
from .context import CheckContext
from .outputs import ignores_input, looks_like_probabilities, probability_floor
from .verdict import Verdict

EVAL_EVERY = 10  # steps between eval-mode measurements
MIN_GAIN = 0.01  # a new best eval-mode loss counts as progress when it is this much (relatively) lower


@dataclass(frozen=True)
class Reached:
    """The batch was fitted: at which step, in which mode (dropout makes train mode noisy; eval is the other way)."""

    step: int
    mode: str  # train | eval
    loss: float
    accuracy: float
    out: torch.Tensor


@dataclass
class Progress:
    """What the fitting loop has seen so far, and why it stopped."""

    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, eval-mode loss)
    best: float = math.inf
    best_step: int = 0
    stopped: str = "diverged"  # fitted | plateau | time-budget | wrong-labels | diverged (the loss became NaN/Inf)
    reached: Reached | None = None


@dataclass(frozen=True)
class Fit:
    """What fitting one batch produced, for the verdict and the diagnoses."""

    task: Task
    x: torch.Tensor
    y: torch.Tensor
    target: float  # the loss to reach: the batch's floor plus checks.overfit_loss (× Var(y) for regression)
    floor: float  # the lowest loss the batch allows (identical inputs with different targets)
    best_accuracy: float
    losses: list[float]  # train-mode loss of every step
    out: torch.Tensor  # eval-mode outputs after the last step
    eval_loss: float
    eval_accuracy: float
    progress: Progress
    input_free: float | None  # classification: the entropy of the batch's labels, the best without the input
    patience: int
    budget: float

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def reached(self) -> Reached | None:
        return self.progress.reached

    @property
    def lowest(self) -> float:
        """The lowest eval-mode loss measured (the final one included)."""
        values = [v for _, v in self.progress.evals if math.isfinite(v)]
        values += [self.eval_loss] if math.isfinite(self.eval_loss) else []
        return min(values, default=float("nan"))

    @property
    def floor_note(self) -> str:
        return f" (the best possible on this batch is {fmt(self.floor)})" if self.floor > 1e-6 else ""

    @property
    def base(self) -> str:
        return (f"after {len(self.losses)} steps on {self.n} examples the eval-mode loss got no lower than "
                f"{fmt(self.lowest)} (target ≤ {fmt(self.target)}{self.floor_note})")

    @property
    def probability_floor(self) -> float:
        return probability_floor(self.out.shape[-1])

    def trend(self) -> tuple[float, float, int]:
        """(the eval-mode loss about ``patience`` steps before the end, the last one, the steps between)."""
        evals = self.progress.evals
        if len(evals) < 2:
            return float("nan"), float("nan"), 0
        last_step, last = evals[-1]
        step, before = next(((s, v) for s, v in evals if s >= last_step - self.patience), evals[0])
        return before, last, last_step - step


def _eval_pass(ctx: CheckContext, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """(loss, accuracy, outputs) in eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = output_of(model, x)
        loss, acc = float(ctx.task.loss(out, y)), ctx.task.accuracy(out, y)
    model.train(was_training)
    return loss, acc, out


def fit_batch(ctx: CheckContext, x: torch.Tensor, y: torch.Tensor) -> Fit:
    """Train on the one batch until it is fitted, stops improving, or the time budget is spent (checked in train
    mode every step, in eval mode every ``EVAL_EVERY``)."""
    cfg, task = ctx.exp.checks, ctx.task
    floor, best_acc = task.achievable(x, y)
    target = floor + cfg.overfit_loss * task.loss_unit(y)
    model = ctx.new_model()
    seen = Progress()
    deadline = time.monotonic() + cfg.overfit_seconds

    def fitted(loss: float, acc: float) -> bool:
        return loss <= target and acc >= best_acc - 1e-9

    def stop(why: str, reached: Reached | None = None) -> bool:
        seen.stopped, seen.reached = why, reached
        return True

    def on_step(step: int, out: torch.Tensor, loss: float) -> bool:
        acc = task.accuracy(out, y)
        if fitted(loss, acc):  # fitted in the mode it trains in (BatchNorm: with batch statistics)
            return stop("fitted", Reached(step + 1, "train", loss, acc, out))
        if (step + 1) % EVAL_EVERY:
            return False
        e_loss, e_acc, e_out = _eval_pass(ctx, model, x, y)
        seen.evals.append((step + 1, e_loss))
        if fitted(e_loss, e_acc):
            return stop("fitted", Reached(step + 1, "eval", e_loss, e_acc, e_out))
        if e_loss <= target:  # low enough, yet labels that could be right are wrong: more steps will not help
            return stop("wrong-labels")
        if e_loss < seen.best * (1 - MIN_GAIN):
            seen.best, seen.best_step = e_loss, step + 1
        left = deadline - time.monotonic()
        ctx.tick("overfit one batch", int(cfg.overfit_seconds - max(left, 0.0)), int(math.ceil(cfg.overfit_seconds)))
        if step + 1 - seen.best_step >= cfg.overfit_steps:
            return stop("plateau")
        return stop("time-budget") if left <= 0 else False

    losses = train_steps(ctx, model, itertools.repeat((x, y)), None, cfg.overfit_lr, "overfit one batch",
                         on_step=on_step)
    eval_loss, eval_acc, out = _eval_pass(ctx, model, x, y)
    input_free = task.prior_loss(task.target_stats(y.cpu(), ctx.splits().info)) if task.example_labels else None
    return Fit(task=task, x=x, y=y, target=target, floor=floor, best_accuracy=best_acc, losses=losses, out=out,
               eval_loss=eval_loss, eval_accuracy=eval_acc, progress=seen, input_free=input_free,
               patience=cfg.overfit_steps, budget=cfg.overfit_seconds)


# ---------------------------------------------------------------------------------------------- diagnoses


@dataclass(frozen=True)
class Diagnosis:
    """Why a batch was not fitted: the first entry of ``DIAGNOSES`` whose ``when`` holds is the verdict."""

    cause: str | None  # metrics["cause"] (None: no cause to name)
    status: str
    when: Callable[[Fit], bool]
    summary: Callable[[Fit], str]
    hint: str
    evidence: tuple[str, ...] = ()  # Fit attributes added to the metrics (when not None)


IGNORES_INPUT = ("Check the forward pass: is x used at all, overwritten, multiplied by a zero mask or detached? "
                 "(see zero-input and grad-flow).")


def _diverged(f: Fit) -> bool:
    return not f.losses or not math.isfinite(f.losses[-1])


def _bounded_outputs(f: Fit) -> bool:
    """Outputs that are probabilities, or stay in [0, 1] right at the floor such outputs impose."""
    if looks_like_probabilities(f.out):
        return True
    bounded = bool(f.out.min() >= -1e-6 and f.out.max() <= 1 + 1e-6)
    return bounded and abs(f.lowest - f.floor - f.probability_floor) <= 0.02 * f.probability_floor


def _at_label_entropy(f: Fit) -> bool:
    """Stuck at the entropy of the batch's labels: the best a model that ignores its input can do."""
    h = f.input_free
    return h is not None and h > f.floor + 1e-6 and abs(f.lowest - h) <= 0.03 * h + 0.01


def _probabilities(f: Fit) -> str:
    what = ("the outputs are probabilities (non-negative, rows sum to 1)" if looks_like_probabilities(f.out)
            else "the outputs stay within [0, 1]")
    return (f"{f.base}; {what}: cross-entropy of outputs in [0, 1] cannot go below ln(1 + (C−1)/e) = "
            f"{fmt(f.probability_floor)} for C = {f.out.shape[-1]}.")


def _going_down(f: Fit) -> str:
    before, last, steps = f.trend()
    return (f"{f.base}; it was still improving when the {f.budget:g} s time budget ran out (eval-mode loss "
            f"{fmt(before)} → {fmt(last)} over its last {steps} steps).")


DIAGNOSES: list[Diagnosis] = [
    Diagnosis(None, "fail", _diverged,
              lambda f: f"the training loss became {f.losses[-1] if f.losses else 'unknown'} at step {len(f.losses)} while "
                        f"overfitting {f.n} examples.",
              "Lower checks.overfit_lr; look for log(0), division by zero or exploding activations."),
    Diagnosis("probabilities", "fail", lambda f: f.task.classes and _bounded_outputs(f), _probabilities,
              "Remove the softmax (or sigmoid) at the end of the model: cross-entropy expects raw logits and applies "
              "log-softmax itself (see output-range).", evidence=("probability_floor",)),
    Diagnosis("dead-outputs", "fail", lambda f: f.task.classes and not bool(f.out.ne(0).any()),
              lambda f: f"{f.base}; every output is exactly 0: a ReLU after the last layer has died.",
              "Remove the activation after the last layer (the loss wants raw logits), or lower checks.overfit_lr / "
              "train.lr."),
    Diagnosis("ignores-input", "fail", lambda f: ignores_input(f.x, f.out),
              lambda f: f"{f.base}; the outputs are identical for every example: the model ignores its input.",
              IGNORES_INPUT),
    Diagnosis("ignores-input", "fail", _at_label_entropy,
              lambda f: f"{f.base}: the entropy of the batch's labels, {fmt(f.input_free or 0.0)}, the best a model "
                        "that ignores its input can do.", IGNORES_INPUT, evidence=("input_free",)),
    Diagnosis("labels", "fail",
              lambda f: f.task.metric is not None and f.lowest <= f.target and f.eval_accuracy < f.best_accuracy,
              lambda f: f"the eval-mode loss reached {fmt(f.lowest)} but only {f.eval_accuracy:.0%} of the batch is labelled "
                        f"right (possible: {f.best_accuracy:.0%}).",
              "Predictions and labels do not align although the loss is low: check how predictions are read "
              "(argmax over the right dimension) and that labels are not shifted.", evidence=("input_free",)),
    Diagnosis("not-converged", "warn", lambda f: f.progress.stopped == "time-budget", _going_down,
              "Give it more time (checks.overfit_seconds) or a higher checks.overfit_lr; if it never gets there, add "
              "capacity.", evidence=("input_free",)),
    Diagnosis("plateau", "fail", lambda f: True,
              lambda f: f"{f.base}; it stopped improving (no eval-mode gain of {MIN_GAIN:.0%} in its last "
                        f"{f.patience} steps).",
              "Over fit a single batch: if you cannot reach zero loss there is a bug or too little capacity — check "
              "output-range and grad-flow, that labels belong to their inputs, and try a larger model or another lr.",
              evidence=("input_free",)),
]
EVIDENCE_KEYS = {"probability_floor": "probability_floor", "input_free": "input_free_floor"}


def diagnose(f: Fit, metrics: dict[str, Any]) -> Verdict:
    d = next(d for d in DIAGNOSES if d.when(f))
    extra: dict[str, Any] = {EVIDENCE_KEYS[k]: num(getattr(f, k)) for k in d.evidence if getattr(f, k) is not None}
    if d.cause is not None:
        extra["cause"] = d.cause
    return Verdict(d.status, d.summary(f), {**metrics, **extra}, d.hint)


# ---------------------------------------------------------------------------------------------- the check


def check(ctx: CheckContext) -> Verdict:
    task = ctx.task
    x, y = first_batch(ctx, ctx.exp.checks.overfit_batch_size)  # recipes.toml keeps it to 2..16
    f = fit_batch(ctx, x, y)
    metrics: dict[str, Any] = {"examples": f.n, "steps": len(f.losses), "lr": ctx.exp.checks.overfit_lr,
                               "loss": num(f.lowest), "eval_loss": num(f.eval_loss), "mode": "eval",
                               "target": num(f.target), "floor": num(f.floor), "curve": curve(f.losses),
                               "eval_curve": curve([v for _, v in f.progress.evals]), "stopped": f.progress.stopped,
                               "patience": f.patience, "time_budget": f.budget}
    if task.metric:
        metrics.update(accuracy=num(f.eval_accuracy), best_accuracy=num(f.best_accuracy))
    if task.example_labels:
        shown = f.out if f.reached is None else f.reached.out
        metrics.update(labels=[int(v) for v in y.tolist()], predictions=[int(v) for v in task.predict(shown).tolist()])
    if f.reached is None:
        return diagnose(f, metrics)
    r = f.reached
    metrics.update(mode=r.mode, loss=num(r.loss))
    acc_note = ""
    if task.metric:
        metrics["accuracy"] = num(r.accuracy)
        acc_note = f", {r.accuracy:.0%} labelled right" + (" (all that this batch allows)" if f.best_accuracy < 1 else "")
    return Verdict("pass", f"overfit {f.n} examples to loss {fmt(r.loss)}{f.floor_note} in {r.step} steps ({r.mode} mode)"
                   f"{acc_note}.", metrics,
                   "The model can memorise a batch; now increase capacity a bit and check that training loss goes down.")
