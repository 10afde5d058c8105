"""What a scan of one split found (``SplitScan``) and running per-channel statistics (``ChannelStats``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

@dataclass
class ChannelStats:
    """Running per-channel count / sum / sum of squares / min / max over finite samples."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> "ChannelStats":
        z = np.zeros(channels)
        return cls(z.copy(), z.copy(), z.copy(), np.full(channels, np.inf), np.full(channels, -np.inf))

    def add(self, x: torch.Tensor) -> None:
        """``x``: (B, C, K) float: K values of each channel in each of B samples."""
        if len(x):
            self.add_reduced(x.shape[2], x.sum(2), torch.linalg.vector_norm(x, dim=2) ** 2, x.amin(2), x.amax(2))

    def add_reduced(self, k: int, s: torch.Tensor, sq: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Per-(sample, channel) sums, sums of squares, minima and maxima of ``k`` values each, (B, C)."""
        if not len(s):
            return
        self.count += s.shape[0] * k
        self.sum += s.double().sum(0).numpy()
        self.sumsq += sq.double().sum(0).numpy()
        self.min = np.minimum(self.min, lo.amin(0).double().numpy())
        self.max = np.maximum(self.max, hi.amax(0).double().numpy())

    def summary(self) -> dict[str, list[float]]:
        n = np.maximum(self.count, 1)
        mean = self.sum / n
        std = np.sqrt(np.maximum(self.sumsq / n - mean ** 2, 0.0))
        ok = self.count > 0
        r = lambda a: [round(float(v), 6) if k else None for v, k in zip(a, ok)]  # noqa: E731
        return {"mean": r(mean), "std": r(std), "min": r(self.min), "max": r(self.max)}


@dataclass
class SplitScan:
    """What one pass over a split found. Rows are the samples that loaded; ``index`` maps row → position."""

    name: str
    length: int  # len(ds)
    source: str  # memory (in-memory tensors) | stored (torchvision's raw arrays, before transforms) | loaded (item by item)
    kind: str  # image | sequence | tabular
    shapes: dict[str, int]  # "1x8x8" → number of samples
    dtype: str
    index: np.ndarray  # (n,) int64
    y: np.ndarray | None  # (n,) or (n, T) labels; None when the dataset has none or they vary in shape
    hashes: np.ndarray  # (n,) V16: SHA-256 (first 16 bytes) of each sample's canonical bytes
    stats: np.ndarray  # (n, S) per-sample statistics, NaN rows for non-finite samples
    stat_names: tuple[str, ...]
    emb: np.ndarray | None  # (n, d) float32 near-duplicate embedding (None for token sequences)
    feat: np.ndarray | None  # (n, f) float32 features for the quick label model
    nonfinite: list[tuple[int, str]] = field(default_factory=list)  # (position, "nan" | "inf")
    failed: list[tuple[int, str]] = field(default_factory=list)  # (position, "Error: message")
    out_of_range: list[tuple[int, str]] = field(default_factory=list)  # sequences: (position, detail) of samples
    #                                                    holding an input id outside the vocabulary, anywhere
    channels: ChannelStats | None = None
    model_input: ChannelStats | None = None  # stored data: channel stats of what the model sees (a sample, transforms applied)
    tokens: np.ndarray | None = None  # sequences: how often each token id occurs among the inputs
    lengths: np.ndarray | None = None  # sequences: tokens per sample
    digest: str = ""  # SHA-256 of everything the scan read (values, labels, failures): the audit cache's key

    @property
    def finite(self) -> np.ndarray:
        """Row mask of samples whose statistics are defined (no NaN/Inf)."""
        return np.isfinite(self.stats).all(axis=1) if self.stats.size else np.ones(len(self.index), bool)
