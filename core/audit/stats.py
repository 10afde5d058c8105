"""Per-split statistics from the scans: counts, shapes, channel statistics, sequence lengths, bad samples."""
from __future__ import annotations

from typing import Any

import numpy as np

from .scan import SplitScan

SHIFT_LIMIT = 0.5  # a held-out split whose channel mean differs from train's by more train stds: shifted
STD_RATIO_LIMIT = 1.5  # … or whose channel std is more than this many times larger or smaller than train's
MIN_VALUES = 200  # a std of fewer values per channel is too noisy to compare


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
        bad += [{"split": name, "index": i, "problem": "token-out-of-range", "detail": d} for i, d in sc.out_of_range]
    shapes = {name: sorted(sc.shapes) for name, sc in scans.items() if sc.shapes}
    inconsistent = len({tuple(v) for v in shapes.values()}) > 1 or any(len(v) > 1 for v in shapes.values())
    dtypes = {sc.dtype for sc in scans.values() if sc.dtype}
    shift, ratio = _against_train(scans, names)
    return {"splits": splits, "bad": bad, "inconsistent_shapes": inconsistent, "dtypes_differ": len(dtypes) > 1,
            "shift": shift, "std_ratio": ratio}


def _against_train(scans: dict[str, SplitScan], names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Per held-out split: the largest |mean − train mean| / train std over channels (shift), and the channel std
    over train's std that is farthest from 1 (ratio; channels with too few values to tell are left out). A split
    standardised with other statistics than train can keep its mean but not its spread."""
    if not names or scans[names[0]].channels is None:
        return {}, {}
    ref_stats = scans[names[0]].channels
    ref = ref_stats.summary()
    shift, ratio = {}, {}
    for name in names[1:]:
        ch = scans[name].channels
        if ch is None or len(ch.count) != len(ref["mean"]):
            continue
        cur = ch.summary()
        gaps = [abs(m - r) / s for m, r, s in zip(cur["mean"], ref["mean"], ref["std"])
                if m is not None and r is not None and s]
        if gaps:
            shift[name] = round(max(gaps), 4)
        enough = (ch.count >= MIN_VALUES) & (ref_stats.count >= MIN_VALUES)
        ratios = [c / r for c, r, ok in zip(cur["std"], ref["std"], enough) if ok and c is not None and r]
        if ratios:
            ratio[name] = round(max(ratios, key=lambda v: abs(np.log(v)) if v > 0 else np.inf), 4)
    return shift, ratio


def std_ratio_off(ratio: float) -> bool:
    return not (1 / STD_RATIO_LIMIT <= ratio <= STD_RATIO_LIMIT)


def describe_shape(shapes: dict[str, int]) -> str:
    return ", ".join(k.replace("x", "×") for k in sorted(shapes, key=lambda s: -shapes[s])) or "?"
