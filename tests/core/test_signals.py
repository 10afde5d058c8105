"""Headless ``train`` under real signals (issue 14 holes 1 and 4): SIGTERM, SIGHUP and SIGINT stop it cleanly
(checkpoint, a ``finished`` event with status ``stopped``, exit 130, no DataLoader worker left behind), and
user code that never returns cannot keep it from exiting."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from recipe_tui.core.config import load_recipes
from recipe_tui.core.jobs import latest_run, run_training
from recipe_tui.core.rundir import read_events
from recipe_tui.tui.shutdown import GRACE_S

pytestmark = pytest.mark.timeout(180)

USER_CODE = '''
import os, time
import torch
import torch.nn as nn
from torch.utils.data import Dataset
from recipe_tui.core.data.digits import digits_arrays


class Digits(Dataset):
    """Not in-memory tensors: batches go through a DataLoader (with worker processes when asked)."""
    def __init__(self, lo, hi):
        x, y = digits_arrays()
        self.x = torch.tensor(x[lo:hi], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16
        self.y = torch.tensor(y[lo:hi])
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return self.x[i], self.y[i]


def data():
    return {"train": Digits(0, 1400), "val": Digits(1400, 1797)}


class Net(nn.Module):
    """An MLP with dropout; its forward sleeps for an hour from the ``hang_at``-th training call on."""
    def __init__(self, hang_at=0):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10))
        self.hang_at, self.calls = hang_at, 0
    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls >= self.hang_at > 0:
                time.sleep(3600)
        return self.net(x)


def model(hang_at=0):
    return Net(hang_at)
'''


def recipes(folder: Path, hang_at: int = 0, workers: int = 0) -> Path:
    (folder / "user_code.py").write_text(USER_CODE)
    path = folder / "recipes.toml"
    path.write_text('[recipe.sig]\ndata = { factory = "user_code:data" }\n'
                    f'model = {{ factory = "user_code:model", kwargs = {{ hang_at = {hang_at} }} }}\n'
                    f"train = {{ steps = 1000000, batch_size = 16, log_every = 1, checkpoint_every = 25, "
                    f"eval_every = 100000, num_workers = {workers} }}\n")
    return path


def start(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recipe_tui.tui.cli", "train", "--json", *extra],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for_steps(folder: Path, proc: subprocess.Popen, steps: int) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = latest_run(folder / "runs", "sig")
        if run is not None and (run / "checkpoint.pt").exists():
            if sum(1 for line in (run / "events.jsonl").read_text().splitlines() if '"step"' in line) >= steps:
                return run
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not start")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_headless_training_cleanly_and_leaves_no_worker(tmp_path, sig):
    recipes(tmp_path, workers=2)
    proc = start(tmp_path)
    try:
        run = wait_for_steps(tmp_path, proc, 40)
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert len(workers) == 2, workers  # the DataLoader's worker processes
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert f"{sig.name}: stopping" in err
    doc = json.loads(out)
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped" and doc["status"] == "stopped"
    assert doc["steps"] == events[-1].step == torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in workers), "DataLoader workers outlived the process"


def test_training_resumed_after_sigterm_gives_the_losses_of_an_uninterrupted_run(tmp_path):
    path = recipes(tmp_path)
    proc = start(tmp_path)
    try:
        run = wait_for_steps(tmp_path, proc, 30)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    stopped_at = json.loads(out)["steps"]
    total = stopped_at + 40
    done = subprocess.run([sys.executable, "-m", "recipe_tui.tui.cli", "train", "--resume", str(run), "--json",
                           "--set", f"train.steps={total}"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and json.loads(done.stdout)["steps"] == total, done.stderr
    exp = load_recipes(path).experiment(None).replace("train", steps=total)
    reference = run_training(exp, runs_root=tmp_path / "reference")
    losses = {e.step: round(e.loss, 5) for e in read_events(reference.run_dir / "events.jsonl") if e.type == "step"}
    ours = {e.step: round(e.loss, 5) for e in read_events(run / "events.jsonl") if e.type == "step"}
    assert ours == losses


@pytest.mark.parametrize("second", [False, True], ids=["waits-the-grace-period", "second-ctrl-c-exits-at-once"])
def test_user_code_that_never_returns_cannot_keep_train_from_exiting(tmp_path, second):
    recipes(tmp_path, hang_at=40)
    proc = start(tmp_path)
    try:
        # The trainer emits log steps in batches (every 0.2 s, and before a checkpoint): those of steps 26-39 are
        # still held when the 40th forward hangs. The checkpoint at 25 writes its steps first.
        run = wait_for_steps(tmp_path, proc, 25)
        time.sleep(1.0)  # steps 26-39 take milliseconds: then into the 40th forward, which sleeps
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        if second:
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        waited = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    if second:
        assert "SIGINT again: exiting without waiting for the job." in err and out == ""
        assert waited < GRACE_S
        return
    assert waited >= GRACE_S - 0.5
    assert "did not return within 5 s of the stop" in err and "user_code.py:" in err and "in forward" in err
    assert f"recipe-tui train --resume {run.relative_to(tmp_path)}" in err
    doc = json.loads(out)
    assert doc["status"] == "stopped" and doc["steps"] == 25 and "did not return" in doc["reason"]
    last = list(read_events(run / "events.jsonl"))[-1]
    assert last.type == "log" and last.level == "warning" and "did not return" in last.message
