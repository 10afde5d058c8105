"""Driving a run from outside: the control file (what the app will write), `train --nproc N` (torchrun started for
the user), its signals and its exit codes."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import ControlFile, RunControl
from recipe_tui.core.events import LogLine
from recipe_tui.core.jobs import run_training
from recipe_tui.core.rundir import CONTROL, read_events

ENV = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recipe_tui.tui.cli", *args]


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events_of(run_dir):
    return list(read_events(run_dir / "events.jsonl")) if (run_dir / "events.jsonl").exists() else []


def last_step(run_dir) -> int:
    return max((e.step for e in events_of(run_dir) if e.type == "step"), default=0)


def logged(run_dir, text: str) -> bool:
    return any(e.type == "log" and text in e.message for e in events_of(run_dir))


def pause_run_stop(run_dir) -> None:
    """What the app will do: pause (steps stop advancing), resume (they advance again), stop."""
    wait_for(lambda: last_step(run_dir) >= 10, what="steps")
    (run_dir / CONTROL).write_text("pause\n")
    wait_for(lambda: logged(run_dir, "paused at step"), what="the run to pause")
    held = last_step(run_dir)
    time.sleep(1.0)
    assert last_step(run_dir) == held, "no step while paused"
    (run_dir / CONTROL).write_text("run\n")
    wait_for(lambda: logged(run_dir, "resumed at step"), what="the run to resume")
    wait_for(lambda: last_step(run_dir) > held + 10, what="steps after resuming")
    (run_dir / CONTROL).write_text("stop\n")


# ----------------------------------------------------------------------------- the control file, one process


@pytest.mark.timeout(120)
def test_control_file_pauses_resumes_and_stops_a_run(tmp_path):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    exp = exp.replace("train", steps=10**9, log_every=5, checkpoint_every=10**9, eval_every=10**9)
    started = threading.Event()
    result = {}

    def emit(e):
        if e.type == "run_started":
            result["run_dir"] = e.run_dir
            started.set()

    worker = threading.Thread(target=lambda: result.update(out=run_training(exp, RunControl(emit=emit),
                                                                             runs_root=tmp_path)))
    worker.start()
    try:
        assert started.wait(60)
        run_dir = tmp_path / "digits-mlp" / os.path.basename(result["run_dir"])
        pause_run_stop(run_dir)
    finally:
        worker.join(60)
    out = result["out"]
    assert out.status == "stopped"
    events = events_of(run_dir)
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == out.steps, "stopped with a checkpoint"

    (run_dir / CONTROL).write_text("stop\n")  # left over from the stopped run: must not stop the resumed one
    resumed = run_training(None, resume=run_dir, overrides=(f"train.steps={out.steps + 20}",))
    assert resumed.status == "completed" and resumed.steps == out.steps + 20
    assert not (run_dir / CONTROL).exists()


def test_control_file_words_and_throttle(tmp_path):
    path = tmp_path / CONTROL
    logs = []
    control = RunControl(emit=logs.append)
    watcher = ControlFile(path, control, interval_s=3600)
    path.write_text("pause")
    watcher.poll()
    assert control.pause.is_set(), "the first poll reads the file"
    path.write_text("run\n")
    watcher.poll()
    assert control.pause.is_set(), "then not again until interval_s has passed (no system call per step)"
    watcher = ControlFile(path, control, interval_s=0)
    assert not path.exists(), "a file present at the start is a leftover: removed"
    for word, stop, pause in (("PAUSE\n", False, True), (" run ", False, False), ("bogus", False, False),
                              ("stop", True, False)):
        path.write_text(word)
        watcher.poll()
        assert (control.stop.is_set(), control.pause.is_set()) == (stop, pause), word
    assert [e.message for e in logs if isinstance(e, LogLine)] == \
        ["control: ignored 'bogus' (expected one of stop, pause, run)"]


def test_nproc_must_be_a_positive_number():
    out = subprocess.run(cli("train", "--nproc", "0"), capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 2 and "--nproc" in out.stderr and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- train --nproc 2 (torchrun)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_nproc_group_pauses_resumes_and_stops_through_the_control_file(tmp_path):
    proc = subprocess.Popen(cli("train", "--nproc", "2", "--runs", str(tmp_path), "--set", "train.steps=100000000",
                                "--set", "train.log_every=5", "--set", "train.checkpoint_every=100000000", "--json"),
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        run_dir = wait_for(lambda: next((tmp_path / "digits-mlp").glob("*/events.jsonl"), None), what="a run dir").parent
        pause_run_stop(run_dir)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, "stopped: the exit code rank 0 reported, through torchrun"
    doc = json.loads(stdout)
    assert doc["status"] == "stopped" and doc["run_dir"] == str(run_dir)
    events = events_of(run_dir)
    assert events[-1].type == "finished" and events[-1].status == "stopped" and events[-1].step == doc["steps"]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == doc["steps"]
    assert json.loads((run_dir / "config.json").read_text())["train"]["nproc"] == 2


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_nproc_group_stops_cleanly_on_ctrl_c_or_sigterm(tmp_path, sig):
    proc = subprocess.Popen(cli("train", "--nproc", "2", "--runs", str(tmp_path), "--set", "train.steps=100000000",
                                "--set", "train.log_every=5", "--set", "train.checkpoint_every=100000000"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = wait_for(lambda: next((tmp_path / "digits-mlp").glob("*/events.jsonl"), None), what="a run dir").parent
        wait_for(lambda: last_step(run_dir) >= 10, what="steps")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "SignalException" not in stderr, "torchrun stays quiet"
    events = events_of(run_dir)
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == events[-1].step


FAILING = '''
import os
import torch
from torch.utils.data import Dataset
from recipe_tui.core.data.digits import digits_arrays

class Digits(Dataset):
    """Rank 1's copy fails at its 4,000th sample (mid-training), as a corrupt file on one machine would."""
    def __init__(self):
        x, y = digits_arrays()
        self.x, self.y, self.reads = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y), 0
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        self.reads += 1
        if os.environ.get("RANK") == "1" and self.reads > 4000:
            raise OSError("corrupt sample on rank 1")
        return self.x[i], self.y[i]

def make():
    return {"train": Digits(), "val": Digits()}
'''


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_failing_rank_ends_the_group_with_a_failed_event_instead_of_hanging(tmp_path):
    (tmp_path / "failing_data.py").write_text(FAILING)
    (tmp_path / "recipes.toml").write_text(
        '[recipe.failing]\ndata = { factory = "failing_data:make" }\nmodel = { name = "mlp", width = 32 }\n'
        'train = { steps = 1000, batch_size = 32, log_every = 5, eval_every = 100000, nproc = 2 }\n')
    t0 = time.time()
    out = subprocess.run(cli("train", "--json"), capture_output=True, text=True, cwd=tmp_path, env=ENV, timeout=200)
    assert out.returncode == 1, out.stderr[-3000:]
    assert time.time() - t0 < 150, "no collective waited for its timeout"
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["status"] == "failed" and doc["reason"]
    run_dir = next((tmp_path / "runs" / "failing").iterdir())
    events = events_of(run_dir)
    assert events[-1].type == "failed", [e.type for e in events[-3:]]
    assert "corrupt sample on rank 1" in out.stderr, "rank 1's own traceback is shown"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_config_error_inside_the_group_is_exit_2_with_one_sentence(tmp_path):
    out = subprocess.run(cli("train", "--nproc", "2", "--runs", str(tmp_path), "--set", "train.batch_size=1"),
                         capture_output=True, text=True, env=ENV, timeout=170)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("recipe-tui:")]
    assert lines == ["recipe-tui: train.batch_size 1 is smaller than the 2 processes training together: each needs "
                     "at least one sample of every batch."]
    assert "Traceback" not in out.stderr and "ChildFailedError" not in out.stderr
