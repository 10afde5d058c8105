"""The layout grows with the terminal; zoom, top/bottom, the checklist filter; what the app remembers
between launches (theme, folds, log-y); the palette's screenshot; the stopped and findings marks."""
from __future__ import annotations

import json

import pytest

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.events import CheckResult
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.marks import MARKS, finding_count, status_of
from recipe_tui.tui.widgets.checklist import Checklist, Ref
from recipe_tui.tui.widgets.filter_bar import FilterBar

from tui_helpers import detail_text, screen_text, wait_for

STAGES = ("1 Inspect the data", "2 Set up the skeleton", "3 Overfit", "4 Regularize", "5 Tune",
          "6 Squeeze out the juice")
LONGEST = "Causal dependencies (autoregressive models)"


@pytest.mark.timeout(60)
async def test_panes_follow_the_terminal_and_all_stages_show_from_120x40(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.pause()
        text = screen_text(app)
        assert all(stage in text for stage in STAGES), text
        assert checklist.selected() == Ref(1, "data-stats")  # the current stage is open, the rest folded
        assert checklist.expanded_stages() == [1]
        at_120 = checklist.size.width
        detail_at_120 = app.query_one("#detail").size
        await pilot.resize_terminal(220, 60)
        await wait_for(pilot, lambda: checklist.size.width > at_120, what="the checklist to widen")
        checklist.select_item("causality")  # unfolds stage 2
        await wait_for(pilot, lambda: LONGEST in screen_text(app), what="the longest title uncut at 220 columns")
        assert checklist.outer_size.width == 80 and app.query_one("#charts").outer_size.width == 140
        detail = app.query_one("#detail").size
        assert detail.width > detail_at_120.width and detail.height > detail_at_120.height
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: checklist.size.width <= 34, what="the small layout")
        footer = screen_text(app).splitlines()[-1]
        assert "? Help" in footer and "q Quit" in footer and "t Train" in footer


@pytest.mark.timeout(60)
async def test_zoom_top_bottom_and_the_checklist_filter(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.pause()
        await pilot.press("G")
        assert checklist.cursor_line == checklist.last_line
        await pilot.press("g")
        assert checklist.selected() == Ref(1)
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is checklist and checklist.outer_size.width == 100
        assert checklist.outer_size.height == 28  # all but the status line and the footer
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None and checklist.outer_size.width < 50
        await pilot.press("tab")
        await pilot.press("z")  # the item pane, full screen: room for the evidence
        assert app.screen.maximized is app.query_one("#detail")
        await pilot.press("escape")
        assert app.screen.maximized is None
        checklist.focus()
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        assert bar.display and bar.has_focus
        await pilot.press("s", "e", "e", "d")
        await wait_for(pilot, lambda: checklist.filter_text == "seed", what="the filter")
        shown = [checklist.get_node_at_line(i).data for i in range(checklist.last_line + 1)]
        assert shown == [Ref(2), Ref(2, "seed")] and "Fix the random seed" in screen_text(app)
        await pilot.press("enter")  # keeps the filter, back to the checklist
        assert not bar.display and checklist.has_focus and checklist.filter_text == "seed"
        assert checklist.selected() == Ref(2, "seed")
        await pilot.press("escape")  # clears it
        await wait_for(pilot, lambda: checklist.last_line > 1, what="the full checklist")
        assert checklist.filter_text == "" and checklist.selected() == Ref(2, "seed")
        assert checklist.get_node_at_line(0).data == Ref(1)


@pytest.mark.timeout(60)
async def test_theme_folds_and_log_y_are_remembered(recipes, tmp_path):
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.pause()
        checklist.move_cursor(checklist.get_node_at_line(6))  # the stage 2 heading
        assert checklist.selected() == Ref(2)
        await pilot.press("space", "l")  # unfold stage 2; log-y on
        app.theme = "nord"
        await wait_for(pilot, lambda: (runs / "ui-state.json").is_file()
                       and json.loads((runs / "ui-state.json").read_text())["theme"] == "nord", what="the saved state")
    saved = json.loads((runs / "ui-state.json").read_text())
    assert saved == {"theme": "nord", "log_y": "log", "smooth": True, "recent": False,
                     "expanded": {"digits-mlp": [1, 2]}}
    assert [p.name for p in runs.iterdir()] == ["ui-state.json"]  # written by rename: no temp file left
    again = RecipeApp(file=recipes, runs=runs)
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert again.theme == "nord" and again.home.charts.log_y is True
        assert again.query_one(Checklist).expanded_stages() == [1, 2]


@pytest.mark.timeout(60)
async def test_palette_screenshot_goes_to_the_runs_dir_and_says_where(recipes, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    notes: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: notes.append(message))
    async with app.run_test(size=(100, 30)) as pilot:
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Screenshot")
        command.callback()
        await wait_for(pilot, lambda: any(n.startswith("Saved to") for n in notes), what="the screenshot")
        (svg,) = runs.glob("screenshot-*.svg")
        assert str(svg) in notes[-1] and "<svg" in svg.read_text()[:500]
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        assert app.deliver_screenshot(path=str(blocker / "sub")) is None
        assert notes[-1].startswith(f"Could not save the screenshot in {blocker / 'sub'}:")


def test_marks_say_stopped_and_count_findings():
    stopped = CheckResult("train", "skip", "stopped at step 10 of 100; checkpoint saved", {"state": "stopped"})
    assert status_of(stopped) == "stopped" and MARKS["stopped"][0] != MARKS["skip"][0]
    assert status_of(CheckResult("x", "skip", "not applicable")) == "skip"
    assert finding_count(CheckResult("label-issues", "pass", "", {"count": {"train": 14, "val": 2}})) == 16
    assert finding_count(CheckResult("duplicates", "warn", "", {"exact_groups": 2, "near_groups": 3})) == 5
    assert finding_count(CheckResult("data-stats", "pass", "", {"splits": {}})) == 0


@pytest.mark.timeout(120)
async def test_a_pass_with_findings_shows_the_count_and_a_stopped_run_its_own_mark(recipes, tmp_path):
    runs = tmp_path / "runs"
    state = ChecklistState.load(runs, "digits-mlp")
    state.record("train", CheckResult("train", "skip", "stopped at step 300 of 1,500; checkpoint saved",
                                      {"state": "stopped", "run_dir": "r"}, hint="t starts a new run."))
    state.save()
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        assert checklist.status("train") == "stopped"
        checklist.select_item("train")
        await wait_for(pilot, lambda: app.query_one("#detail").border_title == "train", what="the detail")
        assert "◧ STOPPED" in detail_text(app)
        await wait_for(pilot, lambda: app.home.splits is not None, timeout=60, what="the data")
        checklist.select_item("label-issues")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status("label-issues") == "pass",
                       timeout=90, what="label-issues")
        count = finding_count(app.home.checks.result("label-issues"))
        assert count > 0  # digits has a few confident-learning candidates
        assert f"✔ {count} Label noise" in screen_text(app)
