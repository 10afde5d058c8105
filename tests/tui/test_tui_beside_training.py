"""Stage-1 data checks and the sample browser while training runs: they only read the data, so they run
beside it, and they must not take random numbers from it (the run's losses stay exactly those of a run
without them). Checks that build models are refused until training ends."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from recipe_tui.core.config import load_recipes
from recipe_tui.core.control import RunControl
from recipe_tui.core.jobs import latest_run, run_training
from recipe_tui.core.rundir import read_events
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.bridge import lower_priority
from recipe_tui.tui.widgets.checklist import Checklist
from recipe_tui.tui.widgets.sample_browser import SampleBrowser

from tui_helpers import make_recipes, wait_for

MLP = 'model = { name = "mlp", width = 128, depth = 2 }'


def reference_losses(recipes, runs, last_step: int) -> dict[int, float]:
    """The same recipe trained headless, alone, up to ``last_step``: its logged losses by step."""
    exp = load_recipes(recipes).experiment("digits-mlp")
    losses: dict[int, float] = {}
    stop = threading.Event()

    def emit(event) -> None:
        if event.type == "step":
            losses[event.step] = event.loss
            if event.step >= last_step:
                stop.set()

    run_training(exp, RunControl(emit=emit, stop=stop), runs_root=runs)
    return losses


@pytest.mark.timeout(180)
async def test_data_checks_and_the_browser_run_beside_training_without_touching_its_rng(tmp_path, monkeypatch):
    recipes = make_recipes(tmp_path, steps=200_000, eval_every=100_000, checkpoint_every=100_000, extra=False)
    # Dropout draws from torch's global RNG at every step: any draw by a check in another thread shows.
    # (Two folds instead of five: the same code path in less time.)
    recipes.write_text(recipes.read_text().replace(MLP, MLP[:-2] + ", dropout = 0.3 }\nchecks = { label_folds = 2 }", 1))
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    notes: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: notes.append(message))
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await wait_for(pilot, lambda: app.home.splits is not None, timeout=60, what="the data")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.state.step >= 20, timeout=60, what="training to run")

        checklist.select_item("init-loss")  # stage 2 builds a model: refused, and it says why
        await pilot.press("enter")
        assert "stage 2 on build models" in notes[-1] and checklist.status("init-loss") == "pending"

        await pilot.press("b")  # the browser opens, without the loss filter (that needs a model)
        await wait_for(pilot, lambda: isinstance(app.screen, SampleBrowser), what="the browser")
        assert "losses" not in app.screen.available_modes() and "without the loss filter" in notes[-1]
        await pilot.press("escape")

        checklist.select_item("label-issues")  # fits models of its own, from its own generators
        await pilot.press("enter")
        assert any(m.startswith("running label-issues beside training") for m in app.home.run_log.messages())
        await wait_for(pilot, lambda: app.home.side is None, timeout=120, what="the data check")
        assert app.home.state.status == "training"  # started after training did, ended before it: beside it
        assert checklist.status("label-issues") == "pass"
        await pilot.press("s")
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=30, what="training to stop")
        stopped_at = app.home.state.step
    beside = {e.step: e.loss for e in read_events(latest_run(runs, "digits-mlp") / "events.jsonl") if e.type == "step"}
    alone = reference_losses(recipes, tmp_path / "ref", stopped_at)
    steps = sorted(set(beside) & set(alone))
    assert len(steps) >= stopped_at // 10 - 1 and stopped_at > 100
    assert [beside[s] for s in steps] == [alone[s] for s in steps]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice values are per thread on Linux only")
def test_lower_priority_makes_only_the_calling_thread_nicer():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def body() -> None:
        tid = threading.get_native_id()
        start = os.getpriority(os.PRIO_PROCESS, tid)
        seen["applied"] = lower_priority(5)
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - start

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"applied": True, "delta": min(5, 19 - before)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # the caller's thread is untouched
    assert lower_priority(0) is False
