"""Outlier scores, class balance and the data-stats summary on data with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recipe_tui.core.audit.balance import class_balance
from recipe_tui.core.audit.outliers import find_outliers, robust_z
from recipe_tui.core.audit.scan import scan_splits
from recipe_tui.core.audit.stats import data_stats
from recipe_tui.core.audit.synthetic import planted_images
from recipe_tui.core.config import load_recipes
from recipe_tui.core.data import DataInfo, Splits, TensorPairs, load_data

pytestmark = pytest.mark.timeout(60)


def test_robust_z_by_hand():
    v = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    # median 3, MAD 1 → sigma 1.4826; IQR (2..4) → 1.4826; the 1–99 % range (1.04..96.16) / 4.653 → 20.44
    z = robust_z(v)
    p1, p99 = np.percentile(v[:, 0], [1, 99])
    sigma = (p99 - p1) / 4.653
    np.testing.assert_allclose(z[:, 0], np.abs(v[:, 0] - 3) / sigma, rtol=1e-9)
    # a discrete statistic: a value one grid step from the rest is not extreme
    levels = np.array([[1.0]] * 95 + [[0.9375]] * 5)
    assert robust_z(levels).max() <= 1.0 + 1e-9


def test_planted_outliers_are_found_exactly_and_ranked():
    p = planted_images()
    report = find_outliers(scan_splits(p.splits), z_limit=6.0)
    found = [(o["split"], o["index"]) for o in report["outliers"]]
    assert set(found) == p.outliers and len(found) == len(p.outliers)
    assert [o["score"] for o in report["outliers"]] == sorted((o["score"] for o in report["outliers"]), reverse=True)
    assert report["count"] == {"train": 2, "val": 1}


def test_clean_digits_have_no_outliers_and_one_saturated_image_is_the_only_finding():
    exp = load_recipes().experiment("digits-mlp")
    splits = load_data(exp)
    assert find_outliers(scan_splits(splits), z_limit=6.0)["outliers"] == []
    # One saturated capture (every pixel at 1) must be the only finding.
    x = splits.train.x.clone()
    x[10] = 1.0
    planted = Splits(train=TensorPairs(x, splits.train.y), val=splits.val, info=splits.info)
    found = find_outliers(scan_splits(planted), z_limit=6.0)["outliers"]
    assert [(o["split"], o["index"]) for o in found] == [("train", 10)]


def test_class_balance_counts_missing_classes_invalid_labels_and_lm_tokens():
    p = planted_images()
    m = class_balance(scan_splits(p.splits), 10, p.splits.info.class_names)
    assert m["missing"] == {"val": ["9"]}
    assert m["splits"]["train"]["counts"] == np.bincount(p.splits.train.y.numpy(), minlength=10).tolist()
    c = np.array(m["splits"]["train"]["counts"])
    assert m["ratio"] == pytest.approx(c.min() / c.max(), abs=1e-4)
    # language model: target tokens, padding (-1) ignored; a label outside the classes is invalid
    x = torch.tensor([[0, 1, 2], [0, 2, 0]])
    y = torch.tensor([[1, 2, 0], [2, 0, -1]])
    info = DataInfo(kind="sequence", input_shape=(3,), num_classes=3, vocab=".ab")
    lm = class_balance(scan_splits(Splits(TensorPairs(x, y), TensorPairs(x, y), info)), 3, (".", "a", "b"))
    assert lm["splits"]["train"]["counts"] == [2, 1, 2] and lm["invalid"] == {}
    bad = class_balance(scan_splits(Splits(TensorPairs(x, y + 1), TensorPairs(x, y), info)), 3)
    assert bad["invalid"] == {"train": 2}


def test_data_stats_lists_bad_samples_and_detects_shift():
    p = planted_images()
    m = data_stats(scan_splits(p.splits))
    assert {(b["split"], b["index"]): b["problem"] for b in m["bad"]} == p.nonfinite
    assert m["splits"]["train"]["count"] == 600 and m["splits"]["train"]["shapes"] == {"1x8x8": 600}
    assert not m["inconsistent_shapes"]
    shifted = Splits(train=p.splits.train, val=TensorPairs(p.splits.val.x + 1.0, p.splits.val.y), info=p.splits.info)
    assert data_stats(scan_splits(shifted))["shift"]["val"] > 2.0
