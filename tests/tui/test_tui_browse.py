"""Key b in the app: the sample browser, with the data checks' findings and, after training, the losses."""
from __future__ import annotations

import pytest

from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.widgets.sample_browser import SampleBrowser

from tui_helpers import make_recipes, wait_for


@pytest.mark.timeout(120)
async def test_b_opens_the_browser_with_findings_and_after_training_losses(tmp_path):
    recipes = make_recipes(tmp_path, steps=60, eval_every=30, checkpoint_every=30, extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.home.splits is not None, timeout=60, what="the data to load")
        app.home.start_checks(["duplicates", "label-issues"])
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=90, what="the data checks")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, SampleBrowser), what="the browser")
        browser = app.screen
        assert "label-issues" in browser.available_modes(), "digits has confident-learning candidates"
        assert "losses" not in browser.available_modes(), "no run yet, so no losses"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SampleBrowser), what="the browser to close")

        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.jobs.current is None and app.home.state.step == 60, timeout=60, what="training")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, SampleBrowser), timeout=30, what="the browser")
        browser = app.screen
        assert "losses" in browser.available_modes()
        top = browser.findings["losses"]["top_losses"]
        assert len(top) > 0 and all(a["loss"] >= b["loss"] for a, b in zip(top, top[1:]))
        assert sum(map(sum, browser.findings["losses"]["confusion"])) == len(app.home.splits.val)
