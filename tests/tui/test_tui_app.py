"""The app driven by Pilot: navigate, run items, tick, train/stop/quit, re-open, resize, watch, errors."""
from __future__ import annotations

import json

import pytest

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.config import ConfigError
from recipe_tui.core.events import Eval, RunStarted, Step
from recipe_tui.core.jobs import latest_run
from recipe_tui.core.rundir import read_events
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.screens.main_screen import MainScreen
from recipe_tui.tui.widgets.checklist import Checklist, Ref
from recipe_tui.tui.widgets.help_screen import HelpScreen
from recipe_tui.tui.widgets.item_detail import ItemDetail
from recipe_tui.tui.widgets.lr_strip import LrStrip
from recipe_tui.tui.widgets.plot import Plot

from tui_helpers import detail_text, make_recipes, plain, screen_text, wait_for

STAGES = ("Inspect the data", "Set up the skeleton", "Overfit", "Regularize", "Tune", "Squeeze out the juice")


@pytest.mark.timeout(60)
async def test_navigate_the_checklist_and_see_guidance(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        checklist = app.query_one(Checklist)
        detail = app.query_one(ItemDetail)
        await wait_for(pilot, lambda: detail.border_title == "data-stats", what="the first item's detail")
        assert checklist.selected() == Ref(1, "data-stats")
        await pilot.press("j", "down")
        assert checklist.selected() == Ref(1, "duplicates")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "duplicates", what="the detail")
        assert detail.border_title == "duplicates" and "Duplicate examples?" in detail_text(app)
        await wait_for(pilot, lambda: "Duplicate examples?" in screen_text(app), what="the guidance on screen")
        await pilot.press("k", "up", "k")
        assert checklist.selected() == Ref(1)  # the stage heading
        assert detail.border_title == "stage 1" and "every automated item of this stage" in detail_text(app)
        for _ in range(6):
            await pilot.press("j")
        assert checklist.selected() == Ref(2)
        assert all(name in app.home.recipes.stages[i].title for i, name in enumerate(STAGES))


@pytest.mark.timeout(90)
async def test_run_items_pass_skip_and_error(recipes, tmp_path, fake_checks):
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        for item_id, expected in (("tui-pass", "pass"), ("tui-missing", "skip"), ("tui-boom", "error")):
            checklist.select_item(item_id)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status(item_id) == expected, what=item_id)
        text = detail_text(app)  # tui-boom is selected: its detail shows the traceback
        assert "RuntimeError: boom from the test check" in text and "Traceback" in text
        assert any("boom from the test check" in m for m in app.home.run_log.messages())
        checklist.select_item("tui-pass")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "tui-pass", what="the detail")
        text = detail_text(app)
        assert "all good here" in text and "evidence_value" in text and "Nothing to do." in text
        checklist.select_item("tui-missing")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "tui-missing", what="the detail")
        assert "not automated yet" in detail_text(app)
        await pilot.press("j")  # still responsive after a check raised
        assert checklist.selected() == Ref(6, "tui-boom")
    saved = json.loads((runs / "digits-mlp" / "checklist.json").read_text())
    statuses = {k: v["status"] for k, v in saved["results"].items()}
    assert statuses == {"tui-pass": "pass", "tui-missing": "skip", "tui-boom": "error"}
    assert saved["results"]["tui-pass"]["metrics"]["evidence_value"] == 1.5


@pytest.mark.timeout(60)
async def test_tick_a_manual_item_and_find_it_ticked_after_reopening(recipes, tmp_path):
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(100, 30)) as pilot:
        checklist = app.query_one(Checklist)
        checklist.select_item("tui-manual")
        await pilot.press("space")
        assert checklist.status("tui-manual") == "ticked"
        checklist.select_item("init-loss")  # automated: space does not tick it
        await pilot.press("space")
        assert checklist.status("init-loss") == "pending"
        checklist.select_item("tui-manual-2")
        await pilot.press("space", "space")  # ticked and unticked again
        assert checklist.status("tui-manual-2") == "manual"
    assert ChecklistState.load(runs, "digits-mlp").ticks == {"tui-manual"}
    again = RecipeApp(file=recipes, runs=runs)
    async with again.run_test(size=(100, 30)) as pilot:
        checklist = again.query_one(Checklist)
        assert checklist.status("tui-manual") == "ticked" and checklist.status("tui-manual-2") == "manual"
        checklist.select_item("tui-manual")
        await wait_for(pilot, lambda: again.query_one("#detail").border_title == "tui-manual", what="the detail")
        assert "☑ ticked" in detail_text(again)


@pytest.mark.timeout(120)
async def test_train_live_then_stop_writes_a_checkpoint_and_reopen_restores_curves(tmp_path):
    recipes = make_recipes(tmp_path, steps=200_000, eval_every=50)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(160, 50)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.press("t")
        assert checklist.status("train") == "running"
        await wait_for(pilot, lambda: app.home.state.step >= 100, what="100 training steps")
        first_step = app.home.state.step
        await wait_for(pilot, lambda: app.home.charts.builds > 0 and len(app.home.state.series["val_loss"]) >= 1,
                       what="charts drawn from live data")
        await wait_for(pilot, lambda: "● training  step" in screen_text(app), what="the status line")
        await wait_for(pilot, lambda: app.home.state.step > first_step, what="the step count to move")
        assert any(ch in app.query_one("#chart-loss", Plot).render().plain for ch in "⠁⠂⠄⡀⢀⠈⠐⠠⣀")
        await pilot.press("p")
        assert app.home.state.status == "paused"
        await wait_for(pilot, lambda: any(m.startswith("paused at step") for m in app.home.run_log.messages()), what="pause")
        paused_at = app.home.state.step
        await pilot.pause(0.5)
        assert app.home.state.step == paused_at  # the trainer waits
        await pilot.press("p")
        assert app.home.state.status == "training"
        await wait_for(pilot, lambda: app.home.state.step > paused_at, what="training to resume")
        await pilot.press("s")
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=20, what="the trainer to stop")
        assert app.home.state.status == "stopped" and checklist.status("train") == "stopped"
        stopped_at = app.home.state.step
        assert 0 < stopped_at < 200_000
        evals = [e for e in app.home.run_log.entries if e.key == "eval"]  # one updating line, split by pauses
        assert 1 <= len(evals) <= 4 and sum(e.count for e in evals) >= stopped_at // 50 - 1
    run = latest_run(runs, "digits-mlp")
    assert (run / "checkpoint.pt").is_file()
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped" and events[-1].step == stopped_at
    assert ChecklistState.load(runs, "digits-mlp").result("train").summary.startswith(f"stopped at step {stopped_at:,}")

    again = RecipeApp(file=recipes, runs=runs)
    async with again.run_test(size=(160, 50)) as pilot:
        await wait_for(pilot, lambda: again.home.state.step == stopped_at, what="the last run's curves")
        assert again.home.state.status == "stopped" and len(again.home.state.series["train_loss"]) >= 10
        await wait_for(pilot, lambda: again.home.charts.builds > 0, what="restored charts drawn")
        assert again.query_one(Checklist).status("train") == "stopped"


@pytest.mark.timeout(90)
async def test_a_failing_job_becomes_an_error_mark_and_the_app_stays_up(tmp_path):
    recipes = make_recipes(tmp_path, source="no-such-source", extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        dataset = app.query_one("#dataset")
        await wait_for(pilot, lambda: "did not load" in plain(dataset.body.content), what="the data load error")
        await pilot.press("t")
        await wait_for(pilot, lambda: checklist.status("train") == "error" and app.home.jobs.current is None, what="train error")
        assert any(m.startswith("train failed: ConfigError") for m in app.home.run_log.messages())
        checklist.select_item("train")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "train", what="the detail")
        assert "unknown data source 'no-such-source'" in detail_text(app)
        await pilot.press("j", "k")
        assert checklist.selected() == Ref(3, "train")


@pytest.mark.timeout(90)
async def test_a_diverging_run_is_a_fail_with_its_reason(tmp_path):
    recipes = make_recipes(tmp_path, steps=2000, lr="10", extra=False,  # lr at most 10: decay makes it blow up
                           train_extra='optimizer = "sgd", weight_decay = 10')
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("t")
        checklist = app.query_one(Checklist)
        await wait_for(pilot, lambda: checklist.status("train") == "fail", what="the run to fail")
        assert app.home.state.status == "failed" and "loss became" in app.home.state.reason
        checklist.select_item("train")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "train", what="the detail")
        assert "Lower the learning rate" in detail_text(app)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("recipe, drawn", [("names-lm", " → '"), ("digits-mlp", "▀▀▀▀▀▀▀▀")])
async def test_batch_view_shows_the_captured_batch(tmp_path, recipe, drawn):
    recipes = make_recipes(tmp_path, extra=False)
    app = RecipeApp(file=recipes, recipe=recipe, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        checklist.select_item("batch-view")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status("batch-view") in ("pass", "warn"),
                       what="the batch-view check")
        text = detail_text(app)
        assert "the batch as the model gets it" in text and drawn in text and "x_shape" in text


def _feed(app: RecipeApp, steps: int) -> None:
    """Events as a trainer would emit them, straight into the app's queue."""
    app.home.queue.emit(RunStarted(run_dir="r", recipe="digits-mlp", device="cpu", steps=steps))
    for s in range(10, steps + 1, 10):
        app.home.queue.emit(Step(step=s, loss=2.3 / (1 + s / 100), lr=3e-3, grad_norm=1 + (s % 70) / 10, steps_per_s=500.0))
        if s % 100 == 0:
            app.home.queue.emit(Eval(step=s, split="val", loss=2.5 / (1 + s / 100), metrics={"accuracy": s / steps}))


@pytest.mark.timeout(60)
async def test_layout_at_80x24_and_250x70_and_resizes(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        _feed(app, 2000)
        await wait_for(pilot, lambda: app.home.state.step == 2000, what="events drained")
        loss_plot = app.query_one("#chart-loss", Plot)
        await wait_for(pilot, lambda: "no data yet" not in loss_plot.render().plain, what="the loss chart")
        await wait_for(pilot, lambda: "step 2,000/2,000" in screen_text(app) and "t Train" in screen_text(app),
                       what="the status line and the footer")
        text = screen_text(app)
        assert len(text.split("\n")) == 24 and max(len(line) for line in text.split("\n")) == 80
        assert "Inspect the data" in text and "step 2,000/2,000" in text and "t Train" in text
        assert not app.query_one("#chart-lr", LrStrip).display  # small screen: loss and metric only
        await pilot.resize_terminal(250, 70)
        await wait_for(pilot, lambda: all(stage in screen_text(app) for stage in STAGES), what="all six stages")
        assert len(screen_text(app).split("\n")) == 70
        lr_strip = app.query_one("#chart-lr", LrStrip)
        await wait_for(pilot, lambda: lr_strip.display and lr_strip.content_size.width > 60, what="the lr line")
        await wait_for(pilot, lambda: lr_strip.render().plain == "lr 0.003 · constant", what="the lr line's value")
        # 2.3 → 0.11: > a decade. The full subtitle once the chart is drawn at its new width (its build may be
        # answered by the chart process after the layout pass).
        await wait_for(pilot, lambda: "log (auto)" in loss_plot.border_subtitle, what="the wide subtitle")
        assert app.home.charts.log_y is None
        await pilot.press("l")
        assert app.home.charts.log_y is False
        await wait_for(pilot, lambda: "log" not in loss_plot.border_subtitle, what="the linear subtitle")
        await pilot.press("l")
        assert app.home.charts.log_y is None
        await wait_for(pilot, lambda: "log (auto)" in loss_plot.border_subtitle, what="the auto subtitle")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: len(screen_text(app).split("\n")) == 24 and "Inspect the data" in screen_text(app),
                       what="the small layout again")


@pytest.mark.timeout(60)
async def test_watch_mode_follows_a_run_and_disables_training_keys(tmp_path):
    run = tmp_path / "runs" / "digits-mlp" / "20260101-000000"
    run.mkdir(parents=True)
    lines = [RunStarted(run_dir=str(run), recipe="digits-mlp", device="cpu", steps=1000).to_json()]
    lines += [Step(step=s, loss=1.0 / s, lr=1e-3).to_json() for s in range(10, 110, 10)]
    (run / "events.jsonl").write_text("\n".join(lines) + "\n" + '{"type": "step", "st')  # torn last line
    with pytest.raises(ConfigError, match="no such run directory"):
        RecipeApp(watch=tmp_path / "nope")
    app = RecipeApp(watch=run, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.home.state.step == 100, what="the history")
        keys = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not app.query("#checklist") and "train" not in keys and "log_y" in keys
        with open(run / "events.jsonl", "a") as f:  # the torn line completes, then one more
            f.write('ep": 110, "loss": 0.01, "lr": 0.001}\n' + Step(step=120, loss=0.008, lr=1e-3).to_json() + "\n")
        await wait_for(pilot, lambda: app.home.state.step == 120, what="new events")
        await pilot.press("t", "s", "p")
        assert app.home.jobs.current is not None and app.home.jobs.current.kind == "watch" and app.home.state.status == "training"
        await wait_for(pilot, lambda: "watch ● training  step 120/1,000" in screen_text(app), what="the status line")
        app.home.run_log.focus()
        await pilot.press("slash", "o", "f", "f", "enter")  # the log filters in watch mode too
        assert app.home.run_log.filter_text == "off"
        assert "training keys are off" in " ".join(" ".join(app.home.run_log.lines_text()).split())
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")


@pytest.mark.timeout(60)
async def test_keys_are_in_the_palette_and_help_and_prints_reach_the_log(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Train", "Log-y", "Browse", "Help", "Run item", "Tick item", "Quit"} <= titles
        assert "Stop" not in titles  # nothing to stop yet
        bindings = app.BINDINGS + MainScreen.BINDINGS + Checklist.BINDINGS
        assert None not in {b.id for b in bindings} and not any(getattr(b, "key", "") == "ctrl+b" for b in bindings)
        assert [b.action for b in bindings if b.key == "b"] == ["browse"]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        print("a line printed while the app runs")
        await wait_for(pilot, lambda: "a line printed while the app runs" in app.home.run_log.messages(), what="print capture")


@pytest.mark.timeout(60)
def test_the_app_module_does_not_import_torch_or_plotext():
    """The first frame must not wait for torch (~2–3 s): it is imported by workers after mount."""
    import subprocess
    import sys

    code = ("import sys, recipe_tui.tui.app, recipe_tui.tui.cli\n"
            "print(sorted(m for m in ('torch', 'plotext', 'numpy', 'pynvml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.timeout(60)
async def test_an_offline_dataset_says_in_the_app_which_files_to_put_where(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    recipes = make_recipes(tmp_path, source="mnist", extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(160, 50)) as pilot:
        dataset = app.query_one("#dataset")
        await wait_for(pilot, lambda: "did not load" in plain(dataset.body.content), timeout=60, what="the load error")
        text = " ".join(plain(dataset.body.content).split())
        assert "mnist is not in" in text and f"{(tmp_path / 'data' / 'MNIST' / 'raw').resolve()}/" in text
        assert "train-images-idx3-ubyte" in text and "ConfigError" in text
