"""The CPU thread count: train.threads, auto's timed choice on a copy of the model, and what it must not change."""
from __future__ import annotations

import pytest
import torch

from recipe_tui.core import threads
from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import LogLine, RunStarted, Step
from recipe_tui.core.jobs import run_training
from recipe_tui.core.models import build_model
from recipe_tui.core.trainer import Trainer, make_optimizer, seed_everything


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def digits(**train):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    return exp.replace("train", **{"eval_every": 10**6, "checkpoint_every": 10**6, **train})


def losses(exp, n_threads: int) -> list[float]:
    torch.set_num_threads(n_threads)
    seed_everything(exp.train.seed)
    splits = load_data(exp)
    events: list = []
    Trainer(build_model(exp, splits.info), exp.task, splits.train, None, exp.train,
            RunControl(emit=events.append), device=torch.device("cpu")).fit()
    return [e.loss for e in events if isinstance(e, Step)]


@pytest.mark.timeout(120)
def test_the_thread_count_changes_the_losses_by_float_noise_at_most(restore_threads):
    exp = digits(steps=200, log_every=10)
    one, two = losses(exp, 1), losses(exp, 2)
    assert len(one) == len(two) == 21
    assert one == pytest.approx(two, rel=1e-4, abs=1e-6)


@pytest.mark.timeout(60)
def test_auto_times_both_counts_on_a_copy_and_keeps_the_faster(restore_threads):
    exp = digits()
    splits = load_data(exp)
    seed_everything(1)
    model = build_model(exp, splits.info)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    x, y = splits.train.x[:64], splits.train.y[:64]
    step = threads.scratch_step(model, torch.nn.functional.cross_entropy, lambda m: make_optimizer(m, exp.train), x, y)
    choice = threads.choose(0, step, options=[1, 2])
    assert choice.how == "auto" and set(choice.ms_per_step) == {1, 2}
    fastest = min(choice.ms_per_step.values())
    assert choice.ms_per_step[choice.threads] <= fastest * threads.NEAR_TIE
    assert choice.threads == min(n for n, ms in choice.ms_per_step.items() if ms <= fastest * threads.NEAR_TIE)
    assert torch.get_num_threads() == choice.threads
    assert "ms/step" in choice.describe() and choice.describe().startswith(f"torch threads: {choice.threads} (auto")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the run's model is untouched"
    assert torch.equal(rng, torch.get_rng_state()), "the run's random numbers are untouched"


def test_a_slow_step_is_not_timed_again_and_the_recipe_count_wins(restore_threads):
    calls = []
    slow = threads.choose(0, lambda: calls.append(torch.get_num_threads()), options=[1, 2], budget_s=-1.0)
    assert calls == [2] and slow.threads == 2 and "too long" in slow.describe()
    assert threads.choose(3, None) == threads.ThreadChoice(3, "recipe") and torch.get_num_threads() == 3
    assert threads.choose(0, None).how == "default"


@pytest.mark.timeout(120)
def test_a_run_reports_its_count_and_a_resumed_run_keeps_it(tmp_path, monkeypatch, restore_threads):
    monkeypatch.setattr(threads, "candidates", lambda: [1, 2])
    events: list = []
    out = run_training(digits(steps=40, checkpoint_every=20), RunControl(emit=events.append), runs_root=tmp_path)
    started = next(e for e in events if isinstance(e, RunStarted))
    line = next(e.message for e in events if isinstance(e, LogLine) and e.message.startswith("torch threads"))
    assert started.threads in (1, 2) and line.startswith(f"torch threads: {started.threads} (auto: 1 thread ")
    assert torch.load(out.run_dir / "checkpoint.pt", weights_only=True)["threads"] == started.threads
    other = 3 - started.threads
    torch.set_num_threads(other)
    again: list = []
    run_training(None, RunControl(emit=again.append), resume=out.run_dir, overrides=("train.steps=60",))
    assert next(e for e in again if isinstance(e, RunStarted)).threads == started.threads
    assert any(isinstance(e, LogLine) and e.message == f"torch threads: {started.threads} (as the checkpoint's run)"
               for e in again)
    fixed: list = []
    run_training(digits(steps=20, threads=2), RunControl(emit=fixed.append), runs_root=tmp_path / "fixed")
    assert next(e for e in fixed if isinstance(e, RunStarted)).threads == 2
