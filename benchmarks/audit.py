"""Data audit speed: stats + exact and near duplicates over generated 28×28 images with planted copies.

    python benchmarks/audit.py [--n 60000] [--threads 2] [--repeats 5]

Budget (DESIGN.md, issue 5): 60,000 images in ≤ 3 s on 2 cores; 120,000 in no more than ~2.2× that.
N and 2N are timed alternately and the best of ``--repeats`` is kept for each, so that load from
other processes on a shared machine hits both alike. Prints the wall and CPU times, their ratio, and
whether exactly the planted duplicate groups (40 exact + 30 near within train, 20 train→val) were found.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch


def make(n: int):
    from recipe_tui.core.audit.synthetic import mnist_like, plant_copies

    return plant_copies(*mnist_like(n), n_val=n // 6)


def audit_once(splits) -> tuple[float, float, dict]:
    from recipe_tui.core.audit.duplicates import find_duplicates
    from recipe_tui.core.audit.scan import scan_splits

    t0, c0 = time.perf_counter(), time.process_time()
    scans = scan_splits(splits)  # stats, hashes, embeddings of every split
    report = find_duplicates(scans, ratio=0.1)  # exact + near groups, leakage, conflicts
    return time.perf_counter() - t0, time.process_time() - c0, report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    audit_once(make(2000)[0])  # warm-up: first torch calls pay one-off costs
    sizes = (args.n, 2 * args.n)
    data = {n: make(n) for n in sizes}
    best = {n: (float("inf"), float("inf")) for n in sizes}
    exact = {}
    for _ in range(args.repeats):
        for n in sizes:
            wall, cpu, report = audit_once(data[n][0])
            best[n] = (min(best[n][0], wall), min(best[n][1], cpu))
            found = {frozenset((m["split"], m["index"]) for m in g) for g in report["groups"]}
            exact[n] = (found == data[n][1], report)
    for n in sizes:
        (wall, cpu), (ok, r) = best[n], exact[n]
        budget = " (budget 3.0 s)" if n == args.n else ""
        print(f"{n:>7} images: {wall:.2f} s{budget}, {cpu:.2f} CPU s; planted groups found exactly: {ok} "
              f"[exact {r['exact_groups']}, near {r['near_groups']}, leaked {r['leaked']}]")
    (w1, c1), (w2, c2) = best[sizes[0]], best[sizes[1]]
    within = w1 <= 3.0 and w2 / w1 <= 2.2
    print(f"ratio 2N/N: {w2 / w1:.2f} wall, {c2 / c1:.2f} CPU (budget ≤ 2.2) {'OK' if within else 'OVER BUDGET'}")
    return 0 if all(ok for ok, _ in exact.values()) else 1  # timing is reported; wrong findings fail


if __name__ == "__main__":
    sys.exit(main())
