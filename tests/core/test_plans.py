"""The stage 4–6 plans are validated like the rest of the recipes file, and every item answers headless with its table
in ``metrics``; ``train --forever`` stops cleanly with its best checkpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipe_tui.core.config import ConfigError, apply_overrides, load_recipes, shipped_recipes_path
from recipe_tui.tui.cli import main

pytestmark = pytest.mark.timeout(180)


def digits():
    return load_recipes(shipped_recipes_path()).experiment("digits-mlp")


@pytest.mark.parametrize("override, message", [
    ('tune.space={ "train.lr" = { loguniform = [1e-4, 1e-2] } }', "expected one of { log-uniform"),
    ('tune.space={ "train.lr" = { log-uniform = [1e-2, 1e-4] } }', "low must be below high"),
    ('tune.space={ "train.lr" = { log-uniform = [0, 1e-2] } }', "above 0"),
    ('tune.space={ "train.lr" = { uniform = [1e-4, 20.0] } }', "20.0 is not a value train.lr takes: must be in (0, 10]"),
    ('tune.space={ "model.width" = { uniform = [8, 64] } }', "model.width takes integers: use int"),
    ('tune.space={ "model.widht" = { int = [8, 64] } }', "did you mean 'width'"),
    ('tune.space={ "train.steps" = { int = [8, 64] } }', "tune.steps sets the steps"),
    ('tune.space={ "checks.batch_size" = { int = [8, 64] } }', "must be a --set key of data, model or train"),
    ('tune.space={ "train.optimizer" = { choice = ["adam", "lion"] } }', "'lion' is not an optimizer"),
    ('tune.space={ "train.lr" = { int = [1.5, 3] } }', "expected two integers"),
    ("tune.sampler=grid", "'grid' is not one of random, tpe"),
    ('regularize.rungs=["dropout", "mixup"]', "regularize.rungs[2]: 'mixup' is not a rung"),
    ('regularize.rungs=["dropout", "dropout"]', "listed twice"),
    ("regularize.dropout=[0.1, 1.0]", "regularize.dropout[2]: must be in (0, 1), got 1.0"),
    ("ensemble.size=1", "ensemble.size: must be in 2…100"),
    ("ensemble.members=best", "'best' is not one of seeds, trials"),
    ("data.augmentation=mixup", "'mixup' is not one of none, shift-rotate"),
    ("distill.temperature=0", "distill.temperature: must be in (0, 100]"),
])
def test_plans_are_refused_in_one_sentence(override, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(digits(), [override])
    assert message in str(err.value), str(err.value)
    assert str(err.value).count("\n") == 0


def test_open_ended_training_needs_a_constant_schedule_and_the_file_says_where():
    with pytest.raises(ConfigError, match="needs an end to decay to"):
        apply_overrides(digits(), ["train.steps=0", "train.schedule=cosine"])
    assert apply_overrides(digits(), ["train.steps=0"]).train.steps == 0


def test_a_plan_in_the_file_is_checked_with_its_line(tmp_path):
    text = shipped_recipes_path().read_text().replace('"model.width" = { choice = [64, 128, 256] }',
                                                      '"model.width" = { choice = [64, 128, 0] }')
    path = tmp_path / "recipes.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_recipes(path)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "[recipe.digits-mlp.tune]" in row)
    assert str(err.value).startswith(f"{path}:") and "0 is not a value model.width takes: must be in 1…65,536" in str(err.value)
    assert int(str(err.value).split(":")[1]) >= line


def test_every_stage_4_to_6_item_answers_headless_with_its_table(tmp_path, capsys):
    tiny = ["--set", "train.steps=40", "--set", "train.eval_every=20", "--set", "tune.trials=2",
            "--set", 'regularize.rungs=["weight-decay"]', "--set", "regularize.weight_decay=[0.001]",
            "--set", "ensemble.size=2", "--set", 'ensemble.base="recipe"']
    code = main(["check", "regularize", "tune", "ensemble", "distill", "--recipe", "digits-mlp", "--runs", str(tmp_path),
                 "--json", *tiny])
    out, err = capsys.readouterr()
    items = {i["id"]: i for i in json.loads(out)["items"]}
    assert code == 0 and list(items) == ["regularize", "tune", "ensemble", "distill"]
    for item_id, table, n in (("regularize", "rungs", 2), ("tune", "trials", 2), ("ensemble", "members", 4),
                              ("distill", "models", 3)):
        assert items[item_id]["status"] in ("pass", "warn"), items[item_id]["summary"]
        assert len(items[item_id]["metrics"][table]) == n
        assert f"{item_id} {table}:" in err, "each row is shown on stderr as it comes"
    assert items["distill"]["metrics"]["models"][1]["status"] == "reused"
    runs = json.loads(_runs(tmp_path, capsys))["runs"]
    kinds = sorted({r["tag"].get("kind") for r in runs})
    assert kinds == ["distill", "ensemble", "regularize", "tune"] and all(r["changes"].get("train.steps") == 40 or
                                                                          r["tag"]["kind"] != "regularize" for r in runs)


def _runs(tmp_path, capsys):
    assert main(["runs", "--recipe", "digits-mlp", "--runs", str(tmp_path), "--json"]) == 0
    return capsys.readouterr().out


def test_train_forever_stops_cleanly_with_its_best_checkpoint(tmp_path):
    exe = Path(sys.executable).with_name("recipe-tui")
    proc = subprocess.Popen([str(exe), "train", "--forever", "--json", "--runs", str(tmp_path), "--set",
                             "train.eval_every=20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob("digits-mlp/*/best.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    doc = json.loads(out)
    assert proc.returncode == 130 and doc["status"] == "stopped" and doc["steps"] > 20
    run = Path(doc["run_dir"])
    assert (run / "best.pt").is_file() and (run / "checkpoint.pt").is_file()
    assert "(open-ended)" in err and "ETA" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["total_steps"] == 0 and summary["status"] == "stopped"


def test_tune_on_an_rdb_storage_by_name_continues_the_same_study(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'tune.db'}"
    args = ["--recipe", "digits-mlp", "--runs", str(tmp_path / "runs"), "--set", "tune.steps=30", "--json"]
    assert main(["tune", "--storage", db, "--study", "lr-search", "--set", "tune.trials=2", *args]) == 0
    first = json.loads(capsys.readouterr().out)["items"][0]["metrics"]
    assert first["study"] == "lr-search" and first["storage"] == db and len(first["trials"]) == 2
    import optuna
    assert len(optuna.load_study(study_name="lr-search", storage=db).trials) == 2
    # the same study through the check and the plan's keys, with a larger budget: one more trial, the two kept
    assert main(["check", "tune", "--set", f'tune.storage="{db}"', "--set", 'tune.study="lr-search"',
                 "--set", "tune.trials=3", *args]) == 0
    again = json.loads(capsys.readouterr().out)["items"][0]["metrics"]
    assert sorted(t["trial"] for t in again["trials"]) == [0, 1, 2]
    assert {t["trial"]: t["val_loss"] for t in first["trials"]}.items() <= {t["trial"]: t["val_loss"]
                                                                          for t in again["trials"]}.items()


def test_the_bayesian_toolbox_is_optunas_tpe(tmp_path, capsys, monkeypatch):
    import optuna

    made = []
    original = optuna.samplers.TPESampler.__init__

    def spy(self, *args, **kwargs):
        made.append(kwargs.get("seed"))
        original(self, *args, **kwargs)
    monkeypatch.setattr(optuna.samplers.TPESampler, "__init__", spy)
    assert main(["check", "tune", "--recipe", "digits-mlp", "--runs", str(tmp_path), "--set", 'tune.sampler="tpe"',
                 "--set", "tune.trials=3", "--set", "tune.steps=30", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["items"][0]
    assert made and result["metrics"]["sampler"] == "tpe" and len(result["metrics"]["trials"]) == 3
