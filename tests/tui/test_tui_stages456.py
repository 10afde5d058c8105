"""Stages 4–6 from the app: each item's rows (rungs, trials, members, students) appear live in the item pane while it
runs, then the verdict with the whole table; tiny budgets on the built-in digits."""
from __future__ import annotations

import pytest

from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.checklist_results import ChecklistResults
from recipe_tui.tui.widgets.checklist import Checklist

from tui_helpers import detail_text, make_recipes, wait_for

PLANS = """
[recipe.digits-mlp.regularize]
rungs = ["dropout", "weight-decay"]
dropout = [0.2]
weight_decay = [1e-3]

[recipe.digits-mlp.ensemble]
size = 2
base = "recipe"

[recipe.digits-mlp.distill]
width = 64
"""


def tiny_recipes(folder):
    path = make_recipes(folder, steps=40, eval_every=20, extra=False)
    text = path.read_text().replace("trials = 8\nsteps = 500", "trials = 3\nsteps = 40")
    path.write_text(text + PLANS)
    return path


@pytest.mark.timeout(180)
async def test_stage_4_to_6_rows_appear_live_in_the_item_pane(tmp_path, monkeypatch):
    seen: list[tuple[str, str]] = []  # (check id, the item pane's text right after one of its rows arrived)
    original = ChecklistResults.check_row

    def spy(self, e):
        original(self, e)
        seen.append((e.id, detail_text(self.detail.app)))
    monkeypatch.setattr(ChecklistResults, "check_row", spy)
    app = RecipeApp(file=tiny_recipes(tmp_path), runs=tmp_path / "runs")
    expected = {"regularize": ("dropout 0.2", "rungs"), "tune": ("recipe", "trials"),
                "ensemble": ("seed 1337", "members"), "distill": ("hard labels", "models")}
    async with app.run_test(size=(140, 45)) as pilot:
        checklist = app.query_one(Checklist)
        await wait_for(pilot, lambda: app.home.splits is not None, what="the data")
        for item_id, (label, table) in expected.items():
            checklist.select_item(item_id)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status(item_id) not in
                           ("running", "pending"), timeout=120, what=item_id)
            live = [text for check, text in seen if check == item_id]
            assert live and all("⟳ running" in text for text in live), item_id
            assert any(label in text for text in live), (item_id, live[-1])
            assert any(table in text for text in live)
            final = detail_text(app)
            assert checklist.status(item_id) in ("pass", "warn"), final
            assert "⟳ running" not in final and table in final and label in final
    tune_rows = [text for check, text in seen if check == "tune"]
    assert len(tune_rows) == 3 and "so far 1 trials" in tune_rows[0] and "so far 3 trials" in tune_rows[-1]
