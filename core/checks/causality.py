"""Stage 2, "use backprop to chart dependencies" across time, for autoregressive models.

For each position t′ the input token at t′ is replaced by another one and we watch which outputs
change: an output at t < t′ that changes sees the future. Interventions (rather than gradients at
embedding outputs) keep positions aligned even when a model pads or shifts its input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..tasks import first_tensor
from .common import first_batch
from .context import CheckContext
from .tracing import Record, Tracer, change_by_position, model_dtype, rtol, time_axis, with_dtype
from .verdict import Verdict

FUTURE_HINT = ("The model sees the future during training: use a causal attention mask (is_causal / "
               "generate_square_subsequent_mask), left-pad convolutions by (kernel − 1)·dilation instead of "
               "padding both sides, and check any shift of the targets.")


class NotPerPosition(Exception):
    """The model's output is not one prediction per position: the check does not apply."""


@dataclass
class Found:
    violations: list[tuple[int, int]] = field(default_factory=list)  # (t, t′): the output at t changed with input t′ > t
    blind: list[int] = field(default_factory=list)  # positions whose output ignores their own input
    first_module: str | None = None  # where the first violation starts


class Probe:
    """Changes one input position at a time and watches which output positions move."""

    def __init__(self, ctx: CheckContext, model: nn.Module, xs: torch.Tensor, positions: list[int], vocab: int) -> None:
        self.ctx, self.model, self.xs, self.positions, self.vocab = ctx, model, xs, positions, vocab
        self.length = xs.shape[1]
        self.gen = torch.Generator().manual_seed(0)

    def variants(self, x: torch.Tensor, t: int) -> list[torch.Tensor]:
        """Two copies of ``x`` that differ from it at position ``t`` only."""
        out = []
        if x.is_floating_point():
            for _ in range(2):
                v = x.clone()
                noise = torch.randn(v[:, t].shape, generator=self.gen).to(v.device, v.dtype)
                v[:, t] = v[:, t] + noise * (float(x.std()) or 1.0)
                out.append(v)
        else:
            for shift in (1, max(2, self.vocab // 2)):
                v = x.clone()
                v[:, t] = (v[:, t] + shift) % max(self.vocab, 2)
                out.append(v)
        return out

    def forward(self, x: torch.Tensor, record: bool) -> tuple[torch.Tensor, list[Record]]:
        tracer = Tracer(self.model, 2, leaf_embeddings=False, record=record)
        try:
            out = first_tensor(self.model(torch.cat([x, x])))  # identical rows: a batch of one trips some models
        finally:
            tracer.close()
        if out is None or out.dim() < 2 or out.shape[1] != self.length:
            raise NotPerPosition(tuple(out.shape) if out is not None else ())
        return out.detach(), [Record(r.name, r.kind, r.out.detach()) for r in tracer.records]

    def run(self, dtype: torch.dtype) -> Found:
        tol, found = rtol(dtype), Found()
        culprit: tuple[torch.Tensor, torch.Tensor, int] | None = None  # (base, variant, t) of the first violation
        n_seq, total = len(self.xs), len(self.xs) * len(self.positions)
        for s in range(n_seq):
            x = self.xs[s:s + 1]
            x = x.to(dtype) if x.is_floating_point() else x
            base, _ = self.forward(x, record=False)
            for k, t in enumerate(self.positions):
                self.ctx.tick("causality", s * len(self.positions) + k, total)
                change = torch.zeros(self.length, dtype=torch.float64)
                for v in self.variants(x, t):
                    delta = change_by_position(base, self.forward(v, record=False)[0], 1)
                    if culprit is None and t and bool((delta[:t] > tol * delta.max()).any()):
                        culprit = (x, v, t)
                    change = torch.maximum(change, delta)
                scale = float(change.max())
                if scale == 0.0:
                    continue
                found.violations += [(u, t) for u in range(t) if change[u] > tol * scale]
                if change[t] <= tol * scale:
                    found.blind.append(t)
        if found.violations and culprit is not None:  # only now pay for recording every module's output
            found.first_module = self.first_module(*culprit, tol)
        return found

    def first_module(self, x: torch.Tensor, v: torch.Tensor, t: int, rtol: float) -> str | None:
        """The first module (in the order outputs were computed) whose output before position t changed when
        only the input at t did."""
        _, base = self.forward(x, record=True)
        _, other = self.forward(v, record=True)
        if len(base) != len(other):
            return None
        for b, o in zip(base, other):
            if b.out.shape != o.out.shape or b.out.dim() < 2:
                continue
            axis = time_axis(b.out, self.length)
            if axis is None:
                continue
            change = change_by_position(b.out, o.out.detach(), axis)
            scale = float(change.max())
            if scale > 0 and any(change[u] > rtol * scale for u in range(t)):
                return f"{b.name} ({b.kind})"
        return None


def check(ctx: CheckContext) -> Verdict:
    if not ctx.task.sequence:
        return Verdict("skip", f"applies to autoregressive (language) models; this recipe's task is {ctx.task.name}.")
    splits = ctx.splits()
    ds = splits.val if len(splits.val) else splits.train
    n_seq = max(1, min(ctx.exp.checks.dependency_samples, len(ds)))
    xs, _ = first_batch(ctx, n_seq, "val" if ds is splits.val else "train")
    if xs.dim() < 2:
        return Verdict("skip", f"the inputs have shape {tuple(xs.shape)}: not (batch, time, …) sequences.")
    length = xs.shape[1]
    positions = sorted({round(p * (length - 1) / 31) for p in range(32)}) if length > 32 else list(range(length))
    vocab = int(splits.info.num_classes or (int(xs.max()) + 1 if not xs.is_floating_point() else 0))
    model = ctx.new_model()
    model.eval()  # dropout off; gradients stay enabled so the math is the training path's
    own = model_dtype(model)
    try:
        found, dtype = with_dtype(model, xs, Probe(ctx, model, xs, positions, vocab).run)
        unconfirmed = confirm(ctx, model, xs, vocab, found, own) if found.violations and dtype != own else 0
    except NotPerPosition as exc:
        return Verdict("skip", f"the output has shape {exc.args[0]}: not one prediction per position "
                       f"(batch, {length}, vocabulary).")
    violations = sorted(set(found.violations))
    metrics: dict[str, Any] = {"sequences": n_seq, "length": length, "positions_tested": len(positions),
                               "dtype": str(dtype).replace("torch.", ""), "model_dtype": str(own).replace("torch.", ""),
                               "violations": [list(p) for p in violations[:50]], "violation_count": len(violations),
                               "unconfirmed": unconfirmed, "first_module": found.first_module}
    if violations:
        shown = ", ".join(f"{t}←{u}" for t, u in violations[:6])
        where = f"; it starts in '{found.first_module}'" if found.first_module else ""
        return Verdict("fail", f"{len(violations)} (t, t′) pairs where the output at t depends on a later input "
                       f"t′ > t (t←t′: {shown}){where}.", metrics, FUTURE_HINT)
    blind = sorted(set(found.blind))
    metrics["blind_positions"] = blind
    if len(blind) > len(positions) // 2:
        return Verdict("warn", f"no output depends on a later input, but at {len(blind)} of {len(positions)} "
                       "positions the output at t does not depend on the input at t either.", metrics,
                       "The model may be shifted one step too far (it never sees the current token): check the padding "
                       "of causal convolutions and the mask's diagonal.")
    note = ""
    if unconfirmed:
        note = (f"; {unconfirmed} (t, t′) pairs that {metrics['dtype']} showed did not reproduce in the model's own "
                f"{metrics['model_dtype']} and are not counted (a kernel that behaves differently in "
                f"{metrics['dtype']})")
    return Verdict("pass", f"the output at every tested position t depends only on inputs ≤ t "
                   f"({len(positions)} positions × {n_seq} sequences, {metrics['dtype']}){note}.", metrics,
                   "The model at time t only depends on the past.")


def confirm(ctx: CheckContext, model: nn.Module, xs: torch.Tensor, vocab: int, found: Found, own: torch.dtype) -> int:
    """Re-run the positions where ``found`` has violations in the model's own dtype, which decides: float64 only
    proposes candidates, because some kernels treat a float32 mask differently when the inputs are float64.
    ``found`` keeps the confirmed violations (and the first module of those); returns how many were dropped."""
    model.to(own)
    candidates = set(found.violations)
    again = Probe(ctx, model, xs, sorted({t for _, t in candidates}), vocab).run(own)
    confirmed = set(again.violations)
    found.violations = sorted(confirmed)
    found.first_module = again.first_module
    return len(candidates - confirmed)
