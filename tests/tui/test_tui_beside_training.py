"""Stage-1 data checks and the sample browser while training runs: they only read the data, so they run
beside it (the checks in a process of their own) and must not take random numbers from it: the run's losses
stay exactly those of a run without them. Checks that build models are refused until training ends."""
from __future__ import annotations

import os
import threading

import pytest
import torch

from recipe_tui.core.config import load_recipes
from recipe_tui.core.control import RunControl
from recipe_tui.core.jobs import latest_run, run_training
from recipe_tui.core.rundir import read_events
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.bridge import check_process
from recipe_tui.tui.widgets.checklist import Checklist
from recipe_tui.tui.widgets.sample_browser import SampleBrowser

from tui_helpers import make_recipes, wait_for

MLP = 'model = { name = "mlp", width = 128, depth = 2 }'


def recipes_with_dropout(folder, **kw):
    """Dropout draws from torch's global RNG at every step: any draw by a check in the app's process shows.
    (Two label folds instead of five: the same code path in less time.)"""
    recipes = make_recipes(folder, extra=False, **kw)
    recipes.write_text(recipes.read_text().replace(MLP, MLP[:-2] + ", dropout = 0.3 }\nchecks = { label_folds = 2 }", 1))
    return recipes


@pytest.mark.timeout(120)
def test_check_process_runs_the_checks_in_a_nicer_process_of_their_own(tmp_path):
    exp = load_recipes(make_recipes(tmp_path, extra=False)).experiment("digits-mlp")
    events = []
    torch.manual_seed(7)
    before = torch.get_rng_state()
    code = check_process(exp, ["data-stats", "class-balance"], RunControl(emit=events.append), tmp_path / "runs")
    assert code == 0 and torch.equal(torch.get_rng_state(), before)
    first = events[0].message
    assert first.startswith("data checks in process ") and int(first.split()[4]) != os.getpid() and "nice 10" in first
    results = [e for e in events if e.type == "check_result"]
    assert [(r.id, r.status) for r in results] == [("data-stats", "pass"), ("class-balance", "pass")]
    assert results[0].metrics["splits"]["train"]["count"] == 1438

    stop = threading.Event()
    stop.set()  # stopped before it got anywhere: it ends, and says nothing it did not do
    late = []
    check_process(exp, ["label-issues"], RunControl(emit=late.append, stop=stop), tmp_path / "runs")
    assert not any(e.type == "check_result" and e.status != "skip" for e in late)


@pytest.mark.timeout(120)
async def test_while_training_data_checks_and_the_browser_run_and_model_checks_wait(tmp_path, monkeypatch):
    recipes = recipes_with_dropout(tmp_path, steps=200_000, eval_every=100_000, checkpoint_every=100_000)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
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

        checklist.select_item("class-balance")
        await pilot.press("enter")
        # The side job may already be done (class-balance on digits takes milliseconds): its log line says it ran
        # beside training, which still runs.
        assert app.home.jobs.current.kind == "train"
        assert any(m.startswith("running class-balance beside training") for m in app.home.run_log.messages())
        await pilot.press("s")  # stops training only
        await wait_for(pilot, lambda: app.home.jobs.current is None and app.home.side is None, timeout=90,
                       what="training to stop and the data check to end")
        assert checklist.status("class-balance") == "pass"


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


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_data_checks_beside_training_leave_its_losses_exactly_as_they_were(tmp_path):
    recipes = recipes_with_dropout(tmp_path, steps=200_000, eval_every=100_000, checkpoint_every=100_000)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await wait_for(pilot, lambda: app.home.splits is not None, timeout=60, what="the data")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.state.step >= 20, timeout=60, what="training to run")
        await pilot.press("p")  # paused while the checks' process starts (imports torch): fewer steps to compare
        checklist.move_cursor(checklist.get_node_at_line(0))  # every data check of stage 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: checklist.status("data-stats") in ("running", "pass"), timeout=120,
                       what="the checks to start")
        await pilot.press("p")
        await wait_for(pilot, lambda: app.home.side is None, timeout=240, what="the data checks")
        assert app.home.state.status == "training"  # they ran while training did
        assert [checklist.status(i) for i in ("data-stats", "duplicates", "label-issues")] == ["pass"] * 3
        await pilot.press("s")
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=30, what="training to stop")
        stopped_at = app.home.state.step
    beside = {e.step: e.loss for e in read_events(latest_run(runs, "digits-mlp") / "events.jsonl") if e.type == "step"}
    alone = reference_losses(recipes, tmp_path / "ref", stopped_at)
    steps = sorted(set(beside) & set(alone))
    assert len(steps) >= stopped_at // 10 - 1 and stopped_at > 100
    assert [beside[s] for s in steps] == [alone[s] for s in steps]
