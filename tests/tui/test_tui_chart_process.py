"""plotext off the UI thread (issue 13, item 2): the charts pane has its builds made in a process of its own, gets
the same chart as an in-process build, ends that process with the app, and draws in-process when the process
cannot start or dies."""
from __future__ import annotations

import io
import subprocess

import pytest
from rich.text import Text

from recipe_tui.core.events import RunStarted, Step
from recipe_tui.tui import chart_process
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.chart_process import HEAD, serve
from recipe_tui.tui.plotext_build import build_ansi
from recipe_tui.tui.widgets.plot import Curve, Plot, ansi_rows

from tui_helpers import wait_for

SIZE = (160, 50)


def steps(first: int, last: int) -> list[Step]:
    return [Step(step=s, loss=2.3 / (1 + s / 100), lr=3e-3, grad_norm=1 + (s % 70) / 10) for s in range(first, last + 1, 10)]


async def feed_500_steps(app: RecipeApp, pilot) -> None:
    """A run started and its first 500 steps shown (the loss title says so)."""
    app.home.queue.emit(RunStarted(run_dir="r", recipe="digits-mlp", device="cpu", steps=4000))
    for event in steps(10, 500):
        app.home.queue.emit(event)
    await wait_for(pilot, lambda: "train 0.3833" in title(app.home.charts.loss), what="the loss title at step 500")


def title(plot: Plot) -> str:
    return Text.from_markup(plot.border_title).plain


def test_the_process_answers_with_what_plotext_draws_here():
    curves = [Curve("train", list(range(0, 500, 10)), [2.3 / (1 + s / 100) for s in range(0, 500, 10)], (30, 144, 255)),
              Curve("val", [100, 200, 300, 400], [1.5, 0.9, 0.6, 0.5], (255, 165, 0))]
    layout = Plot.layout(curves, 60, 14, log_y=True)
    request = chart_process.pickle.dumps((7, [("chart-loss", layout), ("chart-loss", layout)]))
    stdout = io.BytesIO()
    serve(io.BytesIO(HEAD.pack(len(request)) + request), stdout)
    reply = stdout.getvalue()
    request_id, texts = chart_process.pickle.loads(reply[HEAD.size:])
    assert request_id == 7 and len(reply) == HEAD.size + HEAD.unpack(reply[:HEAD.size])[0]
    assert texts[0] == texts[1] == build_ansi(layout)  # the same figure redrawn gives the same chart
    assert ansi_rows(texts[0]) == Plot.draw(curves, 60, 14, log_y=True)
    assert "⠁" in build_ansi(layout) or any("⠀" < ch <= "⣿" for ch in build_ansi(layout))


@pytest.mark.timeout(60)
async def test_live_charts_are_built_in_a_process_that_ends_with_the_app(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        await feed_500_steps(app, pilot)
        proc = charts.process.proc
        assert proc is not None and proc.poll() is None and charts.process.starts == 1
        assert any("⠀" < ch <= "⣿" for ch in charts.loss.render().plain), "the process's chart is on screen"
        assert title(charts.grad) == "grad norm 2"  # drawn in the same answer as the loss: 1 + (500 % 70) / 10
        builds = charts.loss.builds
        for event in steps(510, 1000):
            app.home.queue.emit(event)
        await wait_for(pilot, lambda: "train 0.2091" in title(charts.loss), what="the loss title at step 1000")
        assert charts.loss.builds > builds and charts.process.starts == 1, "one process, kept for every build"
    assert proc.wait(5) is not None and charts.process.proc is None  # ended with the app


@pytest.mark.timeout(60)
async def test_charts_are_drawn_here_when_the_process_cannot_start_or_dies(recipes, tmp_path, monkeypatch):
    def no_process(*args, **kwargs):
        raise OSError("no processes left")

    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        await feed_500_steps(app, pilot)
        proc = charts.process.proc
        assert proc is not None
        proc.kill()  # the process dies: what it was asked for, and everything after, is drawn here
        monkeypatch.setattr(subprocess, "Popen", no_process)
        for event in steps(510, 1000):
            app.home.queue.emit(event)
        await wait_for(pilot, lambda: "train 0.2091" in title(charts.loss), what="the loss title at step 1000")
        assert charts.process.failed and charts.process.proc is None
        assert x_last_label(charts.loss) == "1k"

    fresh = RecipeApp(file=recipes, runs=tmp_path / "runs2")
    async with fresh.run_test(size=SIZE) as pilot:  # Popen still fails: never started, drawn here from the first build
        charts = fresh.home.charts
        await feed_500_steps(fresh, pilot)
        assert charts.process.failed and charts.process.starts == 0 and charts.loss.builds >= 1
        assert any("⠀" < ch <= "⣿" for ch in charts.loss.render().plain)


def x_last_label(plot: Plot) -> str:
    return plot.render().plain.split("\n")[-1].split()[-1]
