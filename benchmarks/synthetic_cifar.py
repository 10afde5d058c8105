"""CIFAR-shaped synthetic data for GPU checks without a download: 3×32×32 float images in 10 classes.

Each class is a fixed random low-frequency pattern; a sample is its class pattern plus noise, so a ResNet can
learn it (the loss goes down) while nothing is read from disk or the network. Deterministic in ``seed``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from recipe_tui.core.data import TensorPairs


def images(n: int, classes: int, seed: int, patterns: torch.Tensor, noise: float) -> TensorPairs:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    x = patterns[y] + noise * torch.randn(n, 3, 32, 32, generator=g)
    return TensorPairs(x, y)


def make(n_train: int = 5000, n_val: int = 1000, classes: int = 10, noise: float = 1.0, seed: int = 0) -> dict:
    """``{"train", "val"}`` in the recipes-file factory format (``data = { factory = "synthetic_cifar:make" }``)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(classes, 3, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)  # smooth, image-like
    return {"train": images(n_train, classes, seed + 1, patterns, noise),
            "val": images(n_val, classes, seed + 2, patterns, noise)}


if __name__ == "__main__":  # `make bench` runs every benchmarks/*.py: show what the factory makes
    splits = make(n_train=256, n_val=64)
    x, y = splits["train"].x, splits["train"].y
    print(f"synthetic_cifar: train {tuple(x.shape)} {x.dtype}, mean {x.mean():.3f} std {x.std():.3f}, "
          f"{int(y.max()) + 1} classes; val {len(splits['val'])}")
