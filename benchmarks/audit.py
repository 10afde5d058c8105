"""Data audit speed: stats + exact and near duplicates over generated 28×28 images with planted copies.

    python benchmarks/audit.py [--n 60000] [--threads 2] [--repeats 3]

Budget (DESIGN.md, issue 5): 60,000 images in ≤ 3 s on 2 cores; 120,000 in no more than ~2.2× that.
Prints the best-of-N wall time for N and 2N images, their ratio, and whether exactly the planted
duplicate groups (40 exact + 30 near within train, 20 train→val) were found.
"""
from __future__ import annotations

import argparse
import time

import torch


def audit_seconds(n: int, repeats: int = 3) -> tuple[float, bool, dict]:
    from recipe_tui.core.audit.duplicates import find_duplicates
    from recipe_tui.core.audit.scan import scan_splits
    from recipe_tui.core.audit.synthetic import mnist_like, plant_copies

    splits, expected = plant_copies(*mnist_like(n), n_val=n // 6)
    best, report = float("inf"), {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        scans = scan_splits(splits)  # stats, hashes, embeddings of every split
        report = find_duplicates(scans, ratio=0.1)  # exact + near groups, leakage, conflicts
        best = min(best, time.perf_counter() - t0)
    found = {frozenset((m["split"], m["index"]) for m in g) for g in report["groups"]}
    return best, found == expected, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    audit_seconds(2000, repeats=1)  # warm-up: first torch calls pay one-off costs
    t1, ok1, r1 = audit_seconds(args.n, args.repeats)
    print(f"{args.n:>7} images: {t1:.2f} s (budget 3.0 s)  planted groups found exactly: {ok1}  "
          f"[exact {r1['exact_groups']}, near {r1['near_groups']}, leaked {r1['leaked']}]")
    t2, ok2, r2 = audit_seconds(2 * args.n, args.repeats)
    print(f"{2 * args.n:>7} images: {t2:.2f} s  planted groups found exactly: {ok2}  "
          f"[exact {r2['exact_groups']}, near {r2['near_groups']}]")
    print(f"ratio 2N/N: {t2 / t1:.2f} (budget ≤ 2.2)")


if __name__ == "__main__":
    main()
