"""Label-quality ranking on the real label-error anchor (cleanlab/label-errors, Apache-2.0).

    python benchmarks/label_anchor.py [--anchor ../shared/anchors/label-errors]

Out-of-sample predicted probabilities for the MNIST and CIFAR-10 test sets and the human-validated
label errors (Northcutt, Athalye & Mueller, NeurIPS 2021). Target (issue 5): all 15 MNIST errors
within the 100 lowest-scored examples, ≥ 48 of the 54 CIFAR-10 errors within the lowest 300.
Prints, for both label-quality scores, how many validated errors fall within the lowest N, and
how many confident learning flags.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / ".." / "shared" / "anchors" / "label-errors"
TARGETS = {"mnist": (100, 15), "cifar10": (300, 48)}


def load(anchor: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.load(anchor / f"{name}_test_set_pyx.npy")
    labels = np.load(anchor / f"{name}_test_set_labels.npy").astype(np.int64)
    errors = json.loads((anchor / f"{name}_validated_errors.json").read_text())["validated_errors"]
    return labels, probs, np.array([e["index"] for e in errors])


def main() -> int:
    from recipe_tui.core.audit.labels import SCORES, find_label_issues, rank_by_label_quality

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--anchor", type=Path, default=DEFAULT)
    args = ap.parse_args()
    if not args.anchor.is_dir():
        print(f"skipped: the label-error anchor is not at {args.anchor.resolve()} (CI keeps it in ../shared/anchors)")
        return 0
    ok = True
    for name, (within, need) in TARGETS.items():
        labels, probs, errors = load(args.anchor, name)
        print(f"{name}: {len(labels):,} test examples, {len(errors)} validated label errors")
        for score in SCORES:
            rank = np.empty(len(labels), dtype=np.int64)
            rank[rank_by_label_quality(labels, probs, score)] = np.arange(len(labels))
            r = np.sort(rank[errors])
            hits = int((r < within).sum())
            shipped = score == "normalized_margin"
            ok &= hits >= need or not shipped
            print(f"  {score:<18} within lowest {within}: {hits}/{len(errors)} (target ≥ {need})"
                  f"{'  ← shipped' if shipped else ''};  within 100: {int((r < 100).sum())}, 300: {int((r < 300).sum())};"
                  f" worst rank {int(r.max()) + 1}")
        for method in ("confident_joint", "prune_by_noise_rate"):
            mask = find_label_issues(labels, probs, method)
            print(f"  {method:<18} flags {int(mask.sum())}, of them validated errors: {int(mask[errors].sum())}/{len(errors)}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
