"""Stage 3 in the app, on real short digits runs: the runs view (r) with overlays and a past run opened alone, the
overrides form (c) that type-checks and starts a changed run, the prediction dynamics pane, lr-find's and capacity's
curves and first-layer's filters in the item pane, and the train item's warn from the wiggle alarm."""
from __future__ import annotations

import pytest

from recipe_tui.core.config import apply_overrides, load_recipes
from recipe_tui.core.events import Predictions
from recipe_tui.core.jobs import run_training
from recipe_tui.core.rundir import read_events
from recipe_tui.core.runs import list_runs
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.screens.runs_view import RunsView
from recipe_tui.tui.widgets.checklist import Checklist
from recipe_tui.tui.widgets.overrides_form import OverridesForm
from recipe_tui.tui.widgets.predictions import render_predictions

from tui_helpers import detail_text, make_recipes, plain, screen_text, wait_for

pytestmark = pytest.mark.timeout(180)


def three_runs(recipes, runs):
    """Three real 40-step runs of digits-mlp: the recipe's lr, 1e-2 and 3e-4 (as ``--set`` gives them)."""
    exp = load_recipes(recipes).experiment("digits-mlp")
    dirs = []
    for overrides in ((), ("train.lr=1e-2",), ("train.lr=3e-4",)):
        out = run_training(apply_overrides(exp, overrides), runs_root=runs)
        assert out.status == "completed"
        dirs.append(str(out.run_dir))
    return dirs


def table_text(view: RunsView) -> list[str]:
    t = view.table
    return [" | ".join(str(c) for c in t.get_row_at(i)) for i in range(t.row_count)]


async def open_runs_view(app, pilot) -> RunsView:
    await pilot.press("r")
    await wait_for(pilot, lambda: isinstance(app.screen, RunsView) and app.screen.rows is not None, what="the runs")
    return app.screen


async def test_runs_view_lists_three_runs_overlays_two_and_opens_one(tmp_path):
    recipes = make_recipes(tmp_path, steps=40, eval_every=20, extra=False)
    runs = tmp_path / "runs"
    dirs = three_runs(recipes, runs)
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.home.state.run_dir == dirs[-1], what="the last run restored")
        view = await open_runs_view(app, pilot)
        rows = table_text(view)
        assert len(rows) == 3
        assert "the recipe" in rows[0] and "train.lr=0.01" in rows[1] and "train.lr=0.0003" in rows[2], rows
        assert all("completed" in r and "40/40" in r for r in rows)
        assert all(r["metric"]["name"] == "accuracy" and r["val_loss"]["final"] is not None for r in view.rows)
        # The cursor starts on the newest run; select the two above it.
        await pilot.press("k")
        await pilot.press("space")  # selects row 2 and moves down
        await pilot.press("k", "k", "k", "space")
        assert view.selected == {dirs[0], dirs[1]}
        assert table_text(view)[0].startswith("●") and table_text(view)[1].startswith("●")
        await pilot.press("enter")
        charts = app.home.charts
        await wait_for(pilot, lambda: len(charts.overlays) == 2, what="two overlays")
        labels = [label for label, _ in charts.overlays]
        assert "lr=0.01" in labels[1] and "lr=0.01" not in labels[0]
        assert all(len(state.series["train_loss"]) >= 4 and len(state.series["val_loss"]) == 2
                   for _, state in charts.overlays)
        assert [state.run_dir for _, state in charts.overlays] == dirs[:2]
        await wait_for(pilot, lambda: all(label in plain(charts.loss.border_title) for label in labels),
                       what="both labels in the loss chart's legend")
        assert app.home.state.run_dir == dirs[-1], "the run on the charts stays; the others are laid over it"
        # o: a past run alone on the charts.
        view = await open_runs_view(app, pilot)
        await pilot.press("k", "k", "o")
        await wait_for(pilot, lambda: app.home.state.run_dir == dirs[0], what="the first run opened")
        assert charts.overlays == [] and app.home.state.status == "completed" and app.home.state.step == 40
        assert app.home.predictions.shown is not None and app.home.predictions.shown.step == 40
        # escape closes without a change; x takes the overlays off.
        await open_runs_view(app, pilot)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunsView) and app.home.state.run_dir == dirs[0]
        await open_runs_view(app, pilot)
        await pilot.press("space", "enter")
        await wait_for(pilot, lambda: len(charts.overlays) == 1, what="one overlay")
        await open_runs_view(app, pilot)
        await pilot.press("x")
        await wait_for(pilot, lambda: charts.overlays == [], what="the overlays off")


async def test_runs_view_says_so_when_there_are_no_runs(tmp_path):
    app = RecipeApp(file=make_recipes(tmp_path, extra=False), runs=tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        view = await open_runs_view(app, pilot)
        assert view.rows == [] and not view.table.display
        assert "No runs of digits-mlp yet" in screen_text(app)
        await pilot.press("enter")  # nothing to overlay: the view stays
        assert app.screen is view
        await pilot.press("escape")
        assert app.screen is app.home


async def test_overrides_form_checks_types_then_trains_with_the_changes(tmp_path):
    recipes = make_recipes(tmp_path, steps=40, eval_every=20, extra=False)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.home.splits is not None, what="the data")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, OverridesForm), what="the form")
        form = app.screen
        lr = form.inputs["train.lr"]
        assert lr.value == "0.003" and form.inputs["train.steps"].value == "40"
        assert app.focused is lr
        lr.value = ""
        await pilot.press("a", "b", "c")
        await pilot.pause()
        assert lr.value == "abc" and form.errors["train.lr"].display
        assert "expected a number" in str(form.errors["train.lr"].render())
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is form and app.home.jobs.current is None, "nothing starts with a bad value"
        assert "Nothing started" in str(form.problem.render())
        lr.value = "0.01"
        await pilot.pause()
        assert not form.errors["train.lr"].display
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.home, what="the form closed")
        await wait_for(pilot, lambda: app.home.state.status == "completed" and app.home.jobs.current is None,
                       timeout=120, what="the changed run")
        run_dir = app.home.state.run_dir
        rows = list_runs(runs, "digits-mlp", app.exp)
        assert [r["changes"] for r in rows] == [{"train.lr": 0.01}]
        # The prediction dynamics of the run, as recorded in its events.jsonl, drawn in their pane.
        preds = [e for e in read_events(f"{run_dir}/events.jsonl") if isinstance(e, Predictions)]
        assert [p.step for p in preds] == [20, 40]
        pane = app.home.predictions
        assert pane.display and pane.shown == preds[-1] and "step 40" in pane.border_title
        text = plain(pane.body.content)
        lines = [line for line in text.splitlines() if line.strip()[:1].isdigit()]
        assert len(lines) == 8
        labels = [ex["label"] for ex in preds[-1].examples]
        assert [int(line.split()[0]) for line in lines] == labels
        marks = ["✔" if ex["label"] == ex["predicted"] else "✘" for ex in preds[-1].examples]
        assert [line.split()[1] for line in lines] == marks
        assert "█" in text
        view = await open_runs_view(app, pilot)
        assert "train.lr=0.01" in table_text(view)[0]
        await pilot.press("escape")
        # c again: the last edits are there to try again.
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, OverridesForm), what="the form again")
        assert app.screen.inputs["train.lr"].value == "0.01"
        await pilot.press("escape")


async def test_stage3_checks_draw_their_curves_and_filters_and_their_runs_are_listed(tmp_path):
    recipes = make_recipes(tmp_path, extra=False)
    fast = ("checks.lr_find_steps=40", "checks.lr_find_repeats=2", "checks.capacity_steps=30")
    app = RecipeApp(file=recipes, runs=tmp_path / "runs", overrides=fast)
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        detail = app.home.detail
        await wait_for(pilot, lambda: app.home.splits is not None, what="the data")
        for item in ("lr-find", "capacity", "first-layer"):
            checklist.select_item(item)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status(item) not in
                           ("running", "pending"), timeout=120, what=item)
        checklist.select_item("lr-find")
        await pilot.pause(0.2)
        chart = detail.chart
        assert chart.display and chart.builds > 0
        title = plain(chart.border_title)
        assert "loss vs lr" in title and "seed 1337" in title and "seed 1338" in title
        assert "log x" in plain(chart.border_subtitle)
        assert "no data" not in str(chart.render()) and len(str(chart.render()).splitlines()) >= 8, "curves drawn"
        checklist.select_item("capacity")
        await pilot.pause(0.2)
        assert chart.display and "loss vs parameters" in plain(chart.border_title)
        assert "train loss" in plain(chart.border_title)
        checklist.select_item("first-layer")
        await pilot.pause(0.2)
        assert not chart.display
        text = detail_text(app)
        assert "first-layer filters: 32 of 128" in text and "▀" in text
        assert "[[[" not in text, "the raw weights are drawn, not listed"
        view = await open_runs_view(app, pilot)
        capacity_rows = [r for r in table_text(view) if "capacity width" in r]
        assert len(capacity_rows) >= 3, table_text(view)
    # Reopened: the results come from checklist.json, which keeps the filters in their one-byte form.
    app = RecipeApp(file=recipes, runs=tmp_path / "runs", overrides=fast)
    async with app.run_test(size=(120, 40)) as pilot:
        app.query_one(Checklist).select_item("first-layer")
        await pilot.pause(0.2)
        assert "first-layer filters: 32 of 128" in detail_text(app)
        app.query_one(Checklist).select_item("capacity")
        await pilot.pause(0.2)
        assert app.home.detail.chart.display and app.home.detail.chart.builds > 0


async def test_a_run_whose_loss_wiggles_marks_the_train_item_warn(tmp_path):
    app = RecipeApp(file=make_recipes(tmp_path, steps=40, lr="0.5", eval_every=20, extra=False), runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await wait_for(pilot, lambda: app.home.splits is not None, what="the data")
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.jobs.current is None and app.home.state.status == "completed",
                       timeout=120, what="the run")
        assert checklist.status("train") == "warn"
        assert app.home.state.alarms and app.home.state.alarms[0]["kind"] == "spike"
        checklist.select_item("train")
        await pilot.pause()
        text = detail_text(app)
        assert "WARN" in text and "the loss wiggles: try a lower learning rate" in text and "alarms" in text


def test_a_language_model_s_predictions_are_its_sampled_text(tmp_path):
    exp = load_recipes(make_recipes(tmp_path, extra=False)).experiment("names-lm")
    out = run_training(apply_overrides(exp, ("train.steps=20", "train.eval_every=10")), runs_root=tmp_path / "runs")
    preds = [e for e in read_events(out.run_dir / "events.jsonl") if isinstance(e, Predictions)]
    assert [p.kind for p in preds] == ["text", "text"]
    text = plain(render_predictions(preds[-1], 40))
    samples = [ex["text"] for ex in preds[-1].examples]
    assert len(samples) == 8 and "sampled from the model" in text
    shown = [line.split(None, 1) for line in text.splitlines()[1:] if line.strip()]
    assert [int(n) for n, _ in shown] == list(range(1, 9))
    assert [rest.strip() for _, rest in shown] == [t or "∅" for t in samples]
