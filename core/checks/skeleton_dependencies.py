"""Stage 2: "use backprop to chart dependencies" — across the batch, and across time for language models.

batch-independence: loss = (a fixed random projection of) the outputs of example i, backward; the
gradient must be zero on every other example's input. Integer token inputs have no gradient, so the
gradient is taken at the outputs of the embeddings that read them (a forward hook swaps each such
output for a leaf tensor). Runs in eval mode (BatchNorm couples a batch in train mode by design) and
in float64 where the model allows, so that numerical noise cannot pass for a dependency.

causality: for each position t′ the input token at t′ is replaced by another one and we watch which
outputs change: an output at t < t′ that changes sees the future. Interventions (rather than gradients
at embedding outputs) keep positions aligned even when a model pads or shifts its input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from ..events import CheckResult
from ..tasks import first_tensor
from . import check, result
from .context import CheckContext
from .skeleton_common import first_batch, is_lm, num, pick_batch_size

MAX_LOCATE = 400  # module outputs examined (one backward each) to find where the batch gets mixed
RTOL = {torch.float64: 1e-9, torch.float32: 1e-5}  # a dependency smaller than this × the largest is noise


@dataclass
class Record:
    name: str
    kind: str
    out: torch.Tensor


def _module_names(model: nn.Module) -> dict[int, str]:
    return {id(m): (n or f"(the model's own forward, {type(m).__name__})") for n, m in model.named_modules()}


def _to_dtype(model: nn.Module, dtype: torch.dtype) -> None:
    model.to(dtype)  # only floating parameters and buffers change dtype


def _with_dtype(model: nn.Module, x: torch.Tensor, run: Callable[[torch.dtype], Any]) -> tuple[Any, torch.dtype]:
    """``run(dtype)`` in float64 when the model and device allow it, else in float32."""
    dtypes = [torch.float32] if x.device.type == "mps" else [torch.float64, torch.float32]
    for k, dtype in enumerate(dtypes):
        _to_dtype(model, dtype)
        try:
            return run(dtype), dtype
        except Exception:
            if k == len(dtypes) - 1:
                raise
    raise AssertionError("unreachable")


class Tracer:
    """Forward hooks: records every module's output (completion order) and, for token inputs, turns the
    outputs of embeddings reading per-example tokens into leaf tensors we can differentiate against."""

    def __init__(self, model: nn.Module, batch: int, leaf_embeddings: bool, record: bool) -> None:
        self.names = _module_names(model)
        self.batch = batch
        self.leaves: list[torch.Tensor] = []
        self.records: list[Record] = []
        self.handles = []
        if leaf_embeddings:
            for m in model.modules():
                if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
                    self.handles.append(m.register_forward_hook(self._leaf, with_kwargs=True))
        if record:
            for m in model.modules():
                self.handles.append(m.register_forward_hook(self._record))

    def _leaf(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        inp = args[0] if args else kwargs.get("input")
        if (isinstance(output, torch.Tensor) and isinstance(inp, torch.Tensor) and inp.dim() >= 1
                and inp.shape[0] == self.batch and output.dim() >= 1 and output.shape[0] == self.batch):
            leaf = output.detach().requires_grad_(True)
            self.leaves.append(leaf)
            return leaf
        return None

    def _record(self, module: nn.Module, args: tuple, output: Any) -> None:
        out = first_tensor(output)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            self.records.append(Record(self.names[id(module)], type(module).__name__, out))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _per_example(grads: tuple[torch.Tensor | None, ...], batch: int) -> torch.Tensor:
    m = torch.zeros(batch, dtype=torch.float64)
    for g in grads:
        if g is not None:
            m = torch.maximum(m, g.detach().abs().reshape(batch, -1).amax(1).double().nan_to_num(0.0).cpu())
    return m


def _spread(batch: int, count: int) -> list[int]:
    """``count`` example indices spread over the batch: first, last, middle, then the rest."""
    order = [0, batch - 1, batch // 2, *range(1, batch)]
    return sorted(list(dict.fromkeys(order))[: max(1, min(count, batch))])


def _dependents(target: torch.Tensor, i: int, leaves: list[torch.Tensor], batch: int, gen: torch.Generator) -> torch.Tensor | None:
    """Per-example gradient magnitudes of a random projection of ``target[i]`` (None: no path to the inputs)."""
    r = torch.randn(target[i].shape, generator=gen, dtype=torch.float64).to(target.device, target.dtype)
    grads = torch.autograd.grad((target[i] * r).sum(), leaves, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return None
    return _per_example(grads, batch)


@check("batch-independence", "Use backprop to chart dependencies")
def batch_independence(ctx: CheckContext) -> CheckResult:
    splits = ctx.splits()
    split = "val" if len(splits.val) >= 4 else "train"
    ds = getattr(splits, split)
    if len(ds) < 4:
        return result("batch-independence", "skip", f"needs a batch of at least 4 examples; the data has {len(ds)}.")
    batch = pick_batch_size(tuple(splits.info.input_shape), len(ds))
    x, _ = first_batch(ctx, batch, split)
    if not isinstance(x, torch.Tensor):
        return result("batch-independence", "skip", "the inputs are not a single tensor; this check needs one.")
    model = ctx.new_model()
    model.eval()  # BatchNorm couples the examples of a batch in train mode, legitimately
    samples = _spread(batch, ctx.exp.checks.dependency_samples)
    tokens = not x.is_floating_point()

    def forward(dtype: torch.dtype) -> tuple[torch.Tensor, Tracer]:
        # Embedding outputs are leaves even for float inputs: a model may turn part of its input into ids.
        tracer = Tracer(model, batch, leaf_embeddings=True, record=True)
        try:
            xin = x if tokens else x.to(dtype).detach().requires_grad_(True)
            if not tokens:
                tracer.leaves.append(xin)
            out = first_tensor(model(xin if tokens else xin.clone()))  # a clone: the model may write into its input
        finally:
            tracer.close()
        if out is None:
            raise TypeError("the model returned no tensor")
        return out, tracer

    (out, tracer), dtype = _with_dtype(model, x, forward)
    rtol = RTOL[dtype]
    metrics: dict[str, Any] = {"batch": batch, "examples_tested": samples, "dtype": str(dtype).replace("torch.", ""),
                               "split": split, "mode": "eval"}
    if tokens and not tracer.leaves:
        return result("batch-independence", "skip", "the inputs are integer tokens and no nn.Embedding reads them, "
                      "so there is nothing to take gradients at.", metrics,
                      "Chart dependencies by hand: change example i and check that only output i changes.")
    if out.dim() == 0 or out.shape[0] != batch:
        return result("batch-independence", "skip", f"the output has shape {tuple(out.shape)}: its first dimension is not "
                      f"the batch ({batch}).", metrics)
    gen = torch.Generator().manual_seed(0)
    leaks: dict[int, list[int]] = {}
    silent: list[int] = []
    for k, i in enumerate(samples):
        ctx.tick("batch-independence", k, len(samples))
        m = _dependents(out, i, tracer.leaves, batch, gen)
        if m is None or float(m.max()) == 0.0:
            silent.append(i)
            continue
        others = [j for j in range(batch) if j != i and m[j] > rtol * m.max()]
        if others:
            leaks[i] = others
            metrics.setdefault("max_relative_leak", 0.0)
            metrics["max_relative_leak"] = num(max(float(metrics["max_relative_leak"]),
                                                   max(float(m[j] / m.max()) for j in others)))
    metrics["leaks"] = {str(i): js for i, js in leaks.items()}
    metrics["no_dependence"] = silent
    if leaks:
        i = next(iter(leaks))
        first, last_clean = _first_mixing(ctx, tracer, i, batch, rtol, gen)
        metrics.update(first_mixing_module=first.name if first else None,
                       first_mixing_type=first.kind if first else None,
                       last_clean_module=last_clean.name if last_clean else None)
        where = ""
        if first is not None:
            where = f"; the first module whose output mixes the batch is '{first.name}' ({first.kind})"
            if last_clean is not None:
                where += f", after '{last_clean.name}' ({last_clean.kind}) which is still clean"
        pairs = "; ".join(f"output {i} depends on input{'s' if len(js) > 1 else ''} {', '.join(map(str, js[:8]))}"
                          for i, js in list(leaks.items())[:3])
        return result("batch-independence", "fail", f"examples leak into each other in eval mode: {pairs}{where}.", metrics,
                      "Information is mixed across the batch: look for view/reshape used where permute/transpose was "
                      "meant, reductions over dim 0 (mean/sum/softmax over the batch), or a batch-first/sequence-first mix-up "
                      "between the named modules.")
    if len(silent) == len(samples):
        return result("batch-independence", "warn", f"the outputs of examples {samples} have no gradient with respect to "
                      "any input: the model does not depend on its input.", metrics,
                      "Check the forward pass: is the input used? Detached? (see zero-input and grad-flow).")
    return result("batch-independence", "pass", f"the outputs of examples {samples} (batch of {batch}, eval mode, "
                  f"{metrics['dtype']}) depend on their own input only.", metrics,
                  "The batch dimension is not mixed.")


def _first_mixing(ctx: CheckContext, tracer: Tracer, i: int, batch: int, rtol: float,
                  gen: torch.Generator) -> tuple[Record | None, Record | None]:
    """Walk the module outputs in the order they were computed; the first whose row ``i`` depends on
    another example's input is where the batch gets mixed."""
    last_clean = None
    for k, rec in enumerate(tracer.records[:MAX_LOCATE]):
        ctx.tick("batch-independence: locating", k, min(len(tracer.records), MAX_LOCATE))
        out = rec.out
        if out.dim() == 0 or out.shape[0] != batch or not out.requires_grad:
            continue
        m = _dependents(out, i, tracer.leaves, batch, gen)
        if m is None or float(m.max()) == 0.0:
            continue
        if any(m[j] > rtol * m.max() for j in range(batch) if j != i):
            return rec, last_clean
        last_clean = rec
    return None, last_clean


# ------------------------------------------------------------------------------------------------- causality


def _time_axis(t: torch.Tensor, length: int) -> int | None:
    """The one axis (after the batch) of size ``length``; None when there is none or it is ambiguous."""
    axes = [a for a in range(1, t.dim()) if t.shape[a] == length]
    return axes[0] if len(axes) == 1 else None


def _change_by_position(base: torch.Tensor, other: torch.Tensor, axis: int) -> torch.Tensor:
    d = (other[0] - base[0]).abs().double()
    d = d.movedim(axis - 1, 0).reshape(d.shape[axis - 1], -1)
    return d.amax(1).nan_to_num(0.0).cpu()


@check("causality", "Causal dependencies (autoregressive models)")
def causality(ctx: CheckContext) -> CheckResult:
    if not is_lm(ctx):
        return result("causality", "skip", f"applies to autoregressive (language) models; this recipe's task is "
                      f"{ctx.exp.task}.")
    splits = ctx.splits()
    ds = splits.val if len(splits.val) else splits.train
    n_seq = max(1, min(ctx.exp.checks.dependency_samples, len(ds)))
    xs, _ = first_batch(ctx, n_seq, "val" if ds is splits.val else "train")
    if xs.dim() < 2:
        return result("causality", "skip", f"the inputs have shape {tuple(xs.shape)}: not (batch, time, …) sequences.")
    length = xs.shape[1]
    positions = sorted({round(p * (length - 1) / 31) for p in range(32)}) if length > 32 else list(range(length))
    vocab = int(splits.info.num_classes or (int(xs.max()) + 1 if not xs.is_floating_point() else 0))
    model = ctx.new_model()
    model.eval()  # dropout off; gradients stay enabled so the math is the training path's
    gen = torch.Generator().manual_seed(0)

    def variants(x: torch.Tensor, t: int) -> list[torch.Tensor]:
        out = []
        if x.is_floating_point():
            for _ in range(2):
                v = x.clone()
                v[:, t] = v[:, t] + torch.randn(v[:, t].shape, generator=gen).to(v.device, v.dtype) * (float(x.std()) or 1.0)
                out.append(v)
        else:
            for shift in (1, max(2, vocab // 2)):
                v = x.clone()
                v[:, t] = (v[:, t] + shift) % max(vocab, 2)
                out.append(v)
        return out

    def forward(x: torch.Tensor, record: bool) -> tuple[torch.Tensor, list[Record]]:
        tracer = Tracer(model, 2, leaf_embeddings=False, record=record)
        try:
            out = first_tensor(model(torch.cat([x, x])))  # identical rows: a batch of one trips some models
        finally:
            tracer.close()
        if out is None or out.dim() < 2 or out.shape[1] != length:
            raise _NotPerPosition(tuple(out.shape) if out is not None else ())
        return out.detach(), [Record(r.name, r.kind, r.out.detach()) for r in tracer.records]

    def run(dtype: torch.dtype) -> dict[str, Any]:
        rtol = RTOL[dtype]
        violations: list[tuple[int, int]] = []
        blind: list[int] = []
        culprit: tuple[torch.Tensor, torch.Tensor, int] | None = None  # (base, variant, t) of the first violation
        total = n_seq * len(positions)
        for s in range(n_seq):
            x = xs[s:s + 1]
            x = x.to(dtype) if x.is_floating_point() else x
            base, _ = forward(x, record=False)
            for k, t in enumerate(positions):
                ctx.tick("causality", s * len(positions) + k, total)
                change = torch.zeros(length, dtype=torch.float64)
                for v in variants(x, t):
                    out, _ = forward(v, record=False)
                    delta = _change_by_position(base, out, 1)
                    if culprit is None and t and bool((delta[:t] > rtol * delta.max()).any()):
                        culprit = (x, v, t)
                    change = torch.maximum(change, delta)
                scale = float(change.max())
                if scale == 0.0:
                    continue
                violations += [(u, t) for u in range(t) if change[u] > rtol * scale]
                if change[t] <= rtol * scale:
                    blind.append(t)
        first_module = None
        if violations and culprit is not None:  # only now pay for recording every module's output
            x, v, t = culprit
            _, base_records = forward(x, record=True)
            _, other_records = forward(v, record=True)
            if len(base_records) == len(other_records):
                first_module = _first_future_leak(base_records, other_records, t, length, rtol)
        return {"violations": violations, "blind": blind, "first_module": first_module}

    try:
        found, dtype = _with_dtype(model, xs, run)
    except _NotPerPosition as exc:
        return result("causality", "skip", f"the output has shape {exc.args[0]}: not one prediction per position "
                      f"(batch, {length}, vocabulary).")
    violations = sorted(set(found["violations"]))
    metrics: dict[str, Any] = {"sequences": n_seq, "length": length, "positions_tested": len(positions),
                               "dtype": str(dtype).replace("torch.", ""),
                               "violations": [list(p) for p in violations[:50]], "violation_count": len(violations),
                               "first_module": found["first_module"]}
    if violations:
        shown = ", ".join(f"{t}←{u}" for t, u in violations[:6])
        where = f"; it starts in '{found['first_module']}'" if found["first_module"] else ""
        return result("causality", "fail", f"{len(violations)} (t, t′) pairs where the output at t depends on a later input "
                      f"t′ > t (t←t′: {shown}){where}.", metrics,
                      "The model sees the future during training: use a causal attention mask (is_causal / "
                      "generate_square_subsequent_mask), left-pad convolutions by (kernel − 1)·dilation instead of "
                      "padding both sides, and check any shift of the targets.")
    blind = sorted(set(found["blind"]))
    metrics["blind_positions"] = blind
    if len(blind) > len(positions) // 2:
        return result("causality", "warn", f"no output depends on a later input, but at {len(blind)} of {len(positions)} "
                      "positions the output at t does not depend on the input at t either.", metrics,
                      "The model may be shifted one step too far (it never sees the current token): check the padding of "
                      "causal convolutions and the mask's diagonal.")
    return result("causality", "pass", f"the output at every tested position t depends only on inputs ≤ t "
                  f"({len(positions)} positions × {n_seq} sequences, {metrics['dtype']}).", metrics,
                  "The model at time t only depends on the past.")


class _NotPerPosition(Exception):
    pass


def _first_future_leak(base: list[Record], other: list[Record], t: int, length: int, rtol: float) -> str | None:
    """The first module (in the order outputs were computed) whose output before position t changed when
    only the input at t did."""
    for b, o in zip(base, other):
        if b.out.shape != o.out.shape or b.out.dim() < 2:
            continue
        axis = _time_axis(b.out, length)
        if axis is None:
            continue
        change = _change_by_position(b.out, o.out.detach(), axis)
        scale = float(change.max())
        if scale > 0 and any(change[u] > rtol * scale for u in range(t)):
            return f"{b.name} ({b.kind})"
    return None

