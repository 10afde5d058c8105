"""Run dir contents, atomic checkpoints, and resuming: killed or stopped runs continue exactly."""
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
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Step
from recipe_tui.core.jobs import latest_run, run_training
from recipe_tui.core.rundir import RunDir, read_events


def exp_with(**train):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    return exp.replace("train", **train).replace("model", dropout=0.3)


@pytest.mark.timeout(120)
def test_run_dir_layout_and_metrics(tmp_path):
    out = run_training(exp_with(steps=40, log_every=10, eval_every=20, checkpoint_every=20), runs_root=tmp_path)
    assert out.status == "completed" and out.steps == 40
    assert out.run_dir.parent == tmp_path / "digits-mlp" and latest_run(tmp_path, "digits-mlp") == out.run_dir
    names = sorted(p.name for p in out.run_dir.iterdir())
    assert names == ["checkpoint.pt", "config.json", "events.jsonl", "metrics.csv", "summary.json"]
    types = [e.type for e in read_events(out.run_dir / "events.jsonl")]
    assert types[0] == "run_started" and types[-1] == "finished"
    # steps 1 (the loss at init), 10, 20, 30, 40; each evaluation is followed by the fixed batch's predictions
    assert types.count("step") == 5 and types.count("eval") == 2 and types.count("checkpoint") == 2
    assert types.count("predictions") == 2
    rows = (out.run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,split,loss,accuracy,lr,grad_norm" and len(rows) == 1 + 5 + 2
    config = json.loads((out.run_dir / "config.json").read_text())
    assert config["train"]["steps"] == 40 and config["name"] == "digits-mlp"
    state = torch.load(out.run_dir / "checkpoint.pt", weights_only=True)
    assert state["step"] == 40


@pytest.mark.timeout(120)
def test_stopped_then_resumed_equals_uninterrupted(tmp_path, steps_at_once):
    full = run_training(exp_with(steps=120, log_every=10, eval_every=1000, checkpoint_every=1000), runs_root=tmp_path / "a")
    reference = {e.step: e.loss for e in read_events(full.run_dir / "events.jsonl") if isinstance(e, Step)}

    stop = threading.Event()

    def emit(e):
        if isinstance(e, Step) and e.step == 50:
            stop.set()

    part = run_training(exp_with(steps=120, log_every=10, eval_every=1000, checkpoint_every=1000), RunControl(emit=emit, stop=stop),
                        runs_root=tmp_path / "b")
    assert part.status == "stopped" and part.steps == 50
    resumed = run_training(None, resume=part.run_dir)
    assert resumed.status == "completed" and resumed.steps == 120 and resumed.run_dir == part.run_dir
    ours = {e.step: e.loss for e in read_events(part.run_dir / "events.jsonl") if isinstance(e, Step)}
    assert sorted(ours) == sorted(reference)
    for step in reference:
        assert round(ours[step], 5) == round(reference[step], 5), step


def _cli(*args):
    return [sys.executable, "-m", "recipe_tui.tui.cli", *args]


@pytest.mark.timeout(180)
def test_sigkill_mid_run_then_resume(tmp_path):
    proc = subprocess.Popen(_cli("train", "--runs", str(tmp_path), "--set", "train.steps=1000000",
                                 "--set", "train.log_every=1", "--set", "train.checkpoint_every=25"),
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        run = None
        while time.time() < deadline:
            run = latest_run(tmp_path, "digits-mlp")
            if run and (run / "checkpoint.pt").exists() and (run / "events.jsonl").stat().st_size > 20_000:
                break
            time.sleep(0.05)
        assert run is not None, "training never started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = (run / "events.jsonl").read_bytes().split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for line in complete:
        json.loads(line)  # every complete line parses
    events = list(read_events(run / "events.jsonl"))  # a torn tail (if any) is skipped, not an error
    assert len(events) == len(complete)
    ckpt_step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    # The checkpoint is a whole one, of a checkpoint step, at most one ahead of the last one the events record
    # (the kill may land between the rename and the event); anything else left behind is the next one's temp file.
    saved = [e.step for e in events if e.type == "checkpoint"]
    assert ckpt_step > 0 and ckpt_step % 25 == 0, ckpt_step
    assert saved and ckpt_step in (saved[-1], saved[-1] + 25), (ckpt_step, saved[-3:])
    assert {p.name for p in run.iterdir()} <= {"checkpoint.pt", "checkpoint.pt.tmp", "config.json", "events.jsonl",
                                               "metrics.csv", "summary.json", "summary.json.tmp"}

    out = subprocess.run(_cli("train", "--resume", str(run), "--set", f"train.steps={ckpt_step + 30}", "--json"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "completed" and doc["steps"] == ckpt_step + 30 and doc["run_dir"] == str(run)
    assert set(doc["final"]) == {"loss", "accuracy"}
    after = (run / "events.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in after), "resuming trimmed the torn line before appending"
    assert json.loads(after[-1])["type"] == "finished"
    assert tail == b"" or not tail.endswith(b"}"), "the only possibly bad line is the last one"


def test_reader_skips_only_a_torn_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type":"log","message":"a"}\n{"type":"log","mess')
    assert [e.message for e in read_events(path)] == ["a"]
    path.write_text('{"type":"log","mess\n{"type":"log","message":"a"}\n')
    with pytest.raises(json.JSONDecodeError):
        list(read_events(path))
    (tmp_path / "config.json").write_text("{}")
    path.write_text('{"type":"log","message":"a"}\n{"type":"lo')
    RunDir.open(tmp_path)
    assert path.read_text() == '{"type":"log","message":"a"}\n'


@pytest.mark.timeout(120)
def test_user_code_failure_is_a_failed_result_not_a_crash(tmp_path):
    (tmp_path / "bad_data.py").write_text(
        "import torch\nfrom torch.utils.data import Dataset\n"
        "class Bad(Dataset):\n    def __len__(self): return 100\n"
        "    def __getitem__(self, i):\n        if i == 7: raise ValueError('corrupt sample 7')\n"
        "        return torch.zeros(4), 0\n"
        "def make():\n    return {'train': Bad(), 'val': Bad()}\n")
    (tmp_path / "recipes.toml").write_text(
        '[recipe.bad]\ndata = { factory = "bad_data:make" }\nmodel = { name = "linear" }\n'
        'train = { steps = 50, batch_size = 10 }\n')
    out = subprocess.run(_cli("train", "--json"), capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    assert doc["status"] == "failed" and "corrupt sample 7" in doc["reason"]
    events = list(read_events(latest_run(tmp_path / "runs", "bad") / "events.jsonl"))
    assert events[-1].type == "failed" and "Traceback" in events[-1].detail


FACTORY = '''
import torch
from torch.utils.data import Dataset
from recipe_tui.core.data.digits import digits_arrays

class Plain(Dataset):
    """Not in-memory TensorPairs: batches go through a DataLoader."""
    def __init__(self, lo, hi):
        x, y = digits_arrays()
        self.x = torch.tensor(x[lo:hi], dtype=torch.float64) / 16  # numpy-style float64 inputs
        self.y = torch.tensor(y[lo:hi], dtype=torch.int32)        # and int32 labels
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return self.x[i], self.y[i]

def make():
    return {"train": Plain(0, 1400), "val": Plain(1400, 1797)}
'''


@pytest.mark.timeout(120)
def test_resume_equals_uninterrupted_for_dataloader_datasets(tmp_path, steps_at_once):
    """A DataLoader draws its seed from the global RNG unless given a generator: dropout would then differ."""
    (tmp_path / "plain_data.py").write_text(FACTORY)
    (tmp_path / "recipes.toml").write_text(
        '[recipe.plain]\ndata = { factory = "plain_data:make" }\nmodel = { name = "mlp", width = 32, dropout = 0.3 }\n'
        'train = { steps = 60, log_every = 5, eval_every = 20, checkpoint_every = 20 }\n')
    exp = load_recipes(tmp_path / "recipes.toml").experiment(None)
    full = run_training(exp, runs_root=tmp_path / "a")
    assert full.status == "completed", full.reason
    reference = [(e.type, e.step, round(e.loss, 5)) for e in read_events(full.run_dir / "events.jsonl")
                 if e.type in ("step", "eval")]

    stop = threading.Event()
    part = run_training(exp, RunControl(emit=lambda e: isinstance(e, Step) and e.step == 25 and stop.set(), stop=stop),
                        runs_root=tmp_path / "b")
    assert part.status == "stopped"
    assert run_training(None, resume=part.run_dir, known={exp.name: exp}).status == "completed"
    ours = [(e.type, e.step, round(e.loss, 5)) for e in read_events(part.run_dir / "events.jsonl")
            if e.type in ("step", "eval")]
    assert ours == reference, "same losses and evaluations, none repeated"


@pytest.mark.timeout(60)
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    from recipe_tui.core.config import ConfigError

    exp = exp_with(steps=5)
    run = RunDir.create(tmp_path, exp.name)
    run.write_config(exp)
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_training(None, resume=run.path)
