"""Forward hooks for the dependency checks (batch-independence, causality): every module's output in the
order it was computed, and embedding outputs turned into leaf tensors so that integer token inputs can
be differentiated against. Checks run in float64 where the model allows, so that numerical noise cannot
pass for a dependency."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from ..tasks import first_tensor

# A dependency smaller than this × the largest is noise (rounding in that dtype).
RTOL = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}


@dataclass
class Record:
    name: str
    kind: str
    out: torch.Tensor


def module_names(model: nn.Module) -> dict[int, str]:
    return {id(m): (n or f"(the model's own forward, {type(m).__name__})") for n, m in model.named_modules()}


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model trains in: that of its first floating-point parameter (float32 when it has none). It
    decides a dependency check: float64 only proposes candidates, because some kernels treat a float32 mask
    differently when the inputs are float64."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def rtol(dtype: torch.dtype) -> float:
    return RTOL.get(dtype, 2e-2)


def with_dtype(model: nn.Module, x: torch.Tensor, run: Callable[[torch.dtype], Any]) -> tuple[Any, torch.dtype]:
    """``run(dtype)`` in float64 when the model and device allow it, else in float32."""
    dtypes = [torch.float32] if x.device.type == "mps" else [torch.float64, torch.float32]
    for k, dtype in enumerate(dtypes):
        model.to(dtype)  # only floating parameters and buffers change dtype
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
        self.names = module_names(model)
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


def time_axis(t: torch.Tensor, length: int) -> int | None:
    """The one axis (after the batch) of size ``length``; None when there is none or it is ambiguous."""
    axes = [a for a in range(1, t.dim()) if t.shape[a] == length]
    return axes[0] if len(axes) == 1 else None


def change_by_position(base: torch.Tensor, other: torch.Tensor, axis: int) -> torch.Tensor:
    """The largest change of the first example's output at each position along ``axis``."""
    d = (other[0] - base[0]).abs().double()
    d = d.movedim(axis - 1, 0).reshape(d.shape[axis - 1], -1)
    return d.amax(1).nan_to_num(0.0).cpu()
