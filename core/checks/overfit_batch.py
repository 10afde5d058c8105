"""Stage 2, "overfit one batch": fit a handful of examples down to the lowest loss they allow; when the
model cannot, the first matching entry of ``DIAGNOSES`` says why."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from ..tasks import Task
from .common import curve, first_batch, fmt, num, output_of, train_steps
from .context import CheckContext
from .outputs import ignores_input, looks_like_probabilities, probability_floor
from .verdict import Verdict


@dataclass(frozen=True)
class Reached:
    """The batch was fitted: at which step, in which mode (dropout makes train mode noisy; eval is the other way)."""

    step: int
    mode: str  # train | eval
    loss: float
    accuracy: float
    out: torch.Tensor


@dataclass(frozen=True)
class Fit:
    """What fitting one batch produced, for the verdict and the diagnoses."""

    task: Task
    x: torch.Tensor
    y: torch.Tensor
    target: float  # the loss to reach: the batch's floor plus checks.overfit_loss (× Var(y) for regression)
    floor: float  # the lowest loss the batch allows (identical inputs with different targets)
    best_accuracy: float
    losses: list[float]
    out: torch.Tensor  # eval-mode outputs after the last step
    eval_loss: float
    eval_accuracy: float
    reached: Reached | None
    input_free: float | None  # classification: the entropy of the batch's labels, the best without the input

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def best(self) -> float:
        return min([v for v in self.losses if math.isfinite(v)], default=float("nan"))

    @property
    def lowest(self) -> float:
        return min(self.best, self.eval_loss) if math.isfinite(self.eval_loss) else self.best

    @property
    def floor_note(self) -> str:
        return f" (the best possible on this batch is {fmt(self.floor)})" if self.floor > 1e-6 else ""

    @property
    def base(self) -> str:
        return (f"after {len(self.losses)} steps on {self.n} examples the loss is stuck at {fmt(self.lowest)} "
                f"(target ≤ {fmt(self.target)}{self.floor_note})")

    @property
    def probability_floor(self) -> float:
        return probability_floor(self.out.shape[-1])

    def trend(self) -> tuple[float, float]:
        """(the mean loss of the last tenth of the steps, of the tenth before it; nan when too few steps)."""
        tail = max(5, len(self.losses) // 10)
        recent = sum(self.losses[-tail:]) / tail
        before = sum(self.losses[-2 * tail:-tail]) / tail if len(self.losses) >= 2 * tail else float("nan")
        return recent, before


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
    """Train on the one batch until it is fitted (checked in train mode every step, in eval mode every 10)."""
    cfg, task = ctx.exp.checks, ctx.task
    floor, best_acc = task.achievable(x, y)
    target = floor + cfg.overfit_loss * task.loss_unit(y)
    model = ctx.new_model()
    found: list[Reached] = []

    def fitted(loss: float, acc: float) -> bool:
        return loss <= target and acc >= best_acc - 1e-9

    def on_step(step: int, out: torch.Tensor, loss: float) -> bool:
        acc = task.accuracy(out, y)
        if fitted(loss, acc):  # fitted in the mode it trains in (BatchNorm: with batch statistics)
            found.append(Reached(step + 1, "train", loss, acc, out))
        elif step % 10 == 9:  # dropout makes the train-mode loss noisy: eval mode is the other way to get there
            e_loss, e_acc, e_out = _eval_pass(ctx, model, x, y)
            if fitted(e_loss, e_acc):
                found.append(Reached(step + 1, "eval", e_loss, e_acc, e_out))
        return bool(found)

    losses = train_steps(ctx, model, itertools.repeat((x, y)), cfg.overfit_steps, cfg.overfit_lr, "overfit one batch",
                         on_step=on_step)
    eval_loss, eval_acc, out = _eval_pass(ctx, model, x, y)
    input_free = task.prior_loss(task.target_stats(y.cpu(), ctx.splits().info)) if task.example_labels else None
    return Fit(task=task, x=x, y=y, target=target, floor=floor, best_accuracy=best_acc, losses=losses, out=out,
               eval_loss=eval_loss, eval_accuracy=eval_acc, reached=found[0] if found else None, input_free=input_free)


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


def _still_going_down(f: Fit) -> bool:
    recent, before = f.trend()
    return math.isfinite(before) and recent < 0.9 * before


def _going_down(f: Fit) -> str:
    recent, before = f.trend()
    return f"{f.base}, but still going down ({fmt(before)} → {fmt(recent)})."


DIAGNOSES: list[Diagnosis] = [
    Diagnosis(None, "fail", _diverged,
              lambda f: f"the loss became {f.losses[-1] if f.losses else 'unknown'} at step {len(f.losses)} while "
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
              lambda f: f"the loss reached {fmt(f.lowest)} but only {f.eval_accuracy:.0%} of the batch is labelled "
                        f"right (possible: {f.best_accuracy:.0%}).",
              "Predictions and labels do not align although the loss is low: check how predictions are read "
              "(argmax over the right dimension) and that labels are not shifted.", evidence=("input_free",)),
    Diagnosis("not-converged", "warn", _still_going_down, _going_down,
              "Give it more steps (checks.overfit_steps) or a higher checks.overfit_lr; if it never gets there, add "
              "capacity.", evidence=("input_free",)),
    Diagnosis("plateau", "fail", lambda f: True, lambda f: f"{f.base}; it has stopped improving.",
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
                               "loss": num(min(f.best, f.eval_loss)), "eval_loss": num(f.eval_loss),
                               "target": num(f.target), "floor": num(f.floor), "curve": curve(f.losses)}
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
