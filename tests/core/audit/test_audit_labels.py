"""Confident learning: hand-computed pieces, planted label flips, and the real label-error anchor."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recipe_tui.core.audit.labels import (calibrated_joint, confident_joint, confident_labels, cross_val_probs,
                                          estimated_noise_rate, find_label_issues, label_issue_candidates,
                                          label_quality_scores, per_class_thresholds, rank_by_label_quality,
                                          stratified_folds)
from recipe_tui.core.audit.synthetic import planted_images

pytestmark = pytest.mark.timeout(120)

ANCHOR = Path(__file__).resolve().parents[3] / ".." / "shared" / "anchors" / "label-errors"

LABELS = np.array([0, 0, 0, 1, 1, 1])
PROBS = np.array([
    [0.9, 0.1],
    [0.8, 0.2],
    [0.2, 0.8],  # labelled 0, confidently 1
    [0.1, 0.9],
    [0.3, 0.7],
    [0.6, 0.4],  # labelled 1, p0 = 0.6 ≥ t0 but below-threshold for 1
])


def test_thresholds_confident_joint_and_calibration_by_hand():
    t = per_class_thresholds(LABELS, PROBS)
    np.testing.assert_allclose(t, [(0.9 + 0.8 + 0.2) / 3, (0.9 + 0.7 + 0.4) / 3])  # 0.6333, 0.6667
    # example 4: p1 = 0.7 ≥ 0.667 → 1; example 5: p0 = 0.6 < 0.633 and p1 = 0.4 < 0.667 → none
    assert confident_labels(LABELS, PROBS).tolist() == [0, 0, 1, 1, 1, -1]
    cj = confident_joint(LABELS, PROBS)
    assert cj.tolist() == [[2, 1], [0, 2]]
    q = calibrated_joint(cj, LABELS)
    np.testing.assert_allclose(q, [[2 / 6, 1 / 6], [0, 3 / 6]])  # row 1 rescaled from 2 counted to 3 labelled
    assert estimated_noise_rate(LABELS, PROBS) == pytest.approx(1 / 6)
    assert find_label_issues(LABELS, PROBS).tolist() == [False, False, True, False, False, False]
    assert find_label_issues(LABELS, PROBS, "prune_by_noise_rate").tolist() == [False, False, True, False, False, False]


def test_scores_and_ranking():
    sc = label_quality_scores(LABELS, PROBS, "self_confidence")
    np.testing.assert_allclose(sc, [0.9, 0.8, 0.2, 0.9, 0.7, 0.4])
    nm = label_quality_scores(LABELS, PROBS)
    np.testing.assert_allclose(nm, (np.array([0.8, 0.6, -0.6, 0.8, 0.4, -0.2]) + 1) / 2)
    assert rank_by_label_quality(LABELS, PROBS).tolist()[:2] == [2, 5]
    cands = label_issue_candidates("train", LABELS, PROBS, np.arange(10, 16))
    assert cands == [{"split": "train", "index": 12, "given": 0, "suggested": 1, "score": pytest.approx(0.2)}]
    with pytest.raises(ValueError):
        label_quality_scores(np.array([0, 2]), PROBS[:2])


def test_folds_are_stratified():
    y = np.repeat(np.arange(3), [50, 30, 7])
    f = stratified_folds(y, 5)
    for c in range(3):
        counts = np.bincount(f[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_cross_fitting_finds_exactly_the_planted_label_errors():
    p = planted_images()
    x = p.splits.train.x.reshape(600, -1).numpy()
    y = p.splits.train.y.numpy()
    ok = np.isfinite(x).all(1)
    xv = p.splits.val.x.reshape(150, -1).numpy()
    probs, other = cross_val_probs(x[ok], y[ok], 10, folds=5, seed=0, others={"val": xv[np.isfinite(xv).all(1)]})
    found = {("train", c["index"]) for c in label_issue_candidates("train", y[ok], probs, np.nonzero(ok)[0])}
    assert found == p.label_errors
    assert other["val"].shape == (149, 10) and np.allclose(other["val"].sum(1), 1)
    assert (probs.argmax(1) == y[ok]).mean() > 0.95


def _anchor(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    probs = np.load(ANCHOR / f"{name}_test_set_pyx.npy")
    labels = np.load(ANCHOR / f"{name}_test_set_labels.npy").astype(np.int64)
    errors = json.loads((ANCHOR / f"{name}_validated_errors.json").read_text())["validated_errors"]
    return labels, probs, np.array([e["index"] for e in errors])


@pytest.mark.skipif(not ANCHOR.is_dir(), reason=f"label-error anchor not found at {ANCHOR} (CI keeps it in ../shared/anchors)")
@pytest.mark.parametrize("name, within, need, total", [("mnist", 100, 15, 15), ("cifar10", 300, 48, 54)])
def test_anchor_ranking_puts_validated_errors_first(name, within, need, total):
    labels, probs, errors = _anchor(name)
    assert len(errors) == total
    rank = np.empty(len(labels), dtype=np.int64)
    rank[rank_by_label_quality(labels, probs)] = np.arange(len(labels))
    hits = int((rank[errors] < within).sum())
    assert hits >= need, f"{name}: {hits}/{total} validated errors within the {within} lowest scores"
