"""Outliers: samples whose simple statistics sit far from their class or from the training data.

Each per-sample statistic (mean, std, min, max, per-channel means; for sequences length and
distinct tokens) gets a robust z-score against the *training* split — overall and within the
sample's class — so a corrupted, blank, inverted or mis-scaled sample stands out, in any split.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .scan import SplitScan

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution × this = its standard deviation
IQR_TO_SIGMA = 1 / 1.349
P1_P99_TO_SIGMA = 4.653  # width of the 1–99 percentile range of a normal distribution, in sigmas
GRID_VALUES = 64  # a statistic with at most this many distinct values is treated as discrete
MIN_CLASS = 20  # classes with fewer training samples are not used as a reference


def robust_center_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the median and a robust sigma.

    The sigma is the largest of three normal-consistent estimates: from the MAD, the IQR and the
    1–99 percentile range. The wider ranges matter for discrete or saturated statistics (the max of
    an 8-bit image is 1.0 for most samples): there the MAD is 0, and a value that many samples share
    must not count as extreme.
    """
    med = np.nanmedian(values, axis=0)
    mad = np.nanmedian(np.abs(values - med), axis=0) * MAD_TO_SIGMA
    p1, q25, q75, p99 = np.nanpercentile(values, [1, 25, 75, 99], axis=0)
    scale = np.maximum.reduce([mad, (q75 - q25) * IQR_TO_SIGMA, (p99 - p1) / P1_P99_TO_SIGMA])
    # A statistic on a coarse grid (8-bit pixels, lengths): a few grid steps are never extreme.
    step = np.array([_grid_step(values[:, j]) for j in range(values.shape[1])]) if values.ndim == 2 else _grid_step(values)
    # Still 0: at least 98 % share one value; anything else is rare, and measured on the data's own scale.
    spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    floor = np.maximum(1e-3 * np.maximum(np.abs(med), spread), 1e-12)
    return med, np.maximum.reduce([scale, step, floor])


def _grid_step(column: np.ndarray) -> float:
    """The smallest gap between distinct values when there are few of them (a discrete statistic), else 0."""
    u = np.unique(column[np.isfinite(column)])
    if len(u) < 2 or len(u) > GRID_VALUES:
        return 0.0
    return float(np.diff(u).min())


def robust_z(values: np.ndarray, reference: np.ndarray | None = None, floor: np.ndarray | float = 0.0) -> np.ndarray:
    """|x − median| / robust sigma per column; ``reference`` (default: ``values``) sets median and sigma,
    ``floor`` is a least sigma (e.g. the grid step of the whole data, for a class whose values all coincide)."""
    ref = values if reference is None else reference
    if not len(ref):
        return np.zeros_like(values)
    med, scale = robust_center_scale(ref)
    return np.abs(values - med) / np.maximum(scale, floor)


def find_outliers(scans: dict[str, SplitScan], z_limit: float = 6.0, per_class: bool = True,
                  limit: int = 100) -> dict[str, Any]:
    """Samples with a robust z-score above ``z_limit`` on some statistic, most extreme first."""
    names = list(scans)
    if not names:
        return {"outliers": [], "count": {}, "z_limit": z_limit}
    train = scans[names[0]]
    ref_ok = train.finite
    ref = train.stats[ref_ok]
    if len(ref) < MIN_CLASS:  # a robust spread of a handful of samples says nothing about what is unusual
        return {"outliers": [], "count": {n: 0 for n in names}, "z_limit": z_limit,
                "note": f"only {len(ref)} usable training samples: too few to call anything an outlier"}
    ref_y = train.y[ref_ok] if _class_labels(train) else None
    stat_names = train.stat_names
    found: list[dict[str, Any]] = []
    count: dict[str, int] = {}
    for name in names:
        sc = scans[name]
        ok = sc.finite
        rows = np.nonzero(ok)[0]
        if not len(rows) or sc.stats.shape[1] != ref.shape[1]:
            count[name] = 0
            continue
        vals = sc.stats[rows]
        z = robust_z(vals, ref)
        steps = np.array([_grid_step(ref[:, j]) for j in range(ref.shape[1])])
        where = np.full(z.shape, "all", dtype=object)
        if per_class and ref_y is not None and _class_labels(sc):
            y = sc.y[rows]
            for c in np.unique(ref_y):
                ref_c = ref[ref_y == c]
                sel = y == c
                if len(ref_c) < MIN_CLASS or not sel.any():
                    continue
                zc = robust_z(vals[sel], ref_c, steps)
                better = zc > z[sel]
                zs, ws = z[sel], where[sel]
                zs[better], ws[better] = zc[better], "class"
                z[sel], where[sel] = zs, ws
        score = z.max(1)
        col = z.argmax(1)
        hit = np.nonzero(score > z_limit)[0]
        count[name] = int(len(hit))
        for r in hit:
            i = rows[r]
            found.append({
                "split": name, "index": int(sc.index[i]), "score": round(float(score[r]), 3),
                "stat": stat_names[col[r]], "value": round(float(vals[r, col[r]]), 6),
                "reference": where[r, col[r]],
                "label": None if sc.y is None or sc.y.ndim != 1 else _py(sc.y[i]),
            })
    found.sort(key=lambda o: -o["score"])
    return {"outliers": found[:limit], "count": count, "z_limit": z_limit, "stats": list(stat_names)}


def _class_labels(sc: SplitScan) -> bool:
    return sc.y is not None and sc.y.ndim == 1 and np.issubdtype(sc.y.dtype, np.integer)


def _py(v: Any) -> Any:
    return np.asarray(v).item()
