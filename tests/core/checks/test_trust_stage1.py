"""Stage-1 checks on data modelled on public reports (issue 10, classes 5–7): each bug beside its fix."""
from __future__ import annotations

import pytest
from skeleton_zoo import experiment, zoo
from zoo_reports import data

from recipe_tui.core.checks import CheckContext, run_check
from recipe_tui.core.checks.data_labels import NEAR_CHANCE_SUMMARY

pytestmark = pytest.mark.timeout(120)
LM = dict(task="language-model", model=zoo("gpt"))


@pytest.fixture
def run(tmp_path):
    """Run one check in a job of its own, its audit cache under a temporary runs dir."""
    return lambda check_id, exp: run_check(check_id, CheckContext(exp=exp, device_name="cpu", runs_root=str(tmp_path)))


def test_label_issues_does_not_count_the_flags_of_a_quick_model_at_chance(run):
    """Labels independent of the inputs (cleanlab discussion #592: a model no better than always predicting the
    most common class cannot find label errors): warn, and no flag counts as a label error."""
    r = run("label-issues", experiment({"name": "mlp"}, data=data("random_labels")))
    assert r.status == "warn" and NEAR_CHANCE_SUMMARY in r.summary, r.summary
    m = r.metrics
    assert m["near_chance"] is True and m["candidates"] == [] and set(m["count"].values()) == {0}
    assert m["cv_accuracy"] < m["majority_rate"] + 0.1 * (1 - m["majority_rate"])
    assert "loss" in r.hint


def test_label_issues_counts_the_flags_of_a_quick_model_that_learns(run):
    """The other side: on learnable labels (digits) the quick model's flags are the verdict."""
    r = run("label-issues", experiment({"name": "mlp"}, data=data("standardized_digits")))
    assert r.status == "pass" and "near_chance" not in r.metrics, r.summary
    assert r.metrics["cv_accuracy"] > 0.9 and r.metrics["count"]["train"] == len(
        [c for c in r.metrics["candidates"] if c["split"] == "train"])


def test_data_stats_warns_when_validation_is_standardised_with_another_std(run):
    """momask-codes#109: validation standardised with a std changed a second time. The mean barely moves (under
    0.5 train std, which passed before); the spread is 0.4 × train's."""
    r = run("data-stats", experiment({"name": "mlp"}, data=data("standardized_digits", val_std_factor=2.5)))
    assert r.status == "warn", r.summary
    assert r.metrics["shift"]["val"] < 0.5
    assert r.metrics["std_ratio"]["val"] == pytest.approx(0.4, rel=0.02)
    assert "stds differ from train" in r.summary and "training mean and std" in r.hint


def test_data_stats_passes_splits_standardised_with_the_training_statistics(run):
    r = run("data-stats", experiment({"name": "mlp"}, data=data("standardized_digits")))
    assert r.status == "pass", r.summary
    assert 0.9 < r.metrics["std_ratio"]["val"] < 1.1


def test_data_stats_and_batch_view_fail_on_a_padding_id_outside_the_vocabulary(run):
    """lucidrains/audiolm-pytorch#18, huggingface/transformers#1062: a padding id equal to the vocabulary size sits
    only where the target is ignored, yet nn.Embedding looks it up ("index out of range")."""
    exp = experiment(**LM, data=data("padded_names", pad_id=27))
    r = run("data-stats", exp)
    assert r.status == "fail", r.summary
    bad = r.metrics["bad"]
    assert bad and {b["problem"] for b in bad} == {"token-out-of-range"}
    assert all("id 27" in b["detail"] and "a padding position" in b["detail"] for b in bad)
    assert len(bad) == sum(r.metrics["splits"][s]["count"] for s in ("train", "val"))  # every name is padded
    v = run("batch-view", exp)
    assert v.status == "fail" and "token id 27 is outside the vocabulary 0…26" in v.summary, v.summary
    assert "IndexError" in v.metrics["model_error"]


def test_data_stats_and_batch_view_pass_padding_with_an_id_in_the_vocabulary(run):
    exp = experiment(**LM, data=data("padded_names", pad_id=0))
    r = run("data-stats", exp)
    assert r.status == "pass" and r.metrics["bad"] == [], r.summary
    assert run("batch-view", exp).status == "pass"
