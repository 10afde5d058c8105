"""Quitting the app (issue 13 item 1, issue 14 holes 1, 2, 4): ``q`` asks while a job runs, stopping writes a
checkpoint and one line says how to resume, a run still starting leaves no run dir, user code that never returns
cannot keep the app from exiting, and SIGTERM / SIGHUP / SIGINT quit like ``q`` answered with yes."""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from recipe_tui.core.jobs import latest_run
from recipe_tui.core.rundir import read_events
from recipe_tui.tui import jobs
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.widgets.quit_screen import QuitScreen

from tui_helpers import app_process, make_recipes, screen_text, signal_after_checkpoint, wait_for

pytestmark = pytest.mark.timeout(120)

STUCK_MODEL = '''
import threading
import torch.nn as nn

RELEASE = threading.Event()  # the test sets it once the app is gone, so the stuck thread ends
HUNG = threading.Event()  # set when the 40th forward starts waiting


class Stuck(nn.Module):
    """An MLP whose 40th training forward blocks, as a stuck DataLoader worker or collective would."""
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 40:
                HUNG.set()
                RELEASE.wait(60)
        return self.net(x)


def make():
    return Stuck()
'''

SLOW_DATA = '''
import time
from recipe_tui.core.data.digits import load_digits

CALLS = []


def make(exp=None):
    """Digits; every load after the app's first one (the training's own) takes a while."""
    from recipe_tui.core.config import load_recipes
    CALLS.append(1)
    if len(CALLS) > 1:
        time.sleep(1.5)
    splits = load_digits(load_recipes(None).experiment("digits-mlp"))
    return {"train": splits.train, "val": splits.val}
'''


def add_recipe(folder: Path, text: str) -> Path:
    path = make_recipes(folder, extra=False)
    path.write_text(path.read_text() + text)
    return path


async def test_q_during_training_asks_then_stops_with_a_checkpoint_and_says_how_to_resume(tmp_path):
    recipes = make_recipes(tmp_path, steps=500_000, checkpoint_every=10_000)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.state.step >= 50, what="training to run")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen) and "Stop it and quit?" in screen_text(app)
        assert "Detach" not in screen_text(app), "training inside the app cannot outlive it"
        asked_at = app.home.state.step
        await wait_for(pilot, lambda: app.home.state.step > asked_at + 20, what="training to go on while asking")
        await pilot.press("n")
        assert not isinstance(app.screen, QuitScreen) and app.return_code is None and app.home.jobs.current
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert app.return_code == 0
    run = latest_run(runs, "digits-mlp")
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert events[-2].type == "checkpoint" and events[-2].step == events[-1].step
    assert (run / "checkpoint.pt").is_file() and not (run / "checkpoint.pt.tmp").exists()
    line, = app.exit_lines
    assert f"stopped at step {events[-1].step:,} of 500,000" in line
    assert line.endswith(f"continue it with: recipe-tui train --resume {run} --file {recipes}")


async def test_q_when_no_job_runs_quits_at_once_also_after_a_failed_job(tmp_path):
    recipes = make_recipes(tmp_path, source="no-such-source", extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.jobs.current is None and "train failed" in " ".join(
            app.home.run_log.messages()), what="the train job to fail")
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, timeout=5, what="the app to exit")
    assert app.return_code == 0 and app.exit_lines == []


async def test_quitting_while_the_run_is_starting_leaves_no_run_dir(tmp_path):
    recipes = add_recipe(tmp_path, '\n[recipe.slow]\ndata = { factory = "slow_data:make" }\n'
                                   'model = { name = "mlp", width = 16 }\n')
    (tmp_path / "slow_data.py").write_text(SLOW_DATA)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, recipe="slow", runs=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.home.splits is not None, timeout=60, what="the data to load")
        await pilot.press("t")
        assert app.home.jobs.current is not None and app.home.jobs.current.kind == "train"
        await pilot.press("q", "y")  # the training's own data load is still sleeping
        await wait_for(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert latest_run(runs, "slow") is None and not list((runs / "slow").glob("2*"))
    assert app.exit_lines == []


async def test_user_code_that_never_returns_cannot_keep_the_app_from_exiting(tmp_path, monkeypatch):
    monkeypatch.setitem(jobs.QUIT_WAIT_S, "train", 1.0)  # the grace period, short for the test
    recipes = add_recipe(tmp_path, '\n[recipe.stuck]\ndata = { source = "digits" }\n'
                                   'model = { factory = "stuck_model:make" }\n'
                                   'train = { steps = 100000, batch_size = 8, log_every = 1, checkpoint_every = 20 }\n')
    (tmp_path / "stuck_model.py").write_text(STUCK_MODEL)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, recipe="stuck", runs=runs)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("t")
            # The trainer emits log steps in batches (every 0.2 s, and before a checkpoint), so the screen may
            # know of step 20 only when the 40th forward hangs: the exit line names the step the screen showed.
            await wait_for(pilot, lambda: "stuck_model" in sys.modules and sys.modules["stuck_model"].HUNG.is_set()
                           and app.home.state.step >= 20 and not len(app.home.queue), what="the stuck step")
            shown = app.home.state.step
            await pilot.press("j")  # keys keep working while the job is stuck
            await pilot.press("q", "y")
            t0 = time.monotonic()
            await wait_for(pilot, lambda: app.return_code is not None, timeout=20, what="the app to exit")
            waited = time.monotonic() - t0
        run = latest_run(runs, "stuck")
        last = list(read_events(run / "events.jsonl"))[-1]
    finally:
        sys.modules["stuck_model"].RELEASE.set()
        for thread in threading.enumerate():
            if thread.name.startswith("recipe-tui-train"):
                thread.join(30)  # released: it stops at its next step
    run_line, stuck = app.exit_lines
    assert 20 <= shown <= 39
    assert f"run {run} interrupted at step {shown} of 100,000" in run_line and "--resume" in run_line, run_line
    assert ("its last checkpoint is step 20" in run_line) == (shown > 20)  # said only when it is not that step
    assert "the train job did not return within 1 s of the stop" in stuck and "stuck_model.py:" in stuck
    assert "in forward" in stuck
    assert last.type == "log" and last.level == "warning" and "did not return" in last.message
    assert waited < 15, waited  # generous: the grace period is 1 s here


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_the_app_like_q_answered_yes(tmp_path, sig):
    recipes = make_recipes(tmp_path, steps=500_000, checkpoint_every=20, extra=False)
    runs = tmp_path / "runs"
    proc = app_process(tmp_path, recipes, runs, "t")
    out, err = signal_after_checkpoint(proc, runs, sig)
    assert proc.returncode == 130, err
    run = latest_run(runs, "digits-mlp")
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped", events[-3:]
    assert f"stopped at step {events[-1].step:,}" in out and "recipe-tui train --resume" in out
