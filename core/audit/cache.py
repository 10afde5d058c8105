"""Audit results cached on disk by a fingerprint of the data, so reopening a project is instant.

The fingerprint reads little: per split the dataset type and length, every label (cheap), the
shape and bytes of a strided sample of inputs, for in-memory tensors a checksum of all of them, and
for file-backed datasets (ImageFolder) the size and modification time of every file. A change that
none of these see (a user dataset that edits samples in place behind an unchanged length and labels,
away from the sampled indices) is missed: run the check with a fresh runs dir then.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .progress import TickFn
from .hashing import canonical_rows
from .scan import in_memory_arrays

AUDIT_VERSION = 1  # the cache key also holds a digest of the audit source, so edits invalidate it too
SAMPLE = 64  # inputs read per split through __getitem__ when the data is not in memory


def _update_array(h: "hashlib._Hash", a: Any) -> None:
    t = torch.as_tensor(a)
    h.update(f"{tuple(t.shape)}{t.dtype}".encode())
    h.update(canonical_rows(t.reshape(1, -1) if t.dim() <= 1 else t.reshape(len(t), -1)).tobytes())


def _checksum(x: torch.Tensor) -> str:
    """Sums of all values, weighted by row and by column: catches edits and swaps the sample misses."""
    total = by_row = 0.0
    by_col = torch.zeros(x[0].numel() if len(x) else 0, dtype=torch.float64)
    for i in range(0, len(x), 4096):
        block = x[i:i + 4096].reshape(min(4096, len(x) - i), -1).to(torch.float64)  # a view may be strided
        rows = block.sum(1)
        total += float(rows.sum())
        by_row += float((rows * torch.arange(i + 1, i + 1 + len(block), dtype=torch.float64)).sum())
        by_col += block.sum(0)
    return f"{total!r}:{by_row!r}:{float((by_col * torch.arange(1, len(by_col) + 1)).sum())!r}"


def fingerprint_dataset(ds: Any, tick: TickFn | None = None) -> str:
    h = hashlib.sha256()
    n = len(ds)
    h.update(f"{type(ds).__module__}.{type(ds).__qualname__}:{n}".encode())
    arrays = in_memory_arrays(ds)
    if arrays is not None:
        x, y, source = arrays
        h.update(source.encode())
        if source == "stored":  # what the model sees (sampled stats) depends on the transforms
            h.update(repr(getattr(ds, "transform", None)).encode())
        rows = np.unique(np.linspace(0, max(0, n - 1), min(n, 1024)).round().astype(np.int64))
        if n:
            _update_array(h, x[torch.from_numpy(rows)])
            h.update(_checksum(x).encode())
        if y is not None:
            _update_array(h, y)
        return h.hexdigest()
    from ..data import targets_of
    t = targets_of(ds)
    if t is not None:
        _update_array(h, t)
    for path in _files_of(ds):  # file-backed data: a fixed or replaced file changes the key (one stat each)
        try:
            st = os.stat(path)
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"{path}:missing".encode())
    for i in np.unique(np.linspace(0, max(0, n - 1), min(n, SAMPLE)).round().astype(np.int64)) if n else []:
        if tick is not None:
            tick("", 0, 0)
        try:
            item = ds[int(i)]
        except Exception as exc:  # a failing item is part of what the data is
            h.update(f"error:{type(exc).__name__}".encode())
            continue
        parts = item if isinstance(item, (tuple, list)) else (item,)
        for p in parts[:2]:
            try:
                _update_array(h, np.asarray(p))
            except (TypeError, ValueError, RuntimeError):
                h.update(repr(p).encode())
    return h.hexdigest()


def _files_of(ds: Any) -> list[str]:
    """The files behind an ImageFolder-style dataset (``.samples`` of (path, label)), through Subsets too."""
    samples = getattr(ds, "samples", None) or getattr(ds, "imgs", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], (tuple, list)):
        return [str(s[0]) for s in samples]
    inner, indices = getattr(ds, "dataset", None), getattr(ds, "indices", None)
    if inner is not None and indices is not None:
        files = _files_of(inner)
        return [files[i] for i in indices] if files else []
    return []


def fingerprint_splits(splits: Any, tick: TickFn | None = None) -> str:
    h = hashlib.sha256(f"audit-v{AUDIT_VERSION}".encode())
    h.update(repr(splits.info).encode())
    for name, ds in splits.items():
        h.update(f"{name}:{fingerprint_dataset(ds, tick)}".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the audit's own source: upgrading recipe-tui never serves results of older code."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(str(AUDIT_VERSION).encode())
    for path in sorted(here.glob("*.py")) + sorted((here.parent / "checks").glob("data_*.py")):
        try:
            h.update(path.name.encode() + path.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:16]


def cache_key(fingerprint: str, check_id: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"fp": fingerprint, "check": check_id, "params": params, "code": code_version()},
                      sort_keys=True, default=str)
    return f"{check_id}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


class AuditCache:
    """JSON files under ``root`` (``runs/.cache/audit``); unreadable or unwritable caches are ignored."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Not mkstemp: its files are 0600 whatever the umask, and the runs dir follows the user's umask.
            tmp = self.root / f".tmp-{os.getpid()}-{threading.get_ident()}-{key}.json"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(value, f, default=_json_default)
            os.replace(tmp, self.root / f"{key}.json")  # readers never see half a file
        except OSError:
            pass


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
