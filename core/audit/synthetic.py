"""Synthetic image data with planted problems, for tests and benchmarks: every finding is known.

Each class is a fixed permutation of the same 64 grey levels (plus a little noise), so classes
differ in *pattern* but not in per-sample statistics: a flipped label cannot be seen by the outlier
statistics, and a scaled image cannot be mistaken for another class.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DataInfo, Splits, TensorPairs

Member = tuple[str, int]


@dataclass
class Planted:
    splits: Splits
    exact: set[frozenset[Member]] = field(default_factory=set)  # identical inputs within train (same label)
    near: set[frozenset[Member]] = field(default_factory=set)  # near-identical inputs within train
    leaked: set[frozenset[Member]] = field(default_factory=set)  # a train input copied into val
    conflicting: set[frozenset[Member]] = field(default_factory=set)  # identical inputs, different labels
    label_errors: set[Member] = field(default_factory=set)  # flipped labels (and the wrong copy of a conflict)
    nonfinite: dict[Member, str] = field(default_factory=dict)  # "nan" | "inf"
    outliers: set[Member] = field(default_factory=set)
    missing_from_val: list[str] = field(default_factory=list)

    @property
    def groups(self) -> set[frozenset[Member]]:
        return self.exact | self.near | self.leaked | self.conflicting


def class_patterns(classes: int = 10, side: int = 8, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    levels = np.linspace(0.1, 0.9, side * side)
    return torch.tensor(np.stack([levels[rng.permutation(side * side)] for _ in range(classes)]),
                        dtype=torch.float32).view(classes, 1, side, side)


def clean_images(n: int, classes: int = 10, noise: float = 0.03, seed: int = 0, allowed: list[int] | None = None,
                 patterns: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    patterns = class_patterns(classes) if patterns is None else patterns
    pool = torch.tensor(allowed if allowed is not None else list(range(classes)))
    y = pool[torch.randint(0, len(pool), (n,), generator=g)]
    x = patterns[y] + noise * torch.randn(n, *patterns.shape[1:], generator=g)
    return x.contiguous(), y


def planted_images(n_train: int = 600, n_val: int = 150, classes: int = 10, seed: int = 0) -> Planted:
    """Train/val 1×8×8 images with every kind of planted problem; see ``Planted`` for what is where."""
    pats = class_patterns(classes, seed=seed)
    xt, yt = clean_images(n_train, classes, seed=seed + 1, patterns=pats)
    missing = classes - 1
    xv, yv = clean_images(n_val, classes, seed=seed + 2, allowed=list(range(classes - 1)), patterns=pats)
    rng = np.random.default_rng(seed)
    free = list(rng.permutation(n_train))
    take = lambda k: [int(free.pop()) for _ in range(k)]  # noqa: E731  distinct train indices, never reused
    p = Planted(splits=None, missing_from_val=[str(missing)])  # type: ignore[arg-type]
    for src, dst in zip(take(4), take(4)):
        xt[dst], yt[dst] = xt[src], yt[src]
        p.exact.add(frozenset({("train", src), ("train", dst)}))
    g = torch.Generator().manual_seed(seed + 3)
    for src, dst in zip(take(3), take(3)):
        xt[dst], yt[dst] = xt[src] + 0.001 * torch.randn(xt[src].shape, generator=g), yt[src]
        p.near.add(frozenset({("train", src), ("train", dst)}))
    src, dst = take(1)[0], take(1)[0]
    xt[dst], yt[dst] = xt[src], (yt[src] + 1) % classes
    p.conflicting.add(frozenset({("train", src), ("train", dst)}))
    p.label_errors.add(("train", dst))
    val_free = list(rng.permutation(n_val))
    leak_src = [i for i in free if int(yt[i]) != missing][:3]
    for s in leak_src:
        free.remove(s)
        d = int(val_free.pop())
        xv[d], yv[d] = xt[s], yt[s]
        p.leaked.add(frozenset({("train", s), ("val", d)}))
    for i in take(8):
        yt[i] = (yt[i] + 1 + int(rng.integers(classes - 1))) % classes
        p.label_errors.add(("train", i))
    i = take(1)[0]
    xt[i, 0, 2, 3] = float("nan")
    p.nonfinite[("train", i)] = "nan"
    d = int(val_free.pop())
    xv[d, 0, 5, 5] = float("inf")
    p.nonfinite[("val", d)] = "inf"
    for i in take(2):
        xt[i] = xt[i] * 4.0  # mis-scaled: e.g. a sample that skipped normalisation
        p.outliers.add(("train", i))
    d = int(val_free.pop())
    xv[d] = 0.0  # blank
    p.outliers.add(("val", d))
    info = DataInfo(kind="image", input_shape=(1, 8, 8), num_classes=classes,
                    class_names=tuple(str(c) for c in range(classes)))
    p.splits = Splits(train=TensorPairs(xt, yt), val=TensorPairs(xv, yv), info=info)
    return p


def mnist_like(n: int, seed: int = 0, side: int = 28, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Benchmark data: a smooth prototype per class, shifted, with smooth and pixel noise; float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    protos = F.interpolate(torch.rand(classes, 1, 7, 7, generator=g), size=(side, side), mode="bilinear",
                           align_corners=False)
    y = torch.randint(0, classes, (n,), generator=g)
    x = protos[y]
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    for dx in range(-2, 3):  # 25 shift groups: one roll per group, not per image
        for dy in range(-2, 3):
            sel = (shifts[:, 0] == dx) & (shifts[:, 1] == dy)
            x[sel] = torch.roll(x[sel], shifts=(dx, dy), dims=(2, 3))
    smooth = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(side, side), mode="bilinear", align_corners=False)
    x = (0.6 * x + 0.4 * smooth + 0.05 * torch.randn(n, 1, side, side, generator=g)).clamp_(0, 1)
    return x.contiguous(), y


def plant_copies(x: torch.Tensor, y: torch.Tensor, n_val: int, seed: int = 1
                 ) -> tuple[Splits, set[frozenset[Member]]]:
    """Split off val and plant 40 exact and 30 near copies within train and 20 train→val copies."""
    rng = np.random.default_rng(seed)
    n = len(x)
    xt, yt, xv, yv = x[:n - n_val].clone(), y[:n - n_val].clone(), x[n - n_val:].clone(), y[n - n_val:].clone()
    idx = rng.permutation(len(xt))
    src_exact, dst_exact, src_near, dst_near, src_leak = idx[:40], idx[40:80], idx[80:110], idx[110:140], idx[140:160]
    dst_leak = rng.permutation(len(xv))[:20]
    xt[dst_exact], yt[dst_exact] = xt[src_exact], yt[src_exact]
    noise = 0.002 * torch.randn(30, *x.shape[1:], generator=torch.Generator().manual_seed(seed))
    xt[dst_near], yt[dst_near] = (xt[src_near] + noise).clamp(0, 1), yt[src_near]
    xv[dst_leak], yv[dst_leak] = xt[src_leak], yt[src_leak]
    expected = {frozenset({("train", int(a)), ("train", int(b))}) for a, b in zip(src_exact, dst_exact)}
    expected |= {frozenset({("train", int(a)), ("train", int(b))}) for a, b in zip(src_near, dst_near)}
    expected |= {frozenset({("train", int(a)), ("val", int(b))}) for a, b in zip(src_leak, dst_leak)}
    info = DataInfo(kind="image", input_shape=tuple(x.shape[1:]), num_classes=int(y.max()) + 1,
                    class_names=tuple(str(c) for c in range(int(y.max()) + 1)))
    return Splits(train=TensorPairs(xt, yt), val=TensorPairs(xv, yv), info=info), expected
