"""Exact duplicates (equal canonical bytes), near duplicates (close in a cheap embedding), leakage, conflicts.

Near-duplicate search must stay linear in the number of samples: the embedding space is cut into
Voronoi cells around ~N/256 sampled points, and each sample is compared only with the cells it
can have a neighbour in. The cell rule is exact, not approximate: if ‖x − y‖ ≤ r and y lives in
cell c (its nearest centre), then ‖x − c‖ ≤ ‖y − c‖ + r ≤ ‖y − h‖ + r ≤ ‖x − h‖ + 2r for x's own
centre h — so probing every cell with ‖x − c‖ ≤ ‖x − h‖ + 2r finds every pair within r.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .progress import Ticker, TickFn
from .scan import SplitScan

CELL = 256  # samples per cell on average
NN_SAMPLE = 1000  # samples whose nearest-neighbour distance sets the scale ("median neighbour distance")
TOPK = 8  # at most this many near neighbours kept per sample and cell: groups of thousands stay cheap


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


def range_pairs(emb: np.ndarray, radius: float, tick: TickFn | None = None, seed: int = 0) -> np.ndarray:
    """All pairs (i < j) with ‖emb[i] − emb[j]‖ < radius (at most TOPK per row and cell), shape (P, 2)."""
    n = len(emb)
    if n < 2 or radius <= 0:
        return np.zeros((0, 2), np.int64)
    x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    sq = (x * x).sum(1)
    r2 = radius * radius
    cells = max(1, min(4096, n // CELL))
    rng = np.random.default_rng(seed)
    centres = x[torch.from_numpy(np.sort(rng.choice(n, size=cells, replace=False)))]
    csq = (centres * centres).sum(1)
    slack = 1e-4 * float(sq.max().sqrt()) + 1e-6  # float32 error of the distance expansion
    home = torch.empty(n, dtype=torch.long)
    probe_q, probe_c = [], []
    step = max(256, 2 ** 22 // cells)
    ticker = Ticker(tick, "near duplicates: cells", n)
    for s in range(0, n, step):
        d = _sqdist(x[s:s + step], centres, sq[s:s + step], csq).sqrt_()
        dh, h = d.min(1)
        home[s:s + step] = h
        qi, ci = torch.nonzero(d <= (dh + 2 * radius + slack)[:, None], as_tuple=True)
        probe_q.append(qi + s)
        probe_c.append(ci)
        ticker(min(n, s + step))
    pq, pc = torch.cat(probe_q), torch.cat(probe_c)
    order = torch.argsort(pc, stable=True)
    pq, pc = pq[order], pc[order]
    p_start = torch.searchsorted(pc, torch.arange(cells + 1))
    members = torch.argsort(home, stable=True)
    m_start = torch.searchsorted(home[members], torch.arange(cells + 1))
    found = []
    ticker = Ticker(tick, "near duplicates: search", cells)
    for c in range(cells):
        mem = members[m_start[c]:m_start[c + 1]]
        qs = pq[p_start[c]:p_start[c + 1]]
        ticker(c + 1)
        if len(mem) == 0 or len(qs) == 0:
            continue
        xm, msq = x[mem], sq[mem]
        rows = max(1, 2 ** 21 // len(mem))
        for s in range(0, len(qs), rows):
            qq = qs[s:s + rows]
            d = _sqdist(x[qq], xm, sq[qq], msq)
            hit = (d < r2) & (qq[:, None] != mem[None, :])
            if not bool(hit.any()):
                continue
            if int(hit.sum()) > TOPK * len(qq):  # a huge cluster: a few nearest per row keep it connected
                k = min(TOPK, len(mem))
                v, j = d.masked_fill(~hit, float("inf")).topk(k, dim=1, largest=False)
                keep = torch.isfinite(v)
                r = torch.arange(len(qq))[:, None].expand(-1, k)[keep]
                j = j[keep]
            else:
                r, j = torch.nonzero(hit, as_tuple=True)
            found.append(torch.stack([qq[r], mem[j]], 1))
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = torch.cat(found)
    pairs = torch.stack([pairs.min(1).values, pairs.max(1).values], 1)
    pairs = torch.unique(pairs, dim=0)
    # Exact distances for the survivors (the expansion is only used to find candidates).
    exact = (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=1)
    return pairs[exact < radius].numpy()


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


def find_duplicates(scans: dict[str, SplitScan], ratio: float = 0.1, tick: TickFn | None = None,
                    near: bool = True) -> dict[str, Any]:
    """Every group of identical or near-identical inputs across all splits, plus summary counts.

    ``ratio``: two inputs are near duplicates when their embedding distance is below ``ratio`` times
    the median nearest-neighbour distance (measured on a sample), and so is their distance in the
    finer feature space (so that coarse pooling cannot merge images that differ in detail).
    """
    names = list(scans)
    split_of = np.concatenate([np.full(len(scans[s].index), k) for k, s in enumerate(names)]) if names else np.zeros(0, int)
    pos = np.concatenate([scans[s].index for s in names]) if names else np.zeros(0, np.int64)
    hashes = np.concatenate([scans[s].hashes for s in names]) if names else np.zeros(0, "V16")
    ys = [scans[s].y for s in names]
    labels: list[Any] = []
    for s, y in zip(names, ys):
        labels += list(y) if y is not None else [None] * len(scans[s].index)
    total = len(hashes)
    if total == 0:
        return _report([], names, None, None, 0)

    # Exact: equal digests. uniq_first[g] is the first row of hash group g (its representative).
    _, uniq_first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
    n_uniq = len(uniq_first)
    rep_label = np.arange(n_uniq)  # component of each representative (near merging below)
    median = threshold = None
    embs = [scans[s].emb for s in names]
    if near and all(e is not None for e in embs) and n_uniq > 2:
        emb = np.concatenate(embs)[uniq_first]
        ok = np.isfinite(emb).all(1)
        ok_idx = np.nonzero(ok)[0]
        e = np.ascontiguousarray(emb[ok_idx], dtype=np.float32)
        if len(e) > 2:
            q, nn, dist = sample_nearest(e, tick=tick)
            median = float(np.median(dist))
            threshold = ratio * median
            pairs = range_pairs(e, threshold, tick=tick) if threshold > 0 else np.zeros((0, 2), np.int64)
            feats = [scans[s].feat for s in names]
            if len(pairs) and all(f is not None for f in feats):
                # Confirm in the finer feature space, on the same relative scale.
                f = np.concatenate(feats)[uniq_first][ok_idx]
                fscale = float(np.median(np.linalg.norm(f[q] - f[nn], axis=1)))
                fd = np.linalg.norm(f[pairs[:, 0]] - f[pairs[:, 1]], axis=1)
                pairs = pairs[fd < ratio * fscale] if fscale > 0 else pairs[:0]
            if len(pairs):
                comp = components(len(e), pairs)
                rep_label[ok_idx] = ok_idx[comp]

    # Members of each component: every row whose hash group's representative is in it.
    row_comp = rep_label[inverse]
    in_group = np.nonzero(np.bincount(row_comp, minlength=n_uniq)[row_comp] > 1)[0]
    order = in_group[np.argsort(row_comp[in_group], kind="stable")]
    bounds = np.flatnonzero(np.diff(row_comp[order])) + 1
    groups: list[Group] = []
    reps_per_comp = np.bincount(rep_label, minlength=n_uniq)
    for chunk in (np.split(order, bounds) if len(order) else []):
        comp = row_comp[chunk[0]]
        members = [(names[split_of[r]], int(pos[r])) for r in chunk]
        labs = [labels[r] for r in chunk]
        keys = {_label_key(v) for v in labs if v is not None}
        kind = "exact" if reps_per_comp[comp] == 1 else "near"
        groups.append(Group(kind, members, [_jsonable(v) for v in labs], len(keys) > 1))
    return _report(groups, names, median, threshold, total)


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
