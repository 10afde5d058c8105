"""Stage 2, "every parameter learns": a few training steps; every trainable parameter gets a non-zero, finite
gradient within them and changes.

A few steps, not one: zero-initialised residual designs (ReZero's α = 0, torchvision's ``zero_init_residual``
last-BatchNorm γ = 0, Fixup, a zero-initialised output layer) give the layers behind the zero an exactly
zero gradient on the first step by design; they get one as soon as the gate has moved."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .common import names_list, num, output_of, train_batches
from .context import CheckContext
from .verdict import Verdict

STEPS = 5  # a parameter that gets a non-zero gradient within this many steps is alive (a chain of zero gates
#            opens one link per step; no real design needs more)
NO_FLOW_HINT = ("No gradient: the layer is not used in forward, or its output is detached (.detach(), .item(), "
                ".numpy(), torch.no_grad) on the way to the loss. Zero gradient: a dead branch (multiplied by 0, "
                "dead ReLUs, a constant output) — or a zero-initialised gate that never opens (a ReZero α or a "
                "BatchNorm γ kept at 0 as a buffer or with requires_grad=False). Unchanged: the parameter is not in "
                "the optimizer or is overwritten.")
GATED_NOTE = ("zero-initialised by design (ReZero α = 0, zero_init_residual's last BatchNorm γ = 0, Fixup, a "
              "zero-initialised output layer): the layers behind such a gate get a gradient once it has moved")


@dataclass
class Flow:
    """What the steps showed, per trainable parameter name."""

    first_grad: dict[str, int] = field(default_factory=dict)  # the step (1-based) of its first non-zero gradient
    got_grad: set[str] = field(default_factory=set)  # got a gradient tensor at some step
    non_finite: list[str] = field(default_factory=list)
    norms: dict[str, float] = field(default_factory=dict)  # gradient norms of the first step
    losses: list[float] = field(default_factory=list)
    steps: int = 0


def run_steps(ctx: CheckContext, model: nn.Module, trainable: list[tuple[str, nn.Parameter]]) -> Flow:
    """Up to ``STEPS`` steps on the trainer's batches; stops once every parameter has had a non-zero gradient."""
    from ..trainer import make_optimizer

    opt = make_optimizer(model, ctx.exp.train)
    batches = train_batches(ctx, ctx.exp.checks.batch_size)
    flow = Flow()
    for step in range(1, STEPS + 1):
        ctx.tick("grad-flow", step - 1, STEPS)
        x, y = next(batches)
        loss = ctx.task.loss(output_of(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        flow.losses.append(float(loss.detach()))
        for n, p in trainable:
            if p.grad is None:
                continue
            flow.got_grad.add(n)
            if step == 1:
                flow.norms[n] = float(p.grad.norm())
            if not bool(torch.isfinite(p.grad).all()):
                flow.non_finite.append(n)
            elif n not in flow.first_grad and bool(p.grad.ne(0).any()):
                flow.first_grad[n] = step
        opt.step()
        flow.steps = step
        if flow.non_finite or len(flow.first_grad) == len(trainable):
            break
    return flow


def check(ctx: CheckContext) -> Verdict:
    model = ctx.new_model()
    model.train()
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    if not trainable:
        return Verdict("fail", f"the model has no trainable parameter ({len(frozen)} frozen).",
                       {"frozen": frozen[:50]}, "Set requires_grad = True on the parameters that should learn.")
    before = {n: p.detach().clone() for n, p in trainable}
    flow = run_steps(ctx, model, trainable)
    no_grad = [n for n, _ in trainable if n not in flow.got_grad]
    zero_grad = [n for n, _ in trainable if n in flow.got_grad and n not in flow.first_grad]
    unchanged = [n for n, p in trainable if torch.equal(p.detach(), before[n])]
    unchanged_only = [n for n in unchanged if n in flow.first_grad]
    late = {n: s for n, s in flow.first_grad.items() if s > 1}
    smallest = sorted(((n, v) for n, v in flow.norms.items() if v > 0), key=lambda kv: kv[1])[:5]
    metrics: dict[str, Any] = {"parameters": len(trainable), "steps": flow.steps, "max_steps": STEPS,
                               "no_grad": no_grad[:50], "zero_grad": zero_grad[:50], "non_finite_grad": flow.non_finite[:50],
                               "unchanged": unchanged[:50], "frozen": frozen[:50],
                               "first_grad_step": {n: s for n, s in list(late.items())[:50]},
                               "loss": num(flow.losses[0]), "smallest_grad_norms": [[n, num(v, 4)] for n, v in smallest]}
    frozen_note = f"; {len(frozen)} frozen (requires_grad=False) not checked: {names_list(frozen, 3)}" if frozen else ""
    if flow.non_finite:
        return Verdict("fail", f"{len(flow.non_finite)} parameter tensors got non-finite gradients at step {flow.steps}: "
                       f"{names_list(flow.non_finite)}.", metrics,
                       "Look for log(0), sqrt(0) or division by zero in the forward pass, or too large inputs.")
    problems = [f"{len(names)} {what} ({names_list(names)})" for names, what in (
        (no_grad, "got no gradient at all"), (zero_grad, "got an all-zero gradient"),
        (unchanged_only, "did not change")) if names]
    if problems:
        return Verdict("fail", f"of {len(trainable)} trainable parameter tensors, over {flow.steps} steps, "
                       + "; ".join(problems) + frozen_note + ".", metrics, NO_FLOW_HINT)
    late_note = ""
    if late:
        late_note = (f"; {len(late)} of them only from step {min(late.values())} on ({names_list(list(late), 3)}): "
                     f"{GATED_NOTE}")
    steps = "one step" if flow.steps == 1 else f"{flow.steps} steps"
    return Verdict("pass", f"all {len(trainable)} trainable parameter tensors got a non-zero gradient and changed "
                   f"within {steps}{late_note}{frozen_note}.", metrics,
                   "Every parameter learns." + (f" The late ones are {GATED_NOTE}: expected." if late else ""))
