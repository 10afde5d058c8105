"""Stage 2, "use backprop to chart dependencies" across the batch.

loss = (a fixed random projection of) the outputs of example i, backward; the gradient must be zero on
every other example's input. Integer token inputs have no gradient, so the gradient is taken at the
outputs of the embeddings that read them (a forward hook swaps each such output for a leaf tensor). Runs
in eval mode (BatchNorm couples a batch in train mode by design) and in float64 where the model allows.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..tasks import first_tensor
from .common import first_batch, num, pick_batch_size
from .context import CheckContext
from .tracing import Record, Tracer, model_dtype, rtol, with_dtype
from .verdict import Verdict

MAX_LOCATE = 400  # module outputs examined (one backward each) to find where the batch gets mixed
LEAK_HINT = ("Information is mixed across the batch: look for view/reshape used where permute/transpose was meant, "
             "reductions over dim 0 (mean/sum/softmax over the batch), or a batch-first/sequence-first mix-up between "
             "the named modules.")


def _per_example(grads: tuple[torch.Tensor | None, ...], batch: int) -> torch.Tensor:
    m = torch.zeros(batch, dtype=torch.float64)
    for g in grads:
        if g is not None:
            m = torch.maximum(m, g.detach().abs().reshape(batch, -1).amax(1).double().nan_to_num(0.0).cpu())
    return m


def spread(batch: int, count: int) -> list[int]:
    """``count`` example indices spread over the batch: first, last, middle, then the rest."""
    order = [0, batch - 1, batch // 2, *range(1, batch)]
    return sorted(list(dict.fromkeys(order))[: max(1, min(count, batch))])


def dependents(target: torch.Tensor, i: int, leaves: list[torch.Tensor], batch: int,
               gen: torch.Generator) -> torch.Tensor | None:
    """Per-example gradient magnitudes of a random projection of ``target[i]`` (None: no path to the inputs)."""
    r = torch.randn(target[i].shape, generator=gen, dtype=torch.float64).to(target.device, target.dtype)
    grads = torch.autograd.grad((target[i] * r).sum(), leaves, retain_graph=True, allow_unused=True)
    if all(g is None for g in grads):
        return None
    return _per_example(grads, batch)


def traced_forward(model: nn.Module, x: torch.Tensor, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, Tracer]:
    """The model's output for ``x`` (float inputs as leaves in ``dtype``), with every module's output recorded.
    Embedding outputs are leaves even for float inputs: a model may turn part of its input into ids."""
    tokens = not x.is_floating_point()
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


def find_leaks(ctx: CheckContext, out: torch.Tensor, tracer: Tracer, samples: list[int], rtol: float,
               gen: torch.Generator, metrics: dict[str, Any]) -> tuple[dict[int, list[int]], list[int]]:
    """({example: the other examples its output depends on}, examples whose output depends on no input)."""
    batch = out.shape[0]
    leaks: dict[int, list[int]] = {}
    silent: list[int] = []
    for k, i in enumerate(samples):
        ctx.tick("batch-independence", k, len(samples))
        m = dependents(out, i, tracer.leaves, batch, gen)
        if m is None or float(m.max()) == 0.0:
            silent.append(i)
            continue
        others = [j for j in range(batch) if j != i and m[j] > rtol * m.max()]
        if others:
            leaks[i] = others
            metrics.setdefault("max_relative_leak", 0.0)
            metrics["max_relative_leak"] = num(max(float(metrics["max_relative_leak"]),
                                                   max(float(m[j] / m.max()) for j in others)))
    return leaks, silent


def first_mixing(ctx: CheckContext, tracer: Tracer, i: int, batch: int, rtol: float,
                 gen: torch.Generator) -> tuple[Record | None, Record | None]:
    """Walk the module outputs in the order they were computed; the first whose row ``i`` depends on
    another example's input is where the batch gets mixed (and the one before it is still clean)."""
    last_clean = None
    for k, rec in enumerate(tracer.records[:MAX_LOCATE]):
        ctx.tick("batch-independence: locating", k, min(len(tracer.records), MAX_LOCATE))
        out = rec.out
        if out.dim() == 0 or out.shape[0] != batch or not out.requires_grad:
            continue
        m = dependents(out, i, tracer.leaves, batch, gen)
        if m is None or float(m.max()) == 0.0:
            continue
        if any(m[j] > rtol * m.max() for j in range(batch) if j != i):
            return rec, last_clean
        last_clean = rec
    return None, last_clean


def leak_verdict(ctx: CheckContext, tracer: Tracer, leaks: dict[int, list[int]], batch: int, rtol: float,
                 gen: torch.Generator, metrics: dict[str, Any]) -> Verdict:
    first, last_clean = first_mixing(ctx, tracer, next(iter(leaks)), batch, rtol, gen)
    metrics.update(first_mixing_module=first.name if first else None, first_mixing_type=first.kind if first else None,
                   last_clean_module=last_clean.name if last_clean else None)
    where = ""
    if first is not None:
        where = f"; the first module whose output mixes the batch is '{first.name}' ({first.kind})"
        if last_clean is not None:
            where += f", after '{last_clean.name}' ({last_clean.kind}) which is still clean"
    pairs = "; ".join(f"output {i} depends on input{'s' if len(js) > 1 else ''} {', '.join(map(str, js[:8]))}"
                      for i, js in list(leaks.items())[:3])
    return Verdict("fail", f"examples leak into each other in eval mode: {pairs}{where}.", metrics, LEAK_HINT)


def check(ctx: CheckContext) -> Verdict:
    splits = ctx.splits()
    split = "val" if len(splits.val) >= 4 else "train"
    ds = getattr(splits, split)
    if len(ds) < 4:
        return Verdict("skip", f"needs a batch of at least 4 examples; the data has {len(ds)}.")
    batch = pick_batch_size(tuple(splits.info.input_shape), len(ds))
    x, _ = first_batch(ctx, batch, split)
    if not isinstance(x, torch.Tensor):
        return Verdict("skip", "the inputs are not a single tensor; this check needs one.")
    model = ctx.new_model()
    model.eval()  # BatchNorm couples the examples of a batch in train mode, legitimately
    own = model_dtype(model)
    samples = spread(batch, ctx.exp.checks.dependency_samples)
    (out, tracer), dtype = with_dtype(model, x, lambda dtype: traced_forward(model, x, batch, dtype))
    metrics: dict[str, Any] = {"batch": batch, "examples_tested": samples, "dtype": str(dtype).replace("torch.", ""),
                               "model_dtype": str(own).replace("torch.", ""), "split": split, "mode": "eval"}
    if not x.is_floating_point() and not tracer.leaves:
        return Verdict("skip", "the inputs are integer tokens and no nn.Embedding reads them, so there is nothing to "
                       "take gradients at.", metrics,
                       "Chart dependencies by hand: change example i and check that only output i changes.")
    if out.dim() == 0 or out.shape[0] != batch:
        return Verdict("skip", f"the output has shape {tuple(out.shape)}: its first dimension is not the batch "
                       f"({batch}).", metrics)
    gen = torch.Generator().manual_seed(0)
    leaks, silent = find_leaks(ctx, out, tracer, samples, rtol(dtype), gen, metrics)
    if leaks and dtype != own:  # float64 proposes; the model's own dtype decides
        model.to(own)
        metrics.pop("max_relative_leak", None)
        out, tracer = traced_forward(model, x, batch, own)
        confirmed, _ = find_leaks(ctx, out, tracer, list(leaks), rtol(own), gen, metrics)
        metrics["unconfirmed"] = sorted(set(leaks) - set(confirmed))
        leaks, dtype = confirmed, own
    metrics["leaks"] = {str(i): js for i, js in leaks.items()}
    metrics["no_dependence"] = silent
    if leaks:
        return leak_verdict(ctx, tracer, leaks, batch, rtol(dtype), gen, metrics)
    if len(silent) == len(samples):
        return Verdict("warn", f"the outputs of examples {samples} have no gradient with respect to any input: the "
                       "model does not depend on its input.", metrics,
                       "Check the forward pass: is the input used? Detached? (see zero-input and grad-flow).")
    note = (f"; in {metrics['dtype']} examples {metrics['unconfirmed']} seemed to depend on others, which the model's "
            f"own {metrics['model_dtype']} did not confirm (a kernel that behaves differently in {metrics['dtype']})"
            if metrics.get("unconfirmed") else "")
    return Verdict("pass", f"the outputs of examples {samples} (batch of {batch}, eval mode, {metrics['dtype']}) "
                   f"depend on their own input only{note}.", metrics, "The batch dimension is not mixed.")
