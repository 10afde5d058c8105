"""Stage 2, "every parameter learns": one step on a batch; every trainable parameter gets a non-zero,
finite gradient and changes."""
from __future__ import annotations

from typing import Any

import torch

from .common import first_batch, names_list, num, output_of
from .context import CheckContext
from .verdict import Verdict

NO_FLOW_HINT = ("No gradient: the layer is not used in forward, or its output is detached (.detach(), .item(), "
                ".numpy(), torch.no_grad) on the way to the loss. Zero gradient: a dead branch (multiplied by 0, "
                "dead ReLUs, a constant output). Unchanged: the parameter is not in the optimizer or is overwritten.")


def check(ctx: CheckContext) -> Verdict:
    from ..trainer import make_optimizer

    model = ctx.new_model()
    model.train()
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    if not trainable:
        return Verdict("fail", f"the model has no trainable parameter ({len(frozen)} frozen).",
                       {"frozen": frozen[:50]}, "Set requires_grad = True on the parameters that should learn.")
    opt = make_optimizer(model, ctx.exp.train)
    x, y = first_batch(ctx, ctx.exp.checks.batch_size)
    before = {n: p.detach().clone() for n, p in trainable}
    ctx.tick("grad-flow", 0, 2)
    loss = ctx.task.loss(output_of(model, x), y)
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
        return Verdict("fail", f"{len(non_finite)} parameter tensors got non-finite gradients: {names_list(non_finite)}.",
                       metrics, "Look for log(0), sqrt(0) or division by zero in the forward pass, or too large inputs.")
    problems = [f"{len(names)} {what} ({names_list(names)})" for names, what in (
        (no_grad, "got no gradient at all"), (zero_grad, "got an all-zero gradient"),
        (unchanged_only, "did not change after the step")) if names]
    if problems:
        return Verdict("fail", f"of {len(trainable)} trainable parameter tensors, " + "; ".join(problems) + frozen_note
                       + ".", metrics, NO_FLOW_HINT)
    return Verdict("pass", f"all {len(trainable)} trainable parameter tensors got a non-zero gradient and "
                   f"changed after one step{frozen_note}.", metrics, "Every parameter learns.")
