"""Runs you can compare: run summaries, tags, ``recipe-tui runs [--json]`` and the overrides helper."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from recipe_tui.core.config import SECTIONS, ConfigError, apply_overrides, load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Eval, Step
from recipe_tui.core.jobs import run_training
from recipe_tui.core.overrides import format_value, overridable_keys, parse_override
from recipe_tui.core.rundir import read_events
from recipe_tui.core.runs import list_runs
from recipe_tui.tui.cli import main

pytestmark = pytest.mark.timeout(120)
ROW_KEYS = {"run_dir", "name", "status", "steps", "total_steps", "started", "seconds", "params", "changes", "tag",
            "train_loss", "val_loss", "metric", "alarms", "early_stop", "reason"}


def digits(**train):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    return exp.replace("train", **{"device": "cpu", "steps": 40, "eval_every": 20, **train})


def stop_at(step):
    control = RunControl()
    return control.with_emit(lambda e: isinstance(e, Step) and e.step >= step and control.stop.set())


@pytest.fixture
def three_runs(tmp_path):
    """A plain run, one with two overrides, one stopped part-way (by the recipe as opened: steps 40)."""
    runs = tmp_path / "runs"
    plain = run_training(digits(), runs_root=runs)
    changed = run_training(digits(), runs_root=runs, overrides=("train.lr=1e-3", "model.width=64"))
    stopped = run_training(digits(steps=400), control=stop_at(20), runs_root=runs)
    return runs, plain, changed, stopped


def test_runs_json_lists_three_runs_with_status_differences_and_losses(three_runs, capsys):
    runs, plain, changed, stopped = three_runs
    code = main(["runs", "--recipe", "digits-mlp", "--runs", str(runs), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["recipe"] == "digits-mlp" and len(doc["runs"]) == 3
    rows = {r["run_dir"]: r for r in doc["runs"]}
    assert all(set(r) == ROW_KEYS for r in doc["runs"])
    a, b, c = rows[str(plain.run_dir)], rows[str(changed.run_dir)], rows[str(stopped.run_dir)]
    assert (a["status"], b["status"], c["status"]) == ("completed", "completed", "stopped")
    # differences from the recipe as opened (the shipped digits-mlp: 1,500 steps, eval every 100, device auto)
    common = {"train.steps": 40, "train.eval_every": 20, "train.device": "cpu"}
    assert a["changes"] == common and b["changes"] == {**common, "train.lr": 1e-3, "model.width": 64}
    assert c["changes"] == {**common, "train.steps": 400} and c["steps"] < 400 and c["total_steps"] == 400
    for row, out in ((a, plain), (b, changed)):
        events = list(read_events(out.run_dir / "events.jsonl"))
        steps = [e.loss for e in events if isinstance(e, Step)]
        vals = [e for e in events if isinstance(e, Eval)]
        assert row["train_loss"] == {"final": steps[-1], "best": min(steps)}
        assert row["val_loss"] == {"final": vals[-1].loss, "best": min(v.loss for v in vals)}
        assert row["metric"]["name"] == "accuracy" and row["metric"]["final"] == out.final["accuracy"]
        assert row["steps"] == 40 and row["tag"] == {} and row["seconds"] > 0 and row["params"] > 0
    assert b["params"] < a["params"], "width 64 against the recipe's 128"


def test_runs_text_table(three_runs, capsys):
    runs, *_ = three_runs
    assert main(["runs", "--runs", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "status", "steps"] and len(lines) == 4
    assert "train.lr=0.001" in "\n".join(lines) and sum("stopped" in line for line in lines) == 1


def test_a_run_without_summary_is_replayed_from_its_events_and_a_killed_one_is_interrupted(three_runs):
    runs, plain, _, stopped = three_runs
    before = {r["run_dir"]: r for r in list_runs(runs, "digits-mlp")}
    (plain.run_dir / "summary.json").unlink()  # a run written before summaries existed
    after = {r["run_dir"]: r for r in list_runs(runs, "digits-mlp")}
    assert {k: v for k, v in after[str(plain.run_dir)].items() if k != "seconds"} == \
        {k: v for k, v in before[str(plain.run_dir)].items() if k != "seconds"}
    assert (plain.run_dir / "summary.json").is_file(), "kept for the next listing, the run having ended"
    # what a kill leaves: a summary saying "running", written by a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = stopped.run_dir / "summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps({**summary, "status": "running", "pid": int(dead.stdout)}))
    assert {r["run_dir"]: r["status"] for r in list_runs(runs, "digits-mlp")}[str(stopped.run_dir)] == "interrupted"
    path.write_text(json.dumps({**summary, "status": "running", "pid": os.getpid()}))
    assert {r["run_dir"]: r["status"] for r in list_runs(runs, "digits-mlp")}[str(stopped.run_dir)] == "running"


def test_a_resumed_run_keeps_its_tag_and_its_summary_continues(tmp_path):
    tag = {"kind": "capacity", "group": "g1", "label": "width ×2"}
    part = run_training(digits(steps=60, checkpoint_every=20), control=stop_at(30), runs_root=tmp_path, tag=tag)
    assert list_runs(tmp_path, "digits-mlp")[0]["status"] == "stopped"
    full = run_training(None, runs_root=tmp_path, resume=part.run_dir, known={"digits-mlp": digits()})
    row = list_runs(tmp_path, "digits-mlp")[0]
    assert full.status == "completed" and row["status"] == "completed" and row["steps"] == 60 and row["tag"] == tag
    started = [e for e in read_events(part.run_dir / "events.jsonl") if e.type == "run_started"]
    assert [e.tag for e in started] == [tag, tag]


def test_overrides_helper_types_like_set_and_lists_every_key():
    exp = digits()
    keys = {k.key: k for k in overridable_keys(exp)}
    assert {f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)} <= set(keys)
    assert keys["train.lr"].value == 3e-3 and keys["train.lr"].range == "(0, 10]" and keys["train.lr"].kind == "float"
    assert keys["train.optimizer"].choices == ("adam", "adamw", "sgd") and keys["data.limit"].kind == "int?"
    for k in keys.values():  # each current value, written back as text, parses to itself
        if k.text:
            assert parse_override(exp, k.key, k.text)[1] == k.value, k.key
    new, value = parse_override(exp, "model.width", "64")
    assert value == 64 and new.model.width == 64
    for key, text in (("train.lr", "fast"), ("train.lr", "0"), ("trian.lr", "1"), ("model.widht", "3")):
        with pytest.raises(ConfigError) as ours:
            parse_override(exp, key, text)
        with pytest.raises(ConfigError) as theirs:
            apply_overrides(exp, [f"{key}={text}"])
        assert str(ours.value) == str(theirs.value)
    assert format_value({"a b": 1, "c": [True, "x"]}) == '{ "a b" = 1, c = [true, "x"] }'
