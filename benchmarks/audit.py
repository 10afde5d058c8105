"""Data audit speed: stats + exact and near duplicates over generated 28×28 images with planted copies.

    python benchmarks/audit.py [--n 60000] [--threads 2]

Budget (DESIGN.md): 60,000 images in ≤ 3 s on 2 cores; 120,000 in no more than ~2.2× that time.
Prints the timings, their ratio, and whether exactly the planted duplicates were found.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F


def make_images(n: int, seed: int = 0, side: int = 28, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-like data: a smooth prototype per class, shifted, with smooth and pixel noise; float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    protos = F.interpolate(torch.rand(classes, 1, 7, 7, generator=g), size=(side, side), mode="bilinear",
                           align_corners=False)
    y = torch.randint(0, classes, (n,), generator=g)
    x = protos[y]
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    for dx in range(-2, 3):  # 25 shift groups: a roll per group, not per image
        for dy in range(-2, 3):
            sel = (shifts[:, 0] == dx) & (shifts[:, 1] == dy)
            x[sel] = torch.roll(x[sel], shifts=(dx, dy), dims=(2, 3))
    smooth = F.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(side, side), mode="bilinear", align_corners=False)
    x = (0.6 * x + 0.4 * smooth + 0.05 * torch.randn(n, 1, side, side, generator=g)).clamp_(0, 1)
    return x.contiguous(), y


def plant(x: torch.Tensor, y: torch.Tensor, n_val: int, seed: int = 1) -> dict:
    """Split off val and plant: 40 exact copies within train, 20 train→val copies, 30 near copies within train."""
    rng = np.random.default_rng(seed)
    n = len(x)
    xt, yt, xv, yv = x[:n - n_val].clone(), y[:n - n_val].clone(), x[n - n_val:].clone(), y[n - n_val:].clone()
    idx = rng.permutation(len(xt))
    src_exact, dst_exact = idx[:40], idx[40:80]
    src_near, dst_near = idx[80:110], idx[110:140]
    src_leak = idx[140:160]
    dst_leak = rng.permutation(len(xv))[:20]
    xt[dst_exact], yt[dst_exact] = xt[src_exact], yt[src_exact]
    noise = 0.002 * torch.randn(30, *x.shape[1:], generator=torch.Generator().manual_seed(seed))
    xt[dst_near], yt[dst_near] = (xt[src_near] + noise).clamp(0, 1), yt[src_near]
    xv[dst_leak], yv[dst_leak] = xt[src_leak], yt[src_leak]
    expected = {frozenset({("train", int(a)), ("train", int(b))}) for a, b in zip(src_exact, dst_exact)}
    expected |= {frozenset({("train", int(a)), ("train", int(b))}) for a, b in zip(src_near, dst_near)}
    expected |= {frozenset({("train", int(a)), ("val", int(b))}) for a, b in zip(src_leak, dst_leak)}
    return {"train": (xt, yt), "val": (xv, yv), "expected": expected}


def audit_seconds(n: int, repeats: int = 3) -> tuple[float, bool, dict]:
    from recipe_tui.core.audit.duplicates import find_duplicates
    from recipe_tui.core.audit.scan import scan_split

    x, y = make_images(n)
    planted = plant(x, y, n_val=n // 6)
    from recipe_tui.core.data import TensorPairs
    best, found = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        scans = {name: scan_split(name, TensorPairs(*planted[name]), "image") for name in ("train", "val")}
        report = find_duplicates(scans, ratio=0.1)
        best = min(best, time.perf_counter() - t0)
        found = report
    groups = {frozenset((m["split"], m["index"]) for m in g) for g in found["groups"]}
    return best, groups == planted["expected"], found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    audit_seconds(2000, repeats=1)  # warm-up: first torch calls pay one-off costs
    t1, ok1, r1 = audit_seconds(args.n, args.repeats)
    print(f"{args.n:>7} images: {t1:.2f} s (budget 3.0 s)  planted duplicates found exactly: {ok1}  "
          f"[exact groups {r1['exact_groups']}, near {r1['near_groups']}, leaked {r1['leaked']}]")
    t2, ok2, r2 = audit_seconds(2 * args.n, args.repeats)
    print(f"{2 * args.n:>7} images: {t2:.2f} s  planted duplicates found exactly: {ok2}  "
          f"[exact groups {r2['exact_groups']}, near {r2['near_groups']}]")
    print(f"ratio 2N/N: {t2 / t1:.2f} (budget ≤ 2.2)")


if __name__ == "__main__":
    main()
