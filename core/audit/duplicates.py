"""Exact duplicates (equal canonical bytes), near duplicates (close in a cheap embedding), leakage, conflicts.

Near-duplicate search must stay linear in the number of samples, so it never compares all pairs:
it hashes samples into grid cells of side 2·radius along the embedding's principal axes (several
grids with random offsets) and measures exact distances only within a cell. The radius is a
fraction (``checks.near_duplicate_ratio``) of the median nearest-neighbour distance, estimated
exactly from a random sample of queries against all samples (also linear).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .progress import Ticker, TickFn
from .scan import SplitScan

NN_SAMPLE = 500  # samples whose nearest-neighbour distance sets the scale ("median neighbour distance")
GRID_DIMS = 12  # principal axes the grid is cut along
TABLES = 8  # grids with independent random offsets
BIG = 64  # cells with more samples than this are searched exhaustively


# ----------------------------------------------------------------------------- nearest neighbours


def _sqdist(a: torch.Tensor, b: torch.Tensor, asq: torch.Tensor, bsq: torch.Tensor) -> torch.Tensor:
    return (asq[:, None] + bsq[None, :] - 2.0 * (a @ b.T)).clamp_(min=0.0)


def sample_nearest(emb: np.ndarray, m: int = NN_SAMPLE, seed: int = 0, tick: TickFn | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queries, their nearest other sample, the distance) for ``m`` random rows of ``emb``: linear in N."""
    n = len(emb)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(n, size=min(m, n), replace=False))
    x = torch.from_numpy(emb)
    xq = x[torch.from_numpy(q)]
    qsq = (xq * xq).sum(1)
    best = torch.full((len(q),), float("inf"))
    arg = torch.zeros(len(q), dtype=torch.long)
    qt = torch.from_numpy(q)
    step = 8192
    ticker = Ticker(tick, "near duplicates: scale", n)
    for s in range(0, n, step):
        xb = x[s:s + step]
        d = _sqdist(xq, xb, qsq, (xb * xb).sum(1))
        own = (qt >= s) & (qt < s + len(xb))
        d[own.nonzero().flatten(), (qt[own] - s)] = float("inf")
        v, a = d.min(1)
        better = v < best
        best = torch.where(better, v, best)
        arg = torch.where(better, a + s, arg)
        ticker(min(n, s + step))
    # The expansion loses precision; recompute the winners exactly.
    dist = (x[qt] - x[arg]).norm(dim=1).numpy().astype(np.float64)
    return q, arg.numpy(), dist


def near_pairs(emb: np.ndarray, radius: float, tick: TickFn | None = None, seed: int = 0) -> np.ndarray:
    """Pairs (i < j) with ‖emb[i] − emb[j]‖ < radius, shape (P, 2); linear in N.

    The embedding is rotated onto its top principal axes (a projection never lengthens a distance)
    and cut into a grid of cells of side 2·radius, ``TABLES`` times with random offsets. Two samples
    that share a cell in any grid are candidates; their distance is then computed exactly. A pair at
    distance δ shares a cell of one grid with probability ≥ Π(1 − |δᵢ|/2r) over its projected
    coordinates δᵢ, so copies well inside the radius are always found; pairs at 0.9 × radius were all
    found in our measurements (see benchmarks/audit.py).
    """
    n, d = emb.shape if emb.ndim == 2 else (len(emb), 0)
    if n < 2 or radius <= 0 or d == 0:
        return np.zeros((0, 2), np.int64)
    x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    rng = np.random.default_rng(seed)
    sample = x[torch.from_numpy(rng.choice(n, size=min(n, 20000), replace=False))].double()
    mu = sample.mean(0)
    _, vecs = torch.linalg.eigh((sample - mu).T @ (sample - mu))
    k = min(GRID_DIMS, d)
    z = ((x.double() - mu) @ vecs[:, -k:]).numpy()
    width = 2.0 * radius
    mult = rng.integers(1, 2 ** 63, size=k, dtype=np.uint64) | np.uint64(1)
    found: list[np.ndarray] = []
    ticker = Ticker(tick, "near duplicates", TABLES)
    for t in range(TABLES):
        cell = np.floor((z + rng.uniform(0.0, width, k)) / width).astype(np.int64).view(np.uint64)
        key = (cell * mult).sum(1)  # uint64 arithmetic wraps: a hash of the cell coordinates
        order = np.argsort(key)  # any order within a cell: the fast (vectorised) sort
        ks = key[order]
        starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
        lengths = np.diff(np.r_[starts, n])
        # Small cells: compare neighbours in sorted order at offsets 1..BIG-1 (vectorised).
        small = np.repeat(lengths <= BIG, lengths)
        for j in range(1, min(BIG, int(lengths.max()))):
            same = (ks[j:] == ks[:-j]) & small[j:]
            if not same.any():
                break
            i = np.flatnonzero(same)
            found.append(np.stack([order[i], order[i + j]], 1))
        # Big cells (dense regions): all pairs within, exactly, in blocks.
        for s0, ln in zip(starts[lengths > BIG], lengths[lengths > BIG]):
            found.append(_pairs_within(x, torch.from_numpy(order[s0:s0 + ln]), radius, tick))
        ticker(t + 1)
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found)
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    exact = (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=1).numpy()
    return pairs[exact < radius]


def _pairs_within(x: torch.Tensor, idx: torch.Tensor, radius: float, tick: TickFn | None) -> np.ndarray:
    xm = x[idx]
    msq = (xm * xm).sum(1)
    out = []
    rows = max(1, 2 ** 21 // len(idx))
    for s in range(0, len(idx), rows):
        if tick is not None:
            tick("", 0, 0)
        d = _sqdist(xm[s:s + rows], xm, msq[s:s + rows], msq)
        r, c = torch.nonzero(d < (radius * 1.01) ** 2, as_tuple=True)  # slack: exact check follows
        keep = r + s < c
        out.append(torch.stack([idx[r[keep] + s], idx[c[keep]]], 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label (the smallest member) of each of ``n`` nodes joined by ``pairs``."""
    label = np.arange(n)
    if not len(pairs):
        return label
    a, b = pairs[:, 0], pairs[:, 1]
    while True:
        m = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        while True:  # pointer jumping: every node points at its root
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, label):
            return label
        label = new


# ----------------------------------------------------------------------------- the report


@dataclass
class Group:
    kind: str  # exact | near
    members: list[tuple[str, int]]  # (split, position in that split)
    labels: list[Any]
    conflicting: bool

    @property
    def splits(self) -> list[str]:
        return sorted({s for s, _ in self.members})


def _label_key(v: Any) -> Any:
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else a.tobytes()


class _Rows:
    """The rows of every split's scan under one global row number, without concatenating the big arrays."""

    def __init__(self, scans: dict[str, SplitScan]) -> None:
        self.scans, self.names = scans, list(scans)
        names = self.names
        self.split_of = np.concatenate([np.full(len(scans[s].index), k) for k, s in enumerate(names)]) if names else np.zeros(0, int)
        self.pos = np.concatenate([scans[s].index for s in names]) if names else np.zeros(0, np.int64)
        self.hashes = np.concatenate([scans[s].hashes for s in names]) if names else np.zeros(0, "V16")
        self.offsets = np.cumsum([0] + [len(scans[s].index) for s in names])

    def label(self, r: int) -> Any:
        """The label of global row ``r``."""
        k = int(self.split_of[r])
        y = self.scans[self.names[k]].y
        return None if y is None else y[r - self.offsets[k]]

    def rows(self, attr: str, ids: np.ndarray) -> np.ndarray:
        """Global rows ``ids`` of a per-split array (``emb``, ``feat``)."""
        k = np.searchsorted(self.offsets, ids, side="right") - 1
        arrays = [getattr(self.scans[s], attr) for s in self.names]
        width = next(a.shape[1] for a in arrays if a is not None)
        out = np.empty((len(ids), width), dtype=np.float32)
        for j, a in enumerate(arrays):
            sel = k == j
            if sel.any():  # an empty split has no array
                out[sel] = a[ids[sel] - self.offsets[j]]
        return out


def find_duplicates(scans: dict[str, SplitScan], ratio: float = 0.1, tick: TickFn | None = None,
                    near: bool = True) -> dict[str, Any]:
    """Every group of identical or near-identical inputs across all splits, plus summary counts.

    ``ratio``: two inputs are near duplicates when their embedding distance is below ``ratio`` times
    the median nearest-neighbour distance (measured on a sample), and so is their distance in the
    finer feature space (so that coarse pooling cannot merge images that differ in detail).
    """
    table = _Rows(scans)
    total = len(table.hashes)
    if total == 0:
        return _report([], table.names, None, None, 0)
    # Exact: equal digests. uniq_first[g] is the first row of hash group g (its representative).
    _, uniq_first, inverse = np.unique(table.hashes, return_index=True, return_inverse=True)
    rep_label = np.arange(len(uniq_first))  # component of each representative (near merging below)
    median = threshold = None
    embs = [scans[s].emb for s in table.names if len(scans[s].index)]  # an empty split has no embedding to give
    if near and embs and all(e is not None for e in embs) and len(uniq_first) > 2:
        median, threshold = _merge_near(table, uniq_first, rep_label, ratio, tick)
    return _report(_groups(table, inverse, rep_label), table.names, median, threshold, total)


def _merge_near(table: _Rows, uniq_first: np.ndarray, rep_label: np.ndarray, ratio: float,
                tick: TickFn | None) -> tuple[float | None, float | None]:
    """Put near-identical representatives into one component (in ``rep_label``); (median distance, threshold)."""
    emb = table.rows("emb", uniq_first)
    ok_idx = np.nonzero(np.isfinite(emb).all(1))[0]
    e = np.ascontiguousarray(emb[ok_idx], dtype=np.float32)
    if len(e) <= 2:
        return None, None
    q, nn, dist = sample_nearest(e, tick=tick)
    median = float(np.median(dist))
    threshold = ratio * median
    pairs = near_pairs(e, threshold, tick=tick) if threshold > 0 else np.zeros((0, 2), np.int64)
    if len(pairs) and all(table.scans[s].feat is not None for s in table.names):
        # Confirm in the finer feature space, on the same relative scale.
        glob = uniq_first[ok_idx]  # representative → global row
        feat = lambda ids: table.rows("feat", glob[ids])  # noqa: E731
        fscale = float(np.median(np.linalg.norm(feat(q) - feat(nn), axis=1)))
        fd = np.linalg.norm(feat(pairs[:, 0]) - feat(pairs[:, 1]), axis=1)
        pairs = pairs[fd < ratio * fscale] if fscale > 0 else pairs[:0]
    if len(pairs):
        rep_label[ok_idx] = ok_idx[components(len(e), pairs)]
    return median, threshold


def _groups(table: _Rows, inverse: np.ndarray, rep_label: np.ndarray) -> list[Group]:
    """Members of each component with more than one row: every row whose hash group's representative is in it."""
    n_uniq = len(rep_label)
    row_comp = rep_label[inverse]
    in_group = np.nonzero(np.bincount(row_comp, minlength=n_uniq)[row_comp] > 1)[0]
    order = in_group[np.argsort(row_comp[in_group], kind="stable")]
    bounds = np.flatnonzero(np.diff(row_comp[order])) + 1
    groups: list[Group] = []
    reps_per_comp = np.bincount(rep_label, minlength=n_uniq)
    for chunk in (np.split(order, bounds) if len(order) else []):
        comp = row_comp[chunk[0]]
        members = [(table.names[table.split_of[r]], int(table.pos[r])) for r in chunk]
        labs = [table.label(r) for r in chunk]
        keys = {_label_key(v) for v in labs if v is not None}
        kind = "exact" if reps_per_comp[comp] == 1 else "near"
        groups.append(Group(kind, members, [_jsonable(v) for v in labs], len(keys) > 1))
    return groups


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    a = np.asarray(v)
    return a.item() if a.ndim == 0 else a.tolist()


def _report(groups: list[Group], names: list[str], median: float | None, threshold: float | None, total: int
            ) -> dict[str, Any]:
    train = names[0] if names else "train"
    # Most consequential first: leakage, then conflicting labels, then the biggest groups.
    groups.sort(key=lambda g: (-(len(g.splits) > 1), -g.conflicting, g.kind != "exact", -len(g.members)))
    within = {s: {"exact": 0, "near": 0} for s in names}
    leaked = {s: {"exact": 0, "near": 0} for s in names[1:]}
    for g in groups:
        for s in g.splits:
            k = sum(1 for m in g.members if m[0] == s)
            within[s][g.kind] += k - 1 if k > 1 else 0
        if train in g.splits:
            for s in g.splits:
                if s != train:
                    leaked[s][g.kind] += sum(1 for m in g.members if m[0] == s)
    return {
        "groups": [[{"split": s, "index": i} for s, i in g.members] for g in groups],
        "group_info": [{"kind": g.kind, "splits": g.splits, "labels": g.labels, "conflicting": g.conflicting}
                       for g in groups],
        "exact_groups": sum(g.kind == "exact" for g in groups),
        "near_groups": sum(g.kind == "near" for g in groups),
        "within": within,  # per split: extra copies (group members beyond the first) in that split
        "leaked": leaked,  # per held-out split: samples whose input (or a near copy) is also in train
        "conflicting": sum(g.conflicting for g in groups),
        "median_nn_distance": None if median is None else round(median, 6),
        "near_threshold": None if threshold is None else round(threshold, 6),
        "samples": total,
    }
