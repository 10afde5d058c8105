"""Stages 4–6 on the built-in digits: the regularization ladder, random search on Optuna, ensembles, distillation —
each a check whose rows are ordinary tagged run dirs that a re-run picks up."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from skeleton_zoo import experiment, zoo

from recipe_tui.core.checks import CheckContext, run_check
from recipe_tui.core.config import apply_values, load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import CheckRow
from recipe_tui.core.jobs import load_trained_model, run_training
from recipe_tui.core.runs import list_runs

pytestmark = pytest.mark.timeout(240)


def digits(**values):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    return apply_values(exp, {"train.device": "cpu", **values})


def run(check_id, exp, runs, stop_when=None):
    """The check's result and its rows; ``stop_when(event)`` stops the job."""
    rows = []
    control = RunControl()

    def emit(e):
        if isinstance(e, CheckRow):
            rows.append(e)
        if stop_when is not None and stop_when(e):
            control.stop.set()
    ctx = CheckContext(exp=exp, control=control.with_emit(emit), device_name="cpu", runs_root=str(runs))
    return run_check(check_id, ctx), rows


# ----------------------------------------------------------------------------- regularize


def test_regularize_on_an_overparameterised_mlp_narrows_the_gap_and_keeps_each_rung(tmp_path):
    exp = digits(**{"model.width": 256, "train.steps": 400, "regularize.dropout": [0.3],
                    "regularize.rungs": ["augment", "dropout", "weight-decay"], "regularize.weight_decay": [1e-2]})
    res, rows = run("regularize", exp, tmp_path)
    rungs = res.metrics["rungs"]
    assert res.status == "pass", res.summary
    assert [r["label"] for r in rungs] == ["the recipe", "augmentation shift-rotate", "dropout 0.3",
                                           "weight decay 0.01"]
    assert [r.row["label"] for r in rows] == [r["label"] for r in rungs], "each rung emitted live, in order"
    base = rungs[0]
    assert base["kept"] and base["train_loss"] < 0.01 and base["gap"] > 0.05, "the big MLP overfits"
    assert min(r["gap"] for r in rungs[1:]) < base["gap"], "a regularizer narrows the gap"
    for r in rungs:
        assert r["gap"] == pytest.approx(r["val_loss"] - r["train_loss"], abs=1e-4)
    kept = [r for r in rungs if r["kept"]]
    for prev, r in zip(rungs, rungs[1:]):  # kept exactly when below the last kept rung's validation loss
        last = [k for k in rungs[:rungs.index(r)] if k["kept"]][-1]
        assert r["kept"] == (r["val_loss"] < last["val_loss"]) and r["delta"] == pytest.approx(
            r["val_loss"] - last["val_loss"], abs=1e-4)
    listed = {r["run_dir"]: r for r in list_runs(tmp_path, exp.name, exp)}
    for r in rungs:
        row = listed[r["run_dir"]]
        assert row["tag"]["kind"] == "regularize" and row["tag"]["label"] == r["label"] and row["steps"] == 400
        assert row["val_loss"]["final"] == pytest.approx(r["val_loss"], rel=1e-4)
    assert listed[rungs[2]["run_dir"]]["changes"]["model.dropout"] == 0.3
    assert len(kept) > 1 and res.metrics["kept"] == {k: v for r in kept for k, v in r["changes"].items()}
    pasted = load_recipes(_write(tmp_path / "r.toml", Path(res.metrics["snippet"]).read_text()))
    pasted = pasted.experiment("digits-mlp-regularized")  # the kept combination, a recipe as it is
    for key, value in res.metrics["kept"].items():
        section, name = key.split(".")
        assert getattr(getattr(pasted, section), name) == value
    assert pasted.model.width == 256 and pasted.train.lr == exp.train.lr
    again, _ = run("regularize", exp, tmp_path)  # a re-run trains nothing: every rung is found
    assert all(r["reused"] for r in again.metrics["rungs"]) and len(list_runs(tmp_path, exp.name)) == 4
    assert [r["val_loss"] for r in again.metrics["rungs"]] == [r["val_loss"] for r in rungs]


def test_a_stopped_ladder_keeps_its_finished_rungs_and_a_re_run_picks_them_up(tmp_path):
    exp = digits(**{"train.steps": 60, "regularize.rungs": ["dropout", "weight-decay"]})
    res, rows = run("regularize", exp, tmp_path, stop_when=lambda e: isinstance(e, CheckRow) and len(e.row) and
                    e.row["label"] == "dropout 0.1")
    assert res.status == "skip" and "stopped after 2 of 6 rungs" in res.summary
    assert [r["label"] for r in res.metrics["rungs"]] == ["the recipe", "dropout 0.1"]
    done = {r["run_dir"] for r in res.metrics["rungs"]}
    res, rows = run("regularize", exp, tmp_path)
    assert res.status in ("pass", "warn") and len(res.metrics["rungs"]) == 6
    assert [r["reused"] for r in res.metrics["rungs"]] == [True, True, False, False, False, False]
    assert {r["run_dir"] for r in res.metrics["rungs"][:2]} == done


def test_regularize_skips_what_does_not_apply_and_says_why(tmp_path):
    exp = digits(**{"train.steps": 30, "regularize.rungs": ["batch-size", "dropout"], "regularize.dropout": [0.1]})
    res, _ = run("regularize", exp.replace("model", name="linear"), tmp_path)
    skipped = {r["label"]: r["note"] for r in res.metrics["rungs"] if r["status"] == "skipped"}
    assert "no BatchNorm" in skipped["smaller batch"] and "no dropout option" in skipped["dropout"]
    bn = exp.replace("model", batchnorm=True)
    res, _ = run("regularize", bn, tmp_path)
    rungs = {r["label"]: r for r in res.metrics["rungs"]}
    assert rungs["batch size 32"]["status"] == "completed" and "BatchNorm" in rungs["dropout 0.1"]["note"]
    # a factory model: what the recipe controls outside its code
    mine = apply_values(experiment(zoo("mlp"), train={"steps": 30}), {"regularize.rungs": ["dropout", "weight-decay"],
                                                                     "regularize.weight_decay": [1e-3]})
    res, _ = run("regularize", mine, tmp_path)
    rungs = {r["label"]: r for r in res.metrics["rungs"]}
    assert "factory model" in rungs["dropout"]["note"] and rungs["weight decay 0.001"]["status"] == "completed"


def test_augmentation_presets_are_reproducible_and_token_dropout_spares_padding(tmp_path):
    exp = digits(**{"train.steps": 40, "data.augmentation": "shift-rotate"})
    a = run_training(exp, runs_root=tmp_path)
    b = run_training(exp, runs_root=tmp_path)
    plain = run_training(exp.replace("data", augmentation="none"), runs_root=tmp_path)
    assert a.final["loss"] == b.final["loss"] != plain.final["loss"]
    names = load_recipes(shipped_recipes_path()).experiment("names-lm")
    splits = load_data(apply_values(names, {"data.augmentation": "token-dropout", "data.token_dropout": 0.5}))
    clean = load_data(names)
    torch.manual_seed(0)
    changed = pad_changed = 0
    for i in range(200):
        x, y = splits.train[i]
        x0, _ = clean.train[i]
        changed += int((x != x0).sum())
        pad_changed += int(((x != x0) & (y == -1)).sum())
    assert changed > 100 and pad_changed == 0


# ----------------------------------------------------------------------------- tune


def test_tune_eight_random_trials_find_a_configuration_at_least_as_good_as_the_recipe(tmp_path):
    exp = digits(**{"tune.trials": 8, "tune.steps": 200})
    res, rows = run("tune", exp, tmp_path)
    m = res.metrics
    trials = m["trials"]
    assert res.status == "pass", res.summary
    assert len(trials) == len(rows) == 8 and sorted(t["trial"] for t in trials) == list(range(8))
    recipe = m["recipe"]
    assert recipe["trial"] == 0 and recipe["train.lr"] == 3e-3 and recipe["model.width"] == 128
    assert m["best"]["val_loss"] <= recipe["val_loss"]
    done = [t for t in trials if t["status"] == "completed"]
    assert [t["val_loss"] for t in done] == sorted(t["val_loss"] for t in done) and done[0] == m["best"]
    keys = ("train.lr", "model.width", "model.dropout")
    assert len({tuple(t[k] for k in keys) for t in trials}) == 8, "no configuration twice"
    # independently: the recipe trained as it is gives the recipe trial's validation loss
    ref = run_training(exp.replace("train", steps=200), runs_root=tmp_path / "ref")
    assert ref.final["val_loss"] == pytest.approx(recipe["val_loss"], rel=1e-5)
    runs = [r for r in list_runs(tmp_path, exp.name) if r["tag"].get("kind") == "tune"]
    assert sorted(r["tag"]["index"] for r in runs) == list(range(8))
    assert {r["tag"]["group"] for r in runs} == {m["study"]}
    best = load_recipes(_write(tmp_path / "best.toml", Path(m["snippet"]).read_text())).experiment("digits-mlp-tuned")
    assert best.train.lr == pytest.approx(m["best"]["train.lr"]) and best.model.width == m["best"]["model.width"]
    again, rows = run("tune", exp, tmp_path)  # the same study: nothing left to run
    assert [t["trial"] for t in again.metrics["trials"]] == [t["trial"] for t in trials] and len(rows) == 8
    more, rows = run("tune", digits(**{"tune.trials": 9, "tune.steps": 200}), tmp_path)  # a larger budget: one more
    assert more.metrics["study"] == m["study"] and sorted(t["trial"] for t in more.metrics["trials"]) == list(range(9))
    # the ensemble of the best three trials, as they are: nothing is trained
    top = [t for t in more.metrics["trials"] if t["status"] == "completed"][:3]
    ens, _ = run("ensemble", digits(**{"tune.trials": 9, "tune.steps": 200, "ensemble.members": "trials",
                                       "ensemble.size": 3}), tmp_path)
    members = ens.metrics["members"][:3]
    assert [r["member"] for r in members] == [f"trial {t['trial']}" for t in top]
    assert [r["run_dir"] for r in members] == [t["run_dir"] for t in top]
    assert [r["val_loss"] for r in members] == pytest.approx([t["val_loss"] for t in top], rel=1e-4)
    assert len(list_runs(tmp_path, exp.name)) == 9 and ens.status == "pass"


def test_a_stopped_tune_keeps_its_trials_and_the_next_run_retries_the_interrupted_one(tmp_path):
    exp = digits(**{"tune.trials": 4, "tune.steps": 150, "tune.pruner": "none"})
    res, rows = run("tune", exp, tmp_path, stop_when=lambda e: e.type == "progress" and e.task == "tune trial 2"
                    and e.done >= 60)  # in the middle of the third trial
    assert res.status == "skip" and len(res.metrics["trials"]) == 2 == len(rows)
    from recipe_tui.core.tune import open_study, study_place
    study = open_study(exp, study_place(exp, tmp_path))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    res, rows = run("tune", exp, tmp_path)
    study = open_study(exp, study_place(exp, tmp_path))
    assert res.status == "pass" and len(res.metrics["trials"]) == 4 == len(rows)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    retry = study.trials[3]  # the interrupted trial first, with the same parameters
    assert retry.user_attrs["retry_of"] == 2 and retry.params == study.trials[2].params


def test_two_worker_processes_share_one_study_and_run_no_trial_twice(tmp_path):
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "recipe_tui.tui.cli", "tune", "--recipe", "digits-mlp", "--runs", str(tmp_path),
           "--workers", "2", "--set", "tune.trials=8", "--set", "tune.steps=100", "--set", "train.device=\"cpu\"",
           "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=200, env={**__import__("os").environ,
                                                                                "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)["items"][0]
    trials = result["metrics"]["trials"]
    assert result["status"] == "pass" and result["metrics"]["workers"] == 2
    assert sorted(t["trial"] for t in trials) == list(range(8))
    runs = [r for r in list_runs(tmp_path, "digits-mlp") if r["tag"].get("kind") == "tune"]
    assert sorted(r["tag"]["index"] for r in runs) == list(range(8)), "one run dir per trial, none run twice"
    from recipe_tui.core.tune import open_study, study_place
    exp = digits(**{"tune.trials": 8, "tune.steps": 100})
    study = open_study(exp, study_place(exp, tmp_path))
    workers = {t.user_attrs["pid"] for t in study.trials}
    assert len(study.trials) == 8 and len(workers) == 2, "both workers took trials"
    keys = list(result["metrics"]["space"])
    assert len({tuple(t[k] for k in keys) for t in trials}) == 8


# ----------------------------------------------------------------------------- ensemble and distill


def test_an_ensemble_of_five_beats_its_mean_member(tmp_path):
    exp = digits(**{"ensemble.steps": 300, "ensemble.base": "recipe"})
    res, rows = run("ensemble", exp, tmp_path)
    m = res.metrics
    assert res.status == "pass", res.summary
    members = [r for r in m["members"] if r["member"].startswith("seed")]
    assert [r["member"] for r in members] == [f"seed {1337 + i}" for i in range(5)] and len(rows) == 7
    assert m["ensemble"]["val_loss"] < m["mean_member"]["val_loss"]
    assert m["gain"]["val_loss"] == pytest.approx(m["mean_member"]["val_loss"] - m["ensemble"]["val_loss"], abs=1e-4)
    # independently: average the members' softmax in a plain loop
    probs, y = 0, None
    for r in members:
        e, model, splits = load_trained_model(r["run_dir"], {exp.name: exp})
        with torch.no_grad():
            probs = probs + F.softmax(model(splits.val.x), -1)
        y = splits.val.y
        assert r["val_loss"] == pytest.approx(F.cross_entropy(model(splits.val.x), y).item(), rel=1e-4)
    nll = F.nll_loss((probs / 5).log(), y).item()
    assert m["ensemble"]["val_loss"] == pytest.approx(nll, rel=1e-4)
    again, _ = run("ensemble", exp, tmp_path)
    assert all(r["status"] == "reused" for r in again.metrics["members"][:5])


def test_distill_reports_the_student_against_hard_labels_alone(tmp_path):
    exp = digits(**{"ensemble.steps": 300, "ensemble.size": 3, "ensemble.base": "recipe", "distill.steps": 300})
    res, _ = run("distill", exp, tmp_path)
    teacher, hard, soft = res.metrics["models"]
    assert res.status in ("pass", "warn") and ("did not help" in res.summary) == (soft["val_loss"] >= hard["val_loss"])
    assert f"{hard['val_loss']:.4g}" in res.summary and f"{soft['val_loss']:.4g}" in res.summary
    assert hard["status"] == "reused", "the recipe's seed is the first ensemble member: not trained twice"
    assert hard["params"] == soft["params"] and res.metrics["delta"]["val_loss"] == pytest.approx(
        soft["val_loss"] - hard["val_loss"], abs=1e-4)
    config = json.loads((Path(soft["run_dir"]) / "config.json").read_text())
    assert config["train"]["teacher"] == res.metrics["teacher_file"] and Path(config["train"]["teacher"]).is_file()
    assert teacher["val_loss"] < hard["val_loss"]


def test_the_distillation_loss_is_hintons(tmp_path):
    from recipe_tui.core.distill import pack, soft_task
    from recipe_tui.core.tasks import task_of
    torch.manual_seed(0)
    out, teacher, y = torch.randn(6, 10), torch.log_softmax(torch.randn(6, 10), -1), torch.randint(0, 10, (6,))
    task = soft_task(task_of("classification"), temperature=3.0, alpha=0.7)
    packed = task.targets(pack(y, teacher))
    p_t = F.softmax(teacher / 3, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(out / 3, -1))).sum(-1).mean()
    expected = 0.3 * F.cross_entropy(out, y) + 0.7 * 9 * kl
    assert task.loss(out, packed).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.loss(out, y).item() == pytest.approx(F.cross_entropy(out, y).item())  # validation: plain labels
    assert task.correct(out, packed)[0] == task.correct(out, y)[0]


# ----------------------------------------------------------------------------- leave it training


def test_an_open_ended_run_stopped_and_resumed_keeps_its_best_checkpoint(tmp_path):
    import threading

    exp = digits(**{"train.steps": 0, "train.eval_every": 25, "train.checkpoint_every": 100})
    stop, lines = threading.Event(), []

    def control(until):
        def emit(e):
            if e.type == "step" and e.step >= until:
                stop.set()
            if e.type == "log":
                lines.append(e.message)
        stop.clear()
        return RunControl(emit=emit, stop=stop)
    first = run_training(exp, control(900), runs_root=tmp_path)
    best = torch.load(first.run_dir / "best.pt", weights_only=True)
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert first.status == "stopped" and first.steps >= 900 and summary["total_steps"] == 0
    assert best["step"] == summary["val_loss"]["best_step"] < first.steps
    assert best["open_ended"]["best"] == pytest.approx(summary["val_loss"]["best"])
    assert any("levelled off" in line and "training goes on" in line for line in lines)
    # independently: best.pt's weights give that validation loss
    _, model, splits = load_trained_model(first.run_dir, {exp.name: exp})
    model.load_state_dict(best["model"])
    with torch.no_grad():
        loss = F.cross_entropy(model(splits.val.x), splits.val.y).item()
    assert loss == pytest.approx(best["open_ended"]["best"], rel=1e-4)
    second = run_training(None, control(first.steps + 300), runs_root=tmp_path, resume=first.run_dir,
                          known={exp.name: exp})
    after = torch.load(first.run_dir / "best.pt", weights_only=True)
    summary = json.loads((first.run_dir / "summary.json").read_text())
    assert second.status == "stopped" and second.steps >= first.steps + 300
    assert after["open_ended"]["best"] <= best["open_ended"]["best"]
    assert after["step"] == summary["val_loss"]["best_step"]
    assert math.isclose(after["open_ended"]["best"], summary["val_loss"]["best"], rel_tol=1e-6)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.slow
def test_a_stop_reaches_every_worker_and_the_next_run_retries_their_trials(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from recipe_tui.core.tune import open_study, study_place
    cmd = [sys.executable, "-m", "recipe_tui.tui.cli", "tune", "--recipe", "digits-mlp", "--runs", str(tmp_path),
           "--workers", "2", "--set", "tune.trials=300", "--set", "tune.steps=1500", "--set", "tune.pruner=\"none\"",
           "--set", "train.device=\"cpu\"", "--json"]  # digits() sets the device: the same study
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    # Far more trials than can finish before the stop (a trial takes ~2 s): the study must still be running then.
    exp = digits(**{"tune.trials": 300, "tune.steps": 1500, "tune.pruner": "none"})
    place = study_place(exp, tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # until both workers are in a trial, one finished
        time.sleep(0.5)
        if Path(place.storage).is_file():
            states = [t.state.name for t in open_study(exp, place).trials]
            if states.count("COMPLETE") >= 1 and states.count("RUNNING") == 2:
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    result = json.loads(out)["items"][0]
    study = open_study(exp, place)
    stopped = [t for t in study.trials if t.state.name == "FAIL"]
    assert proc.returncode == 130 and result["status"] == "skip" and "a re-run continues it" in result["summary"]
    assert len(stopped) == 2 and not [t for t in study.trials if t.state.name == "RUNNING"]
    assert all("reason" not in t.user_attrs for t in stopped), "stopped part-way: to be tried again"
    done = sum(t.state.name == "COMPLETE" for t in study.trials)
    again = digits(**{"tune.trials": done + 2, "tune.steps": 1500, "tune.pruner": "none"})
    res, _ = run("tune", again, tmp_path)
    study = open_study(again, study_place(again, tmp_path))
    retries = {t.user_attrs["retry_of"]: t.params for t in study.trials if "retry_of" in t.user_attrs}
    assert res.status == "pass" and retries == {t.number: t.params for t in stopped}
