"""Stage-1 checks end to end: planted problems are found exactly, clean data passes, JSON keys are public."""
from __future__ import annotations

import json
import threading

import pytest
import torch
from torch.utils.data import Dataset

from recipe_tui.core.audit.synthetic import planted_images
from recipe_tui.core.checks import CheckContext, registry, run_check
from recipe_tui.core.config import DataConfig, Experiment, ModelConfig, load_recipes
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import Splits, TensorPairs
from recipe_tui.core.events import Progress

pytestmark = pytest.mark.timeout(120)
STAGE1 = ["data-stats", "class-balance", "duplicates", "outliers", "label-issues"]


def _ctx(splits: Splits, tmp_path, **kw) -> CheckContext:
    exp = Experiment(name="planted", data=DataConfig(source="digits"), model=ModelConfig(name="mlp"))
    ctx = CheckContext(exp=exp, runs_root=str(tmp_path), **kw)
    ctx.use_data(splits)  # the checks audit what ctx.splits() returns
    return ctx


@pytest.fixture(scope="module")
def planted():
    return planted_images()


@pytest.fixture(scope="module")
def planted_results(planted, tmp_path_factory):
    ctx = _ctx(planted.splits, tmp_path_factory.mktemp("runs"))
    return {cid: run_check(cid, ctx) for cid in STAGE1}


def test_stage1_ids_are_registered():
    assert set(STAGE1) <= set(registry())
    items = {i.id: i.check for i in load_recipes().items()}
    assert all(items[c] == c for c in STAGE1)


def test_data_stats_lists_exactly_the_nan_and_inf_samples(planted, planted_results):
    r = planted_results["data-stats"]
    assert r.status == "fail"
    assert {(b["split"], b["index"]): b["problem"] for b in r.metrics["bad"]} == planted.nonfinite
    assert r.metrics["splits"]["val"]["count"] == 150


def test_class_balance_reports_the_class_missing_from_val(planted, planted_results):
    r = planted_results["class-balance"]
    assert r.status == "warn" and r.metrics["missing"] == {"val": planted.missing_from_val}
    assert "stratified" in r.hint


def test_duplicates_groups_are_exactly_the_planted_ones_and_leakage_fails(planted, planted_results):
    r = planted_results["duplicates"]
    assert r.status == "fail" and "leakage" in r.summary
    groups = r.metrics["groups"]
    assert all(set(m) == {"split", "index"} for g in groups for m in g)  # the public JSON shape
    assert {frozenset((m["split"], m["index"]) for m in g) for g in groups} == planted.groups
    assert r.metrics["conflicting"] == len(planted.conflicting)


def test_outliers_are_exactly_the_planted_ones(planted, planted_results):
    r = planted_results["outliers"]
    assert r.status == "warn"
    assert {(o["split"], o["index"]) for o in r.metrics["outliers"]} == planted.outliers


def test_label_issues_are_exactly_the_flipped_labels(planted, planted_results):
    r = planted_results["label-issues"]
    cands = r.metrics["candidates"]
    assert all(set(c) == {"split", "index", "given", "suggested", "score"} for c in cands)
    assert {(c["split"], c["index"]) for c in cands} == planted.label_errors
    assert [c["score"] for c in cands] == sorted(c["score"] for c in cands)  # most suspicious first
    for c in cands:
        assert c["given"] == int(planted.splits.train.y[c["index"]]) and c["suggested"] != c["given"]
    assert r.status == "pass"  # 9 of 600 flagged = 1.5 %, under the 2 % default
    assert r.metrics["cv_accuracy"] > 0.95


def test_clean_digits_pass_duplicates_and_report_no_leakage(tmp_path):
    exp = load_recipes().experiment("digits-mlp")
    ctx = CheckContext(exp=exp, runs_root=str(tmp_path))
    results = {cid: run_check(cid, ctx) for cid in ["data-stats", "class-balance", "duplicates", "outliers"]}
    assert {cid: r.status for cid, r in results.items()} == {cid: "pass" for cid in results}
    d = results["duplicates"].metrics
    assert d["groups"] == [] and d["leaked"] == {"val": {"exact": 0, "near": 0}}
    assert results["data-stats"].metrics["bad"] == []


def test_language_model_data_gets_token_statistics_and_label_issues_skip(tmp_path):
    exp = load_recipes().experiment("names-lm")
    ctx = CheckContext(exp=exp, runs_root=str(tmp_path))
    stats = run_check("data-stats", ctx)
    assert stats.status == "pass" and stats.metrics["splits"]["train"]["vocab_coverage"] == 1.0
    assert stats.metrics["splits"]["train"]["lengths"]["max"] <= exp.data.seq_len
    bal = run_check("class-balance", ctx)
    assert len(bal.metrics["classes"]) == 27 and bal.metrics["ratio"] < 0.05
    assert run_check("label-issues", ctx).status == "skip"


def test_imbalance_warns_and_suggests_init_bias(tmp_path):
    p = planted_images()
    y = p.splits.train.y.clone()
    y[y == 3] = 4  # class 3 disappears from train, class 4 doubles: missing class → fail
    ctx = _ctx(Splits(TensorPairs(p.splits.train.x, y), p.splits.val, p.splits.info), tmp_path)
    assert run_check("class-balance", ctx).status == "fail"
    keep = torch.cat([torch.nonzero(p.splits.train.y != 0).flatten(), torch.nonzero(p.splits.train.y == 0).flatten()[:5]])
    skewed = TensorPairs(p.splits.train.x[keep], p.splits.train.y[keep])
    r = run_check("class-balance", _ctx(Splits(skewed, p.splits.val, p.splits.info), tmp_path / "b"))
    assert r.status == "warn" and "init_bias = true" in r.hint and r.metrics["ratio"] < 0.1


class Flaky(Dataset):
    def __init__(self, base: TensorPairs, broken: set[int]) -> None:
        self.base, self.broken = base, broken

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        if i in self.broken:
            raise ValueError("corrupt file")
        return self.base[i]


def test_samples_that_fail_to_load_are_listed_not_fatal_and_progress_is_reported(tmp_path):
    p = planted_images()
    events = []
    ctx = _ctx(Splits(Flaky(p.splits.train, {4, 77}), p.splits.val, p.splits.info), tmp_path, control=RunControl(emit=events.append))
    r = run_check("data-stats", ctx)
    assert r.status == "fail"
    assert {(b["split"], b["index"]) for b in r.metrics["bad"] if b["problem"] == "load-error"} == {("train", 4), ("train", 77)}
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[-1].done <= progress[-1].total and any(e.task.startswith("scan") for e in progress)


def test_a_stopped_scan_ends_as_skip_quickly(tmp_path):
    p = planted_images()
    stop = threading.Event()

    class Stopping(Dataset):
        def __len__(self):
            return 10_000

        def __getitem__(self, i):
            if i == 50:
                stop.set()  # the user pressed s mid-scan
            return p.splits.train[i % 600]

    ctx = _ctx(Splits(Stopping(), p.splits.val, p.splits.info), tmp_path, control=RunControl(stop=stop))
    r = run_check("duplicates", ctx)
    assert r.status == "skip" and "stopped" in r.summary
    assert not (tmp_path / ".cache" / "audit").exists() or not list((tmp_path / ".cache" / "audit").glob("duplicates-*"))


def test_cli_json_carries_groups_and_candidates(tmp_path, capsys):
    from recipe_tui.tui.cli import main

    code = main(["check", "duplicates", "label-issues", "-r", "digits-mlp", "--runs", str(tmp_path), "--json"])
    doc = json.loads(capsys.readouterr().out)
    items = {i["id"]: i for i in doc["items"]}
    assert code == 0 and items["duplicates"]["metrics"]["groups"] == []
    assert isinstance(items["label-issues"]["metrics"]["candidates"], list)


def test_cached_results_equal_fresh_ones_for_every_check(planted, planted_results, tmp_path):
    # a first job computes and stores; a second job with nothing in memory reads the expensive results back
    # (duplicates, label-issues) and recomputes the cheap ones from its own scan
    first = _ctx(planted.splits, tmp_path)
    fresh = {cid: run_check(cid, first) for cid in STAGE1}
    again = {cid: run_check(cid, _ctx(planted.splits, tmp_path)) for cid in STAGE1}
    for cid in STAGE1:
        a, b = fresh[cid].public(), again[cid].public()
        assert "cached" not in a["metrics"]
        assert b["metrics"].pop("cached", False) is (cid in ("duplicates", "label-issues")), cid
        a["metrics"].pop("seconds"), b["metrics"].pop("seconds")
        assert json.loads(json.dumps(a)) == b, cid
        assert (a["status"], a["summary"]) == (planted_results[cid].status, planted_results[cid].summary)
