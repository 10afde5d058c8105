"""No check's result depends on which checks ran before it in the same job (issue 10, class 2).

Every check is run alone (a job of its own) and within the `--stage 1`, `--stage 2` and full (stage 1 then 2)
jobs; status and summary must agree. Data loading that draws from torch's global RNG is what used to break
this: ``random_split`` without a generator (pytorch/pytorch#30364) and a dataset augmenting with torch's RNG as
it is read (pytorch/vision#2520) — `seed` failed alone and passed after data-stats had loaded the data.
"""
from __future__ import annotations

import pytest
from skeleton_zoo import experiment, run
from zoo_reports import data

from recipe_tui.core.checks import CheckContext, run_check, run_checks
from recipe_tui.core.checks.stages import STAGE_1, STAGE_2
from recipe_tui.core.config import load_recipes

pytestmark = pytest.mark.timeout(300)

ZOO = {
    "random-split-no-generator": dict(model={"name": "mlp", "width": 32}, data=data("random_split_digits")),
    "augments-with-torch-rng": dict(model={"name": "cnn", "width": 16}, data=data("augmenting_digits")),
}


def results_by_job(exp, tmp_path) -> dict[str, dict[str, tuple[str, str]]]:
    """{job: {check id: (status, summary)}}: each check alone, and within the stage-1, stage-2 and full jobs.
    Every job has its own runs dir: the audit cache must not hide a difference."""
    jobs = {"stage 1": list(STAGE_1), "stage 2": list(STAGE_2), "stages 1+2": [*STAGE_1, *STAGE_2]}
    out = {}
    for job, ids in jobs.items():
        ctx = CheckContext(exp=exp, device_name="cpu", runs_root=str(tmp_path / job.replace(" ", "-")))
        out[job] = {r.id: (r.status, r.summary) for r in run_checks(ids, ctx)}
    out["alone"] = {cid: (lambda r: (r.status, r.summary))(
        run_check(cid, CheckContext(exp=exp, device_name="cpu", runs_root=str(tmp_path / "alone" / cid))))
        for cid in [*STAGE_1, *STAGE_2]}
    return out


def assert_same_everywhere(results: dict[str, dict[str, tuple[str, str]]]) -> None:
    alone = results.pop("alone")
    for job, got in results.items():
        differ = {cid: {"alone": alone[cid], job: v} for cid, v in got.items() if v != alone[cid]}
        assert not differ, differ


@pytest.mark.parametrize("name", list(ZOO))
def test_every_check_gives_the_same_result_alone_and_within_its_stage_on_rng_drawing_data(name, tmp_path):
    results = results_by_job(experiment(**ZOO[name], train={"lr": 3e-3}), tmp_path)
    assert results["alone"]["seed"][0] == "pass", results["alone"]["seed"]
    assert_same_everywhere(results)


@pytest.mark.parametrize("name", ["digits-mlp", pytest.param("digits-cnn", marks=pytest.mark.slow),
                                  pytest.param("names-lm", marks=pytest.mark.slow)])
def test_every_check_gives_the_same_result_alone_and_within_its_stage_on_the_shipped_experiments(name, tmp_path):
    exp = load_recipes().experiment(name).replace("train", device="cpu")
    results = results_by_job(exp, tmp_path)
    assert {s for s, _ in results["alone"].values()} <= {"pass", "skip"}, results["alone"]
    assert_same_everywhere(results)


def test_seed_loads_the_data_afresh_and_fails_when_the_split_itself_is_unseeded():
    """The bug beside random_split-without-generator: a split drawn from np.random.default_rng() without a seed
    changes from run to run (BenchPOTS#21), which only a check that reloads the data, as training does, can see."""
    r = run("seed", experiment({"name": "mlp", "width": 32}, data=data("unseeded_split_digits")))
    assert r.status == "fail" and "not seeded" in r.hint, r.summary
    assert r.metrics["first_diff_step"] == 1  # other training data from the very first batch


def test_seed_repeats_on_data_that_augments_as_it_is_read_even_after_other_checks_read_it():
    exp = experiment({"name": "mlp", "width": 32}, data=data("augmenting_digits"))
    ctx = CheckContext(exp=exp, device_name="cpu")
    first = run_check("seed", ctx)
    for cid in ("batch-view", "init-loss"):  # read (and augment) training samples, drawing from torch's RNG
        run_check(cid, ctx)
    again = run_check("seed", ctx)
    assert first.status == again.status == "pass", (first.summary, again.summary)
    assert first.metrics["losses"] == again.metrics["losses"]
