"""Faults the tool must survive (issue 14): results that do not lie, one bad record, faulty user code, a runs dir
that cannot be written, a run that never starts. In-process (``main([...])``) where it can be: fast."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from recipe_tui.core import rundir
from recipe_tui.core.config import ConfigError, load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.jobs import latest_run, run_training
from recipe_tui.core.rundir import RunDir, read_events
from recipe_tui.tui.cli import main

pytestmark = pytest.mark.timeout(120)

# User code, written into each test's folder: a model and a dataset that misbehave on demand.
FAULTY = '''
import os, sys, time
import torch
import torch.nn as nn
from torch.utils.data import Dataset
from recipe_tui.core.data import TensorPairs
from recipe_tui.core.data.digits import digits_arrays


class Net(nn.Module):
    """An MLP on digits that misbehaves at its ``at``-th training forward (1-based), as ``fault`` says."""
    def __init__(self, fault="", at=0):
        super().__init__()
        if fault == "init":
            raise RuntimeError("model init failed on purpose")
        if fault == "huge":
            self.big = nn.Parameter(torch.empty(2**62))  # cannot be allocated
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.fault, self.at, self.calls = fault, at, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        out = self.net(x)
        if self.training and self.calls >= self.at > 0:
            if self.fault == "forward":
                raise ValueError(f"forward failed on purpose at call {self.calls}")
            if self.fault == "nan":
                return out * float("nan")
            if self.fault == "exit":
                sys.exit(3)
            if self.fault == "shape":
                return out[:, :3]
        return out


def model(fault="", at=0):
    return Net(fault, at)


class Digits(Dataset):
    """Digits through __getitem__ (no targets attribute): ``bad`` raises, ``odd`` has another shape."""
    def __init__(self, lo, hi, bad=-1, odd=-1):
        x, y = digits_arrays()
        self.x = torch.tensor(x[lo:hi], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
        self.y = torch.tensor(y[lo:hi])
        self.bad, self.odd = bad, odd

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if i == self.bad:
            raise OSError(f"sample {i} is corrupt")
        if i == self.odd:
            return torch.zeros(1, 9, 9), self.y[i]
        return self.x[i], self.y[i]


def data(bad=-1, odd=-1, empty=False, exit=False):
    if exit:
        sys.exit(4)
    return {"train": Digits(0, 0 if empty else 1400, bad, odd), "val": Digits(1400, 1797)}
'''


def faulty(tmp_path: Path, model: str = "", data: str = "", train: str = "steps = 60, batch_size = 16") -> Path:
    """A recipes file whose one experiment uses the faulty model/data with the given kwargs (TOML inline)."""
    (tmp_path / "faulty.py").write_text(FAULTY)
    path = tmp_path / "recipes.toml"
    path.write_text(
        "[recipe.faulty]\n"
        f'data = {{ factory = "faulty:data", kwargs = {{ {data} }} }}\n'
        f'model = {{ factory = "faulty:model", kwargs = {{ {model} }} }}\n'
        f"train = {{ {train}, log_every = 1, eval_every = 20, checkpoint_every = 20 }}\n")
    return path


def run_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    """(exit code, the --json document or None, stderr) of an in-process command."""
    code = main(list(argv))
    out = capsys.readouterr()
    doc = json.loads(out.out) if out.out.strip() else None
    return code, doc, out.err


# -- results that do not lie ------------------------------------------------------------------------------

def test_a_failed_run_reports_the_steps_it_trained(tmp_path, capsys):
    path = faulty(tmp_path, model='fault = "forward", at = 50')
    code, doc, err = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json")
    assert code == 1 and doc["status"] == "failed" and doc["steps"] == 49, doc
    assert "forward failed on purpose at call 50" in doc["reason"] and "training failed" in err
    events = list(read_events(Path(doc["run_dir"]) / "events.jsonl"))
    assert events[-1].type == "failed" and events[-1].step == 49  # what the app's status line shows


def test_no_validation_split_means_no_validation_numbers(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, doc, err = run_cli(capsys, "train", "--runs", str(runs), "--json", "--set", "data.val_fraction=0",
                             "--set", "train.steps=30", "--set", "train.eval_every=10")
    assert code == 0 and doc["status"] == "completed"
    assert doc["final"]["loss"] is None and "accuracy" not in doc["final"] and doc["final"]["train_loss"] > 0
    assert "no validation split" in doc["note"]
    run = Path(doc["run_dir"])
    assert not [e for e in read_events(run / "events.jsonl") if e.type == "eval"]
    assert not [row for row in (run / "metrics.csv").read_text().splitlines() if ",val," in row]
    assert any("no validation split" in e.message for e in read_events(run / "events.jsonl") if e.type == "log")


def test_sys_exit_in_user_code_is_a_failed_run_not_the_exit_code(tmp_path, capsys):
    path = faulty(tmp_path, model='fault = "exit", at = 5')
    code, doc, _ = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json")
    assert code == 1 and doc["status"] == "failed" and "sys.exit(3)" in doc["reason"] and doc["steps"] == 4
    code, doc, _ = run_cli(capsys, "check", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json",
                           "overfit-batch")
    assert code == 1 and doc["items"][0]["status"] == "error" and "sys.exit(3)" in doc["items"][0]["summary"]
    exiting = faulty(tmp_path, data="exit = true")
    code, doc, _ = run_cli(capsys, "train", "--file", str(exiting), "--runs", str(tmp_path / "runs"), "--json")
    assert code == 1 and doc["status"] == "failed" and "sys.exit(4)" in doc["reason"]


# -- faulty user code: exit 1 with the cause ---------------------------------------------------------------

# (name, model kwargs, data kwargs, what the reason says); benchmarks/faults.py runs them too, in the app as well.
FAULTY_CASES = [
    ("model-init-raises", 'fault = "init"', "", "model init failed on purpose"),
    ("forward-raises", 'fault = "forward", at = 3', "", "forward failed on purpose at call 3"),
    ("nan-at-step-30", 'fault = "nan", at = 30', "", "loss became nan"),
    ("wrong-output-shape", 'fault = "shape", at = 1', "", "IndexError: Target"),
    ("huge-allocation", 'fault = "huge"', "", "RuntimeError"),
    ("getitem-raises", "", "bad = 3", "sample 3 is corrupt"),
    ("mixed-shapes", "", "odd = 5", "stack expects each tensor to be equal size"),
]
FAULTY_TRAIN = "steps = 120, batch_size = 400"


@pytest.mark.parametrize("model, data, cause", [pytest.param(*case[1:], id=case[0]) for case in FAULTY_CASES])
def test_faulty_user_code_fails_the_run_with_its_cause(tmp_path, capsys, model, data, cause):
    path = faulty(tmp_path, model=model, data=data, train=FAULTY_TRAIN)
    code, doc, err = run_cli(capsys, "train", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json")
    assert code == 1 and doc["status"] == "failed" and cause in doc["reason"], (doc, err)
    assert "Traceback" not in err


def test_an_empty_train_split_is_one_clear_sentence(tmp_path, capsys):
    path = faulty(tmp_path, data="empty = true")
    for argv in (["train"], ["check", "init-loss"]):
        code, doc, err = run_cli(capsys, *argv, "--file", str(path), "--runs", str(tmp_path / "runs"))
        assert code == 2 and doc is None, err
        assert "the train split is empty: 'faulty:data' returned 0 training samples" in err
        assert [line for line in err.splitlines() if not line.startswith("…")] == [err.splitlines()[-1]]
        assert "IndexError" not in err
    assert latest_run(tmp_path / "runs", "faulty") is None


def test_one_unreadable_sample_is_a_finding_not_the_end_of_every_check(tmp_path, capsys):
    """No ``targets`` attribute and one sample that raises: the labels come from the others, data-stats
    names the sample, the model checks run."""
    path = faulty(tmp_path, data="bad = 5")
    code, doc, _ = run_cli(capsys, "check", "--file", str(path), "--runs", str(tmp_path / "runs"), "--json",
                           "data-stats", "class-balance", "init-loss", "output-range")
    status = {item["id"]: item for item in doc["items"]}
    assert status["data-stats"]["status"] == "fail" and "train #5" in status["data-stats"]["summary"]
    assert "load-error" in status["data-stats"]["summary"]
    assert {status[i]["status"] for i in ("class-balance", "init-loss", "output-range")} <= {"pass", "warn"}, doc


# -- a run that never starts leaves nothing; a runs dir that cannot be written -----------------------------

def test_a_run_stopped_or_failing_while_it_starts_leaves_no_run_dir(tmp_path):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp").replace("train", steps=50)
    stop = threading.Event()
    stop.set()
    out = run_training(exp, RunControl(stop=stop), runs_root=tmp_path)
    assert out.status == "stopped" and out.run_dir is None and out.steps == 0
    offline = exp.replace("data", source="mnist", root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(ConfigError, match="mnist is not in"):
        run_training(offline, runs_root=tmp_path)
    broken = load_recipes(faulty(tmp_path, data="exit = true")).experiment(None)
    out = run_training(broken, runs_root=tmp_path)
    assert out.status == "failed" and out.run_dir is None
    assert latest_run(tmp_path, "digits-mlp") is None and latest_run(tmp_path, "faulty") is None


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nothing can be written in: permissions where they apply, a read-only tmpfs for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("root without a way to make a read-only folder (mount)")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_read_only_runs_dir_is_refused_before_training(read_only_dir, capsys):
    code, doc, err = run_cli(capsys, "train", "--runs", str(read_only_dir / "runs"), "--json")
    assert code == 2 and doc is None
    assert err.startswith("recipe-tui: cannot write to") and "--runs DIR" in err and len(err.splitlines()) == 1


def test_too_little_disk_space_is_refused_before_training(tmp_path, capsys, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: real(p)._replace(free=50_000))
    code, _, err = run_cli(capsys, "train", "--runs", str(tmp_path), "--set", "train.steps=5")
    assert code == 2 and "not enough disk space" in err and "MiB are free" in err
    assert latest_run(tmp_path, "digits-mlp") is None


def test_a_failed_checkpoint_write_keeps_the_previous_one_and_says_so(tmp_path, monkeypatch):
    real_save, calls = torch.save, []

    def save(state, f):  # the first checkpoint is written; every later one runs out of space half-way
        calls.append(state["step"])
        if len(calls) > 1:
            f.write(b"\0" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(state, f)

    monkeypatch.setattr(rundir.torch, "save", save)
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp").replace(
        "train", steps=60, checkpoint_every=20, eval_every=1000)
    out = run_training(exp, runs_root=tmp_path)
    assert out.status == "completed" and calls == [20, 40, 60]
    assert torch.load(out.run_dir / "checkpoint.pt", weights_only=True)["step"] == 20
    assert not (out.run_dir / "checkpoint.pt.tmp").exists()
    warnings = [e.message for e in read_events(out.run_dir / "events.jsonl") if e.type == "log" and e.level == "warning"]
    assert warnings == [f"checkpoint at step {s} not written: No space left on device; the previous checkpoint "
                        "(step 20) is intact" for s in (40, 60)]
    assert run_training(None, resume=out.run_dir).status == "completed"  # resumes from step 20


def test_events_that_cannot_be_written_fail_the_run_with_the_reason(tmp_path, monkeypatch):
    real_record = RunDir.record

    def record(self, event):
        if event.type == "step" and event.step >= 30:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_record(self, event)

    monkeypatch.setattr(RunDir, "record", record)
    seen = []
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp").replace("train", steps=100, log_every=10)
    out = run_training(exp, RunControl(emit=seen.append), runs_root=tmp_path)
    assert out.status == "failed" and out.steps == 30
    assert out.reason == f"RunDirUnwritable: cannot write to the run dir {out.run_dir}: No space left on device"
    assert seen[-1].type == "failed"  # the screen still hears of it
