"""How events reach the screen: batched drains at ≤10 Hz under a flood, nothing at all while idle; and
colours that come from app.tcss, not from Python."""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import textual
from textual.color import Color

import recipe_tui.tui
from recipe_tui.core.events import Finished, RunStarted, Step
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.marks import mark
from recipe_tui.tui.screens.run_screen import DRAIN_INTERVAL_S, STATUS_IDLE_S
from recipe_tui.tui.widgets.checklist import Checklist
from recipe_tui.tui.widgets.plot import Plot

from tui_helpers import wait_for

pytestmark = pytest.mark.timeout(90)


async def test_a_flood_of_events_is_drained_in_batches_at_a_bounded_rate(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, timeout=60, what="the data to load")
        wakes, drained = [], []
        wake, take = home.queue.wake, home.queue.drain
        home.queue.wake = lambda: (wakes.append(time.monotonic()), wake())

        def drain(limit: int = 10**9) -> list:
            events = take(limit)
            if events:
                drained.append(time.monotonic())
            return events

        home.queue.drain = drain
        drains_before = home.drains
        sent = []

        def trainer() -> None:  # as fast as a thread can emit, for one second
            emit = home.queue.emit
            emit(RunStarted(run_dir="r", recipe="digits-mlp", device="cpu", steps=10**9))
            step, end = 0, time.monotonic() + 1.0
            while time.monotonic() < end:
                step += 1
                emit(Step(step=step, loss=1.0 / step, lr=1e-3))
            emit(Finished(status="stopped", step=step))
            sent.append(step)

        t0 = time.monotonic()
        producer = threading.Thread(target=trainer)
        producer.start()
        await wait_for(pilot, lambda: bool(sent) and home.state.status == "stopped", what="every event applied")
        elapsed = time.monotonic() - t0
        producer.join()
        drains = home.drains - drains_before
        # Every step is on the chart, or counted as folded (the screen's copy only: the queue is bounded).
        folded = home.queue.folded + sum(int(m.split()[0].replace(",", "")) for m in home.run_log.messages()
                                         if "faster than the screen draws" in m)
        assert home.state.step == sent[0] and len(home.state.series["train_loss"]) + folded == sent[0] > 1000
        assert home.queue.high_water <= home.queue.limit + 1  # routine events stop at the limit; the end never
        assert 2 <= drains <= elapsed / DRAIN_INTERVAL_S + 2, (drains, elapsed)
        assert len(drained) == drains and len(wakes) <= drains + 1  # one wake-up per drain, not one per event
        gaps = [b - a for a, b in zip(drained, drained[1:])]
        assert min(gaps) >= DRAIN_INTERVAL_S * 0.9, gaps


async def test_nothing_runs_on_the_ui_thread_while_the_app_is_idle(recipes, tmp_path):
    """No poll: while nothing runs, no Textual or recipe-tui code runs at all on the UI thread (the app
    runs in this thread under run_test), apart from the status line's slow idle refresh."""
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(100, 30)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, timeout=60, what="the data to load")
        home.refresh_status()  # its next idle refresh is STATUS_IDLE_S away
        await pilot.pause(0.3)  # the load's last messages and the layout settle
        ours = tuple(str(Path(m.__file__).parent) for m in (textual, recipe_tui.tui))
        calls: Counter[str] = Counter()

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code.co_filename.startswith(ours):
                calls[frame.f_code.co_qualname] += 1

        drains = home.drains
        sys.setprofile(profile)
        try:
            await asyncio.sleep(STATUS_IDLE_S - 1.0)  # not pilot.pause: that would run Textual code itself
        finally:
            sys.setprofile(None)
        assert home.drains == drains and len(home.queue) == 0
        assert not calls, calls.most_common(5)


async def test_colours_come_from_the_stylesheet_and_follow_the_theme(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        loss = app.query_one("#chart-loss", Plot)
        assert (loss.color("plot--train-loss"), loss.color("plot--val-loss")) == ((80, 160, 255), (255, 160, 40))
        checklist = app.query_one(Checklist)
        assert mark("pending", checklist).style.dim

        def seed_mark_color() -> tuple[int, int, int]:
            return checklist.get_node_at_line(checklist.cursor_line).label.spans[0].style.color.triplet

        checklist.set_status("seed", "pass")
        checklist.select_item("seed")
        dark = Color.parse(app.theme_variables["text-success"]).rgb
        assert mark("pass", checklist).style.bold and seed_mark_color() == dark
        app.theme = "textual-light"
        await pilot.pause()
        light = Color.parse(app.theme_variables["text-success"]).rgb
        assert light != dark
        await wait_for(pilot, lambda: seed_mark_color() == light, what="the checklist in the new theme's colours")
