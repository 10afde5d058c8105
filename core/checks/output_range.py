"""Stage 2, "outputs are logits": at init the outputs have the shape the loss needs and are unbounded logits
(not probabilities, not clipped by a final activation); BatchNorm never sees a batch of one."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..tasks import Task
from .common import first_batch, fmt, num, output_of
from .context import CheckContext
from .outputs import looks_like_probabilities
from .verdict import Problem, Verdict, worst


def logit_problems(task: Task, out: torch.Tensor, y: torch.Tensor, classes: int, metrics: dict[str, Any],
                   notes: list[str]) -> list[Problem]:
    """What is wrong with the shape or the range of class logits (``metrics["looks_like"]`` says what they look like)."""
    problems = []
    want = task.output_shape(y, classes)
    if classes and tuple(out.shape) != tuple(want):
        if out.shape[-1] < classes or tuple(out.shape[:-1]) != tuple(want[:-1]):
            problems.append(Problem("fail", f"the output has shape {tuple(out.shape)}, the loss needs {tuple(want)}",
                                    "Make the last layer produce one logit per class (per position for language models)."))
        else:
            problems.append(Problem("warn", f"the model has {out.shape[-1]} outputs for {classes} classes",
                                    "The extra outputs only absorb probability mass: build the last layer with "
                                    "num_classes outputs."))
    if looks_like_probabilities(out):
        metrics["looks_like"] = "probabilities"
        problems.append(Problem("warn", "the outputs are non-negative and sum to 1 over the classes: they look like "
                                "probabilities, but cross-entropy expects logits",
                                "Remove the softmax at the end of the model (F.cross_entropy applies log-softmax itself); "
                                "a softmax before it caps how low the loss can go (see overfit-batch)."))
    elif float(out.min()) >= 0 and out.shape[-1] > 1:
        bounded = float(out.max()) <= 1
        metrics["looks_like"] = "in [0, 1]" if bounded else "non-negative"
        problems.append(Problem("warn", f"all outputs are {'in [0, 1]' if bounded else '≥ 0'}: a "
                                f"{'sigmoid or ReLU' if bounded else 'ReLU'} after the last layer? cross-entropy expects "
                                "unbounded logits",
                                "Remove the final activation: the last layer's raw output goes into the loss (a final "
                                "ReLU can also die and leave every output at 0)."))
    elif float(out.max()) <= 1e-6 and (out.logsumexp(-1)).abs().max() < 1e-4:
        metrics["looks_like"] = "log-probabilities"
        notes.append("outputs are log-probabilities (log_softmax): harmless before cross-entropy, which is idempotent "
                     "on them")
    return problems


def value_problems(out: torch.Tensor, y: torch.Tensor) -> list[Problem]:
    """Regression: the loss squeezes a trailing 1 and must not broadcast."""
    o = out.squeeze(-1) if out.dim() == y.dim() + 1 and out.shape[-1] == 1 else out
    if tuple(o.shape) == tuple(y.shape):
        return []
    return [Problem("fail", f"the output has shape {tuple(out.shape)} and the targets {tuple(y.shape)}: the MSE loss "
                    "broadcasts them into a matrix",
                    "Make the output shape match the targets (e.g. out.squeeze(-1) or y.unsqueeze(-1)).")]


def batchnorm_problems(ctx: CheckContext, model: nn.Module, metrics: dict[str, Any], notes: list[str]) -> list[Problem]:
    """BatchNorm cannot normalise a batch of one: does training ever give it one?"""
    bn = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    n_train, bs = len(ctx.splits().train), ctx.exp.train.batch_size
    metrics.update(batchnorm_layers=len(bn), train_size=n_train, batch_size=bs, last_batch=n_train % bs)
    if not bn:
        return []
    if n_train == 1 or bs == 1:
        return [Problem("warn", "BatchNorm layers will see batches of one example",
                        "BatchNorm cannot normalise a batch of one (its variance is 0): use a larger batch or "
                        "GroupNorm/LayerNorm.")]
    if n_train % bs == 1:
        notes.append(f"{n_train} training examples % batch size {bs} = 1: a last batch of one would break BatchNorm, "
                     "but the trainer drops the last incomplete batch (a different example each epoch), so it never "
                     "sees it; a DataLoader of your own needs drop_last=True")
    return []


def check(ctx: CheckContext) -> Verdict:
    task = ctx.task
    model = ctx.new_model()
    x, y = first_batch(ctx, ctx.exp.checks.batch_size)
    model.eval()
    with torch.no_grad():
        out = output_of(model, x).detach().double()
    metrics: dict[str, Any] = {"output_shape": list(out.shape), "min": num(out.min()), "max": num(out.max())}
    notes: list[str] = []
    if not bool(torch.isfinite(out).all()):
        problems = [Problem("fail", "the outputs at init contain NaN/Inf",
                            "Look for log(0) or division by zero in the forward pass.")]
    elif task.classes:
        problems = logit_problems(task, out, y, int(ctx.splits().info.num_classes or 0), metrics, notes)
    else:
        problems = value_problems(out, y)
    problems += batchnorm_problems(ctx, model, metrics, notes)
    if problems:
        note = f" ({'; '.join(notes)})" if notes else ""
        return Verdict(worst(problems), "; ".join(p.what for p in problems) + note + ".", metrics,
                       " ".join(p.hint for p in problems))
    summary = f"outputs {tuple(out.shape)} range over [{fmt(float(out.min()))}, {fmt(float(out.max()))}]"
    summary += ": unbounded logits, as the loss expects" if task.classes else ", shaped like the targets"
    return Verdict("pass", summary + (f"; {'; '.join(notes)}" if notes else "") + ".", metrics,
                   "The loss gets what it expects.")
