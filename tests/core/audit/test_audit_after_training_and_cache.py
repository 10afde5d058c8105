"""Top losses and the confusion matrix against plain PyTorch; the fingerprint cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recipe_tui.core.audit.after_training import (after_training_findings, confusion_matrix, most_confused,
                                                  per_sample_losses, top_losses)
from recipe_tui.core.audit.cache import AuditCache, fingerprint_scans
from recipe_tui.core.audit.scan import scan_splits
from recipe_tui.core.audit.synthetic import planted_images
from recipe_tui.core.checks import CheckContext, run_check
from recipe_tui.core.config import load_recipes
from recipe_tui.core.data import DataInfo, Splits, TensorPairs, load_data

pytestmark = pytest.mark.timeout(120)


def _classifier() -> tuple[nn.Module, Splits]:
    torch.manual_seed(0)
    splits = load_data(load_recipes().experiment("digits-mlp"))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return model, splits


def test_per_sample_losses_and_top_losses_match_plain_pytorch():
    model, splits = _classifier()
    model.train()
    losses = per_sample_losses(model, splits.val, "classification", batch_size=100)
    assert model.training  # restored
    with torch.no_grad():
        out = model(splits.val.x)
        ref = F.cross_entropy(out, splits.val.y, reduction="none").numpy()
    np.testing.assert_allclose(losses.loss, ref, rtol=1e-5)
    assert np.array_equal(losses.predicted, out.argmax(1).numpy())
    top = top_losses(losses, k=5)
    assert [t["index"] for t in top] == np.argsort(-ref, kind="stable")[:5].tolist()
    assert top[0]["given"] == int(splits.val.y[top[0]["index"]])


def test_confusion_matrix_and_most_confused():
    given = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 2, 0, 0, 0])
    cm = confusion_matrix(given, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 2], [3, 0, 1]]
    assert most_confused(cm, ("a", "b", "c")) == [
        {"given": "c", "predicted": "a", "count": 3}, {"given": "b", "predicted": "c", "count": 2},
        {"given": "a", "predicted": "b", "count": 1}]


def test_after_training_findings_for_a_classifier_and_a_language_model():
    model, splits = _classifier()
    f = after_training_findings(model, splits, "classification", k=10)
    cm = np.array(f["confusion"])
    assert cm.sum() == len(splits.val) and len(f["top_losses"]) == 10
    assert f["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)

    class Bigram(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(3, 3)

        def forward(self, idx):
            return self.emb(idx)

    x = torch.tensor([[0, 1, 2], [0, 2, 0]])
    y = torch.tensor([[1, 2, 0], [2, 0, -1]])
    info = DataInfo(kind="sequence", input_shape=(3,), num_classes=3, vocab=".ab")
    lm = Bigram()
    out = after_training_findings(lm, Splits(TensorPairs(x, y), TensorPairs(x, y), info), "language-model")
    with torch.no_grad():
        ce = F.cross_entropy(lm(x).reshape(-1, 3), y.reshape(-1), ignore_index=-1, reduction="none").view(2, 3)
    per_seq = [ce[0].mean().item(), ce[1, :2].mean().item()]
    assert sorted(t["loss"] for t in out["top_losses"]) == pytest.approx(sorted(per_seq), abs=1e-5)
    assert np.array(out["confusion"]).sum() == 5  # the five non-padding targets


def _fingerprint(splits: Splits) -> str:
    return fingerprint_scans(scan_splits(splits), splits.info)


def test_fingerprint_changes_with_any_value_and_label_but_not_between_loads():
    p = planted_images()
    a = _fingerprint(p.splits)
    assert _fingerprint(planted_images().splits) == a
    x = p.splits.train.x.clone()
    x[333, 0, 4, 4] += 1e-3
    changed = Splits(TensorPairs(x, p.splits.train.y), p.splits.val, p.splits.info)
    assert _fingerprint(changed) != a
    y = p.splits.train.y.clone()
    y[5] = (y[5] + 1) % 10
    assert _fingerprint(Splits(TensorPairs(p.splits.train.x, y), p.splits.val, p.splits.info)) != a
    x = p.splits.train.x.clone()
    x[7], x[8] = p.splits.train.x[8], p.splits.train.x[7]  # the same values, two samples swapped
    assert _fingerprint(Splits(TensorPairs(x, p.splits.train.y), p.splits.val, p.splits.info)) != a


def test_results_are_cached_by_fingerprint_and_params(tmp_path):
    exp = load_recipes().experiment("digits-mlp")
    first = CheckContext(exp=exp, runs_root=str(tmp_path))
    r1 = run_check("label-issues", first)
    assert "cached" not in r1.metrics
    second = CheckContext(exp=exp, runs_root=str(tmp_path))  # a new job: nothing in memory
    r2 = run_check("label-issues", second)
    assert r2.metrics["cached"] is True
    assert (r2.status, r2.summary, r2.metrics["candidates"]) == (r1.status, r1.summary, r1.metrics["candidates"])
    assert "audit.scans" in second.cache  # the data was read again (the key is what it holds), the model not refit
    assert r2.metrics["seconds"] < r1.metrics["seconds"]
    other = exp.replace("checks", label_folds=3)
    r3 = run_check("label-issues", CheckContext(exp=other, runs_root=str(tmp_path)))
    assert "cached" not in r3.metrics and r3.metrics["folds"] == 3
    assert len(list((tmp_path / ".cache" / "audit").glob("label-issues-*.json"))) == 2


def test_cache_ignores_a_corrupt_file(tmp_path):
    cache = AuditCache(tmp_path)
    cache.put("k", {"a": np.int64(3)})
    assert cache.get("k") == {"a": 3}
    (tmp_path / "k.json").write_text("{not json")
    assert cache.get("k") is None
