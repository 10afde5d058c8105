"""Per-split statistics from the scans: counts, shapes, channel statistics, sequence lengths, bad samples."""
from __future__ import annotations

from typing import Any

import numpy as np

from .scan import SplitScan

SHIFT_LIMIT = 0.5  # a held-out split whose channel mean differs from train's by more train stds: shifted


def data_stats(scans: dict[str, SplitScan], vocab: str | None = None, vocab_size: int | None = None) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    bad: list[dict[str, Any]] = []
    names = list(scans)
    for name, sc in scans.items():
        d: dict[str, Any] = {"count": sc.length, "loaded": int(len(sc.index)), "source": sc.source,
                             "kind": sc.kind, "shapes": dict(sc.shapes), "dtype": sc.dtype}
        if sc.channels is not None:
            d["channels"] = sc.channels.summary()
        if sc.model_input is not None:
            d["model_input"] = sc.model_input.summary()  # stored data: what the model sees, from a sample
        if sc.lengths is not None and len(sc.lengths):
            ln = sc.lengths
            d["lengths"] = {"min": int(ln.min()), "median": float(np.median(ln)), "mean": round(float(ln.mean()), 3),
                            "p95": float(np.percentile(ln, 95)), "max": int(ln.max()),
                            "histogram": np.bincount(ln).tolist()}
        if sc.tokens is not None:
            v = vocab_size or len(sc.tokens)
            seen = int((sc.tokens[:v] > 0).sum())
            d["vocab_coverage"] = round(seen / max(1, v), 4)
            unseen = np.nonzero(np.pad(sc.tokens, (0, max(0, v - len(sc.tokens))))[:v] == 0)[0]
            d["unseen_tokens"] = [vocab[i] if vocab and i < len(vocab) else int(i) for i in unseen[:50]]
        splits[name] = d
        bad += [{"split": name, "index": i, "problem": "load-error", "detail": msg} for i, msg in sc.failed]
        bad += [{"split": name, "index": i, "problem": kind, "detail": ""} for i, kind in sc.nonfinite]
        bad += [{"split": name, "index": i, "problem": "token-out-of-range", "detail": ""} for i in sc.out_of_range]
    shapes = {name: sorted(sc.shapes) for name, sc in scans.items() if sc.shapes}
    inconsistent = len({tuple(v) for v in shapes.values()}) > 1 or any(len(v) > 1 for v in shapes.values())
    dtypes = {sc.dtype for sc in scans.values() if sc.dtype}
    return {"splits": splits, "bad": bad, "inconsistent_shapes": inconsistent, "dtypes_differ": len(dtypes) > 1,
            "shift": _shift(scans, names)}


def _shift(scans: dict[str, SplitScan], names: list[str]) -> dict[str, float]:
    """Largest |mean_split − mean_train| / std_train over channels, per held-out split."""
    if not names or scans[names[0]].channels is None:
        return {}
    ref = scans[names[0]].channels.summary()
    out = {}
    for name in names[1:]:
        ch = scans[name].channels
        if ch is None or len(ch.count) != len(ref["mean"]):
            continue
        cur = ch.summary()
        gaps = [abs(m - r) / s for m, r, s in zip(cur["mean"], ref["mean"], ref["std"])
                if m is not None and r is not None and s]
        if gaps:
            out[name] = round(max(gaps), 4)
    return out


def describe_shape(shapes: dict[str, int]) -> str:
    return ", ".join(k.replace("x", "×") for k in sorted(shapes, key=lambda s: -shapes[s])) or "?"
