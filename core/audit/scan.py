"""One pass over a split: per-sample hashes, statistics, embeddings and features.

Everything the stage-1 checks need comes out of this single pass, so the data is read once per job
(``pipeline.audit_scans`` keeps it in ``ctx.cache``). In-memory data (``TensorPairs``, ``TensorDataset``,
subsets of them, torchvision's stored arrays) is processed in vectorised chunks; any other dataset
is iterated item by item, and items that raise are recorded, not fatal.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from .accumulator import Accumulator, channels_of
from .progress import Ticker, TickFn
from .split_scan import ChannelStats, SplitScan

__all__ = ["ChannelStats", "SplitScan", "in_memory_arrays", "sample_channel_stats", "scan_split", "scan_splits"]

CHUNK = 4096  # rows per vectorised step: bounds memory, gives progress and stop a chance to run


# ----------------------------------------------------------------------------- in-memory fast path


def in_memory_arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor | None, str] | None:
    """``(x, y, source)`` when the dataset holds its samples as arrays; None when it must be iterated.

    torchvision datasets expose their stored data (``.data``, before transforms): using it is fast and
    immune to random augmentation; stats of what the model sees are sampled separately.
    """
    from torch.utils.data import Subset, TensorDataset

    from ..data import TensorPairs

    if isinstance(ds, TensorPairs):
        return ds.x, ds.y, "memory"
    if isinstance(ds, TensorDataset) and len(ds.tensors) in (1, 2):
        return ds.tensors[0], (ds.tensors[1] if len(ds.tensors) == 2 else None), "memory"
    if isinstance(ds, Subset):
        inner = in_memory_arrays(ds.dataset)
        if inner is None:
            return None
        idx = torch.as_tensor(list(ds.indices), dtype=torch.long)
        x, y, source = inner
        return x[idx], (None if y is None else y[idx]), source
    if type(ds).__module__.startswith("torchvision.datasets"):
        data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
        if isinstance(data, (np.ndarray, torch.Tensor)) and targets is not None and len(data) == len(ds):
            x = torch.as_tensor(np.asarray(data))
            if x.dtype != torch.uint8:
                return None
            if x.dim() == 3:  # MNIST-style (N, H, W)
                x = x[:, None]
            elif x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):  # CIFAR-style NHWC
                x = x.permute(0, 3, 1, 2)
            return x, torch.as_tensor(np.asarray(targets)), "stored"
    return None


# ----------------------------------------------------------------------------- a split, all splits


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "getbands"):  # a PIL image (no ToTensor transform): H×W(×C) → C×H×W
        a = np.asarray(x)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))
    try:
        return torch.as_tensor(x)
    except (TypeError, RuntimeError, ValueError):
        return torch.as_tensor(np.asarray(x))


def scan_split(name: str, ds: Any, kind: str = "image", *, ignore_index: int = -1, vocab_size: int | None = None,
               tick: TickFn | None = None, sample_model_input: int = 512) -> SplitScan:
    """Scan one split. ``tick(task, done, total)`` is called in every loop (it may raise to stop)."""
    acc = Accumulator(name, kind, ignore_index, vocab_size)
    n = len(ds)
    ticker = Ticker(tick, f"scan {name}", n)
    arrays = in_memory_arrays(ds)
    failed: list[tuple[int, str]] = []
    if arrays is not None:
        x, y, source = arrays
        for i in range(0, n, CHUNK):
            j = min(n, i + CHUNK)
            acc.add(x[i:j], None if y is None else y[i:j].cpu().numpy(), np.arange(i, j))
            ticker(j)
    else:
        source = "loaded"
        buf_x: list[torch.Tensor] = []
        buf_y: list[Any] = []
        buf_i: list[int] = []

        def flush() -> None:
            if buf_x:
                has_y = all(v is not None for v in buf_y)
                yy = np.stack([np.asarray(v) for v in buf_y]) if has_y and _same_shapes(buf_y) else (
                    buf_y if has_y else None)
                acc.add(torch.stack(buf_x), yy, np.asarray(buf_i))
                buf_x.clear(), buf_y.clear(), buf_i.clear()

        for i in range(n):
            try:
                item = ds[i]
                if isinstance(item, (tuple, list)) and len(item) >= 2:
                    xi, yi = _as_tensor(item[0]), item[1]
                    yi = yi.numpy() if isinstance(yi, torch.Tensor) else yi
                else:
                    xi, yi = _as_tensor(item), None
            except Exception as exc:  # the user's data raising is a finding, not a crash
                failed.append((i, f"{type(exc).__name__}: {exc}"))
                ticker(i + 1)
                continue
            if buf_x and tuple(xi.shape) != tuple(buf_x[0].shape):
                flush()
            buf_x.append(xi), buf_y.append(yi), buf_i.append(i)
            if len(buf_x) >= 512:
                flush()
            ticker(i + 1)
        flush()
    scan = acc.finish(n, source, failed)
    if source == "stored" and sample_model_input:
        scan.model_input = sample_channel_stats(ds, kind, sample_model_input, tick)
        if scan.model_input is not None:  # read through the transforms: part of what the audit read
            seen = scan.model_input.summary()
            scan.digest = hashlib.sha256(f"{scan.digest}:{seen!r}".encode()).hexdigest()
    return scan


def _same_shapes(values: list[Any]) -> bool:
    shapes = {np.shape(v) for v in values}
    return len(shapes) == 1


def sample_channel_stats(ds: Any, kind: str, k: int, tick: TickFn | None = None) -> ChannelStats | None:
    """Per-channel stats of up to ``k`` evenly spaced samples as ``ds[i]`` returns them (transforms applied)."""
    n = len(ds)
    if not n:
        return None
    stats = None
    for i in np.linspace(0, n - 1, min(k, n)).round().astype(int):
        if tick is not None:
            tick("", 0, 0)
        try:
            x = _as_tensor(ds[int(i)][0]).to(torch.float32)
        except Exception:
            continue
        c = channels_of(tuple(x.shape), kind) or 1
        if stats is None:
            stats = ChannelStats.empty(c)
        if x.numel() % c or len(stats.count) != c or not bool(torch.isfinite(x).all()):
            continue
        stats.add(x.reshape(1, c, -1))
    return stats


def scan_splits(splits: Any, tick: TickFn | None = None) -> dict[str, SplitScan]:
    """Scan every split of a ``Splits``; keys are split names in order (train, val[, test])."""
    info = splits.info
    vocab = len(info.vocab) if info.vocab else (info.num_classes if info.kind == "sequence" else None)
    out = {}
    for name, ds in splits.items():
        out[name] = scan_split(name, ds, info.kind, ignore_index=info.ignore_index, vocab_size=vocab, tick=tick)
    # Tabular columns live on different scales: standardise the embedding with pooled statistics.
    embs = [s.emb for s in out.values() if s.emb is not None and s.kind == "tabular"]
    if embs:
        allv = np.concatenate(embs)
        mu, sd = np.nanmean(allv, 0), np.nanstd(allv, 0)
        sd[~(sd > 0)] = 1.0
        for s in out.values():
            if s.emb is not None:
                s.emb = ((s.emb - mu) / sd).astype(np.float32)
    return out
