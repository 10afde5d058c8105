"""What the UI thread does while a run trains: every layout pass and every render takes the GIL from the trainer
(benchmarks/tui_overhead.py), so a drain draws the prediction pane once, an evaluation like the last one draws
without a layout pass, the pane takes its place when the run starts, and the status line's reading is taken in a
drain's frame rather than one of its own."""
from __future__ import annotations

import math

from recipe_tui.core.events import Predictions, Step
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.widgets import predictions as predictions_module

from tui_helpers import make_recipes, wait_for


def _predictions(step: int, n: int = 8) -> Predictions:
    examples = [{"index": i, "label": i % 10, "predicted": (i + step) % 10,
                 "probs": [0.9 if c == (i + step) % 10 else 0.1 / 9 for c in range(10)]} for i in range(n)]
    return Predictions(step=step, kind="classes", examples=examples)


async def test_a_drain_draws_only_its_latest_predictions_and_a_like_shaped_one_needs_no_layout(tmp_path, monkeypatch):
    app = RecipeApp(file=make_recipes(tmp_path, extra=False), runs=tmp_path / "runs")
    async with app.run_test(size=(160, 50)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, what="the data")
        renders: list[int] = []
        real_render = predictions_module.render_predictions
        monkeypatch.setattr(predictions_module, "render_predictions",
                            lambda event, width=40: renders.append(event.step) or real_render(event, width))
        layouts: list[bool] = []
        body = home.predictions.body
        real_update = body.update
        monkeypatch.setattr(body, "update", lambda content="", *, layout=True: layouts.append(layout) or
                            real_update(content, layout=layout))

        home.queue.emit(_predictions(100))  # the pane appears (and draws again at its new size)
        home.drain(everything=True)
        pane = home.predictions
        await wait_for(pilot, lambda: pane.content_size.width > 0 and pane._width == pane.content_size.width,
                       what="the pane laid out at its size")
        await pilot.pause()
        assert home.query_one("#bottom").has_class("-predictions") and pane.shown.step == 100
        renders.clear()
        layouts.clear()

        for step in (200, 300, 400):  # one drain: three evaluations' predictions
            home.queue.emit(_predictions(step))
        home.drain(everything=True)
        await pilot.pause()
        assert renders == [400], "only the drain's latest predictions are drawn"
        assert home.predictions.shown.step == 400 and "step 400" in home.predictions.border_title
        assert layouts == [False], "as many rows at the same width: no layout pass"

        home.queue.emit(_predictions(500, n=4))  # fewer rows: the pane's content is shorter, a layout pass
        home.drain(everything=True)
        await pilot.pause()
        assert renders == [400, 500] and layouts == [False, True]

        for step in (600, 700):  # sampled text can wrap differently each time: always laid out
            home.queue.emit(Predictions(step=step, kind="text", examples=[{"text": "x" * (step // 10)}] * 4))
            home.drain(everything=True)
        await pilot.pause()
        assert layouts[-2:] == [True, True]


async def test_the_prediction_pane_takes_its_place_when_a_run_starts_not_at_its_first_evaluation(tmp_path):
    app = RecipeApp(file=make_recipes(tmp_path, steps=60, eval_every=30, extra=False), runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, what="the data")
        bottom = home.query_one("#bottom")
        assert not bottom.has_class("-predictions")
        home.action_train()  # the t key's action, without yielding to the app: no event of the run is drained yet
        assert bottom.has_class("-predictions") and home.predictions.shown is None
        assert "no predictions yet" in str(home.predictions.body.content)
        await wait_for(pilot, lambda: home.state.status == "completed" and home.jobs.current is None,
                       timeout=120, what="the run")
        assert home.predictions.shown is not None and home.predictions.shown.step == 60
        assert bottom.has_class("-predictions")


async def test_a_drain_takes_the_status_line_s_reading_when_one_is_due(tmp_path):
    app = RecipeApp(file=make_recipes(tmp_path, extra=False), runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, what="the data")
        before = home.status.reading
        home.queue.emit(Step(step=10, loss=2.0, lr=1e-3))
        home.drain(everything=True)
        assert home.status.reading is before, "a reading less than a second old is kept"
        home._status_at = -math.inf  # the last reading is due for renewal
        home.queue.emit(Step(step=20, loss=1.9, lr=1e-3))
        home.drain(everything=True)
        assert home.status.reading is not before, "the drain took a new reading in its own frame"
