"""Class histograms per split (token histograms of the targets for language models)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .scan import SplitScan


def class_balance(scans: dict[str, SplitScan], num_classes: int | None, class_names: tuple[str, ...] = (),
                  ignore_index: int = -1) -> dict[str, Any]:
    """Counts per class and split, imbalance ratio (least / most common class), missing and invalid labels.

    Sequence targets are flattened and positions equal to ``ignore_index`` dropped, so a language
    model gets the distribution of the tokens it must predict.
    """
    labels = {name: _flat_targets(sc, ignore_index) for name, sc in scans.items()}
    k = num_classes or max((int(v.max()) + 1 for v in labels.values() if v is not None and len(v)), default=0)
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    splits: dict[str, Any] = {}
    missing: dict[str, list[str]] = {}
    invalid: dict[str, int] = {}
    for name, y in labels.items():
        if y is None:
            continue
        bad = (y < 0) | (y >= k)
        invalid[name] = int(bad.sum())
        counts = np.bincount(y[~bad], minlength=k)[:k]
        present = counts[counts > 0]
        ratio = float(present.min() / present.max()) if len(present) else 0.0
        splits[name] = {"counts": counts.tolist(), "total": int(counts.sum()), "ratio": round(ratio, 4),
                        "least": names[int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))] if len(present) else None,
                        "most": names[int(np.argmax(counts))] if len(present) else None}
        gone = [names[c] for c in np.nonzero(counts == 0)[0]]
        if gone:
            missing[name] = gone
    train = next(iter(splits.values()), None)
    return {
        "classes": names,
        "splits": splits,
        "ratio": train["ratio"] if train else None,  # the training split's: it sets what the model learns
        "missing": missing,
        "invalid": {k: v for k, v in invalid.items() if v},
        "prior": ([round(c / max(1, train["total"]), 6) for c in train["counts"]] if train else []),
    }


def _flat_targets(sc: SplitScan, ignore_index: int) -> np.ndarray | None:
    if sc.y is None or not np.issubdtype(sc.y.dtype, np.integer):
        return None
    y = sc.y.reshape(-1).astype(np.int64)
    return y[y != ignore_index] if sc.y.ndim > 1 else y
