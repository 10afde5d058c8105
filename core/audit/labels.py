"""Label issues by confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 70, 2021), written from the paper.

Given out-of-sample predicted probabilities p̂(y = j | x) and the given labels ỹ:

* per-class thresholds t_j = mean of p̂(y = j | x) over the examples labelled j (the class's average
  self-confidence);
* the confident joint C[i][j] counts the examples labelled i whose confident label is j — the class
  with the largest p̂_j(x) among those with p̂_j(x) ≥ t_j (none if no class reaches its threshold);
* the off-diagonal examples (labelled i, confidently j ≠ i) are the label-issue candidates;
  "prune by noise rate" instead keeps, per off-diagonal cell, the n·Q[i][j] examples with the largest
  margin p̂_j − p̂_i, Q being the confident joint calibrated to the label counts;
* candidates are ranked by a label-quality score, lowest first: self-confidence p̂_ỹ(x) or the
  normalized margin (p̂_ỹ − max_{k≠ỹ} p̂_k + 1) / 2.

The out-of-sample probabilities come from k-fold cross-fitting of a quick model (a small MLP on
pooled pixels / projected features) on the training split.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .progress import Ticker, TickFn

SCORES = ("normalized_margin", "self_confidence")


# ----------------------------------------------------------------------------- scores and ranking


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(labels)), labels]


def normalized_margin(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    given = self_confidence(labels, probs)
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -np.inf
    return (given - other.max(1) + 1.0) / 2.0


def label_quality_scores(labels: np.ndarray, probs: np.ndarray, method: str = "normalized_margin") -> np.ndarray:
    """A score in [0, 1] per example; the lower, the more likely the given label is wrong."""
    labels, probs = _check(labels, probs)
    if method == "normalized_margin":
        return normalized_margin(labels, probs)
    if method == "self_confidence":
        return self_confidence(labels, probs)
    raise ValueError(f"unknown score {method!r} (one of {', '.join(SCORES)})")


def rank_by_label_quality(labels: np.ndarray, probs: np.ndarray, method: str = "normalized_margin") -> np.ndarray:
    """Indices of all examples, most suspicious first (ties keep index order)."""
    return np.argsort(label_quality_scores(labels, probs, method), kind="stable")


# ----------------------------------------------------------------------------- confident learning


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """t_j: the mean predicted probability of class j over the examples labelled j (NaN if none)."""
    labels, probs = _check(labels, probs)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def confident_labels(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Each example's confident label: argmax of p̂_j over the classes with p̂_j ≥ t_j; −1 if none."""
    labels, probs = _check(labels, probs)
    t = per_class_thresholds(labels, probs) if thresholds is None else thresholds
    above = probs >= np.where(np.isnan(t), np.inf, t)[None, :]
    masked = np.where(above, probs, -np.inf)
    best = masked.argmax(1)
    return np.where(above.any(1), best, -1)


def confident_joint(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """C[i][j]: examples labelled i whose confident label is j."""
    labels, probs = _check(labels, probs)
    k = probs.shape[1]
    conf = confident_labels(labels, probs)
    keep = conf >= 0
    cj = np.zeros((k, k), dtype=np.int64)
    np.add.at(cj, (labels[keep], conf[keep]), 1)
    return cj


def calibrated_joint(cj: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Q: each row of the confident joint rescaled to the given label counts, then normalised to sum 1."""
    k = cj.shape[0]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    rows = cj.sum(1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(rows > 0, cj / rows, 0.0) * counts[:, None]
    total = q.sum()
    return q / total if total > 0 else q


def find_label_issues(labels: np.ndarray, probs: np.ndarray, method: str = "confident_joint") -> np.ndarray:
    """Boolean mask of likely label errors. ``method``: confident_joint | prune_by_noise_rate."""
    labels, probs = _check(labels, probs)
    conf = confident_labels(labels, probs)
    if method == "confident_joint":
        return (conf >= 0) & (conf != labels)
    if method != "prune_by_noise_rate":
        raise ValueError(f"unknown method {method!r}")
    n, k = probs.shape
    q = calibrated_joint(confident_joint(labels, probs), labels)
    mask = np.zeros(n, dtype=bool)
    for i in range(k):
        idx = np.nonzero(labels == i)[0]
        for j in range(k):
            if i == j:
                continue
            m = int(round(n * q[i, j]))
            if m <= 0 or not len(idx):
                continue
            margin = probs[idx, j] - probs[idx, i]
            mask[idx[np.argsort(-margin, kind="stable")[:m]]] = True
    return mask


def estimated_noise_rate(labels: np.ndarray, probs: np.ndarray) -> float:
    """Fraction of examples whose label confident learning estimates to be wrong (off-diagonal mass of Q)."""
    labels, probs = _check(labels, probs)
    q = calibrated_joint(confident_joint(labels, probs), labels)
    return float(q.sum() - np.trace(q))


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (n, classes) for n = {len(labels)} labels; got {probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError("labels must lie in [0, classes)")
    return labels, probs


# ----------------------------------------------------------------------------- out-of-sample probabilities


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each example; every class is spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[rng.permutation(len(idx))]
        fold[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)  # so small classes do not all start in fold 0
    return fold


def _quick_model(d: int, k: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(d, k)
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, k))


def fit_quick_model(x: np.ndarray, y: np.ndarray, k: int, seed: int = 0, hidden: int = 128, steps: int | None = None,
                    batch_size: int = 256, tick: TickFn | None = None) -> nn.Module:
    """A small MLP on standardised features, Adam, a fixed step budget; seeded, leaves global RNG alone."""
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))
    n = len(xt)
    bs = min(batch_size, n)
    if steps is None:  # ~30 epochs for small data, capped for large
        steps = int(np.clip(30 * n / bs, 200, 1500))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _quick_model(xt.shape[1], k, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
        g = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss()
        perm, pos = torch.randperm(n, generator=g), 0
        for _ in range(steps):
            if tick is not None:
                tick("", 0, 0)
            if pos + bs > n:
                perm, pos = torch.randperm(n, generator=g), 0
            idx = perm[pos:pos + bs]
            pos += bs
            loss = loss_fn(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def predict_proba(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return torch.cat([torch.softmax(model(xt[i:i + 8192]), 1) for i in range(0, len(xt), 8192)]).double().numpy() \
            if len(xt) else np.zeros((0, 0))


def cross_val_probs(x: np.ndarray, y: np.ndarray, k: int, folds: int = 5, seed: int = 0, hidden: int = 128,
                    tick: TickFn | None = None, others: dict[str, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Out-of-sample p̂ for every training example by ``folds``-fold cross-fitting.

    ``others`` (e.g. val features) are scored by one more model fitted on all of ``x``: they are
    out-of-sample for it too. Features are standardised with the training mean and std.
    """
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    probs = np.zeros((len(x), k))
    fold = stratified_folds(y, folds, seed)
    ticker = Ticker(tick, "label issues: cross-fitting", folds + (1 if others else 0))
    for f in range(folds):
        ticker(f)
        tr, te = fold != f, fold == f
        if not te.any() or not tr.any():
            continue
        model = fit_quick_model(z[tr], y[tr], k, seed=seed + f, hidden=hidden, tick=tick)
        probs[te] = predict_proba(model, z[te])
    out = {}
    if others:
        ticker(folds)
        model = fit_quick_model(z, y, k, seed=seed + folds, hidden=hidden, tick=tick)
        out = {name: predict_proba(model, (v - mu) / sd) for name, v in others.items()}
    ticker(folds + (1 if others else 0))
    return probs, out


def label_issue_candidates(split: str, labels: np.ndarray, probs: np.ndarray, positions: np.ndarray,
                           method: str = "confident_joint", score: str = "normalized_margin") -> list[dict[str, Any]]:
    """The flagged examples of one split as ``{"split","index","given","suggested","score"}``, most suspicious first."""
    labels, probs = _check(labels, probs)
    mask = find_label_issues(labels, probs, method)
    scores = label_quality_scores(labels, probs, score)
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -np.inf
    conf = confident_labels(labels, probs)
    suggested = np.where((conf >= 0) & (conf != labels), conf, other.argmax(1))
    idx = np.nonzero(mask)[0]
    idx = idx[np.argsort(scores[idx], kind="stable")]
    return [{"split": split, "index": int(positions[i]), "given": int(labels[i]), "suggested": int(suggested[i]),
             "score": round(float(scores[i]), 6)} for i in idx]
