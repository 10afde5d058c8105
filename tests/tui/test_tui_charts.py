"""The charts pane driven by Pilot (issue 13, items 2, 3 and 11): live redraws while data arrives, a constant lr
drawn once, titles with the latest values, smoothing (e), zoom (w), log-y (auto past a decade), other runs
overlaid, a CurveChart on a log x axis, and the status line's rate, ETA and thread count."""
from __future__ import annotations

import re
import threading

import pytest
from rich.cells import cell_len
from rich.text import Text
from textual.app import App, ComposeResult

from recipe_tui.core.events import Eval, RunStarted, Step
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.run_state import replay
from recipe_tui.tui.widgets.charts import MAX_WAIT_S, OVERLAY_COLORS
from recipe_tui.tui.widgets.curve_chart import COLORS, CurveChart
from recipe_tui.tui.widgets.plot import RGB, Plot

from tui_helpers import screen_text, wait_for

SIZE = (160, 50)  # every chart and the lr line on screen
BRAILLE = {chr(c) for c in range(0x2801, 0x2900)}


def run_events(steps: int, first: int = 10, total: int = 4000, lr=lambda s: 3e-3, loss=lambda s: 2.3 / (1 + s / 100)):
    """A run as a trainer logs it: a step every 10, an evaluation every 100 (val accuracy peaks at step 600)."""
    out = []
    for s in range(first, steps + 1, 10):
        out.append(Step(step=s, loss=loss(s), lr=lr(s), grad_norm=1 + (s % 70) / 10, steps_per_s=500.0))
        if s % 100 == 0:
            out.append(Eval(step=s, split="val", loss=1.1 * loss(s), metrics={"accuracy": 0.9 - abs(s - 600) / 2000}))
    return out


def start(app: RecipeApp, total: int = 4000) -> None:
    app.home.queue.emit(RunStarted(run_dir="r", recipe="digits-mlp", device="cpu", steps=total, threads=1))


def feed(app: RecipeApp, events) -> None:
    for event in events:
        app.home.queue.emit(event)


def line_colors(plot: Plot) -> set[RGB]:
    """The colours of the drawn line cells (braille), as the widget paints them."""
    out = set()
    for y in range(plot.content_size.height):
        for seg in plot.render_line(y):
            if seg.style and seg.style.color and BRAILLE & set(seg.text):
                out.add(seg.style.color.get_truecolor())
    return out


def title(plot: Plot) -> str:
    """The border title as it reads (the legends are markup)."""
    return Text.from_markup(plot.border_title).plain


def x_labels(plot: Plot) -> list[str]:
    return plot.render().plain.split("\n")[-1].split()


@pytest.mark.timeout(60)
async def test_titles_carry_the_latest_values_and_a_constant_lr_is_drawn_once(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        start(app)
        feed(app, run_events(500))
        await wait_for(pilot, lambda: "train 0.3833" in title(charts.loss), what="the loss title at step 500")
        await wait_for(pilot, lambda: charts.lr.render().plain == "lr 0.003 · constant", what="the lr line")
        lr_builds, loss_builds = charts.lr.builds, charts.loss.builds
        feed(app, run_events(1000, first=510))
        await wait_for(pilot, lambda: "train 0.2091" in title(charts.loss), what="the loss title at step 1000")
        assert charts.loss.builds > loss_builds
        assert charts.lr.builds == lr_builds == 1, "a constant lr is one number, drawn once"
        assert "val 0.23" in title(charts.loss)  # 1.1 × 2.3 / 11
        await wait_for(pilot, lambda: "val accuracy 0.7 · best 0.9 @ 600" in title(charts.metric),
                       what="the metric title with its best and where")
        assert title(charts.grad) == "grad norm 3"  # the last step's: 1 + (1000 % 70) / 10
        assert "accuracy 0.7" in screen_text(app)


@pytest.mark.timeout(60)
async def test_a_moving_lr_is_a_sparkline_and_the_status_line_has_rate_eta_and_threads(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        start(app, total=4000)
        feed(app, run_events(1000, lr=lambda s: 3e-3 * (1 - s / 4000)))
        lr = app.home.charts.lr
        await wait_for(pilot, lambda: "at step 1k" in lr.render().plain, what="the lr sparkline")
        text = lr.render().plain
        assert text.startswith("lr ") and "0.00225 at step 1k (range 0.00225–0.00299" in text
        assert set(text[3:text.index(" 0.00225")]) <= set("▁▂▃▄▅▆▇█") and "█" in text and "▁" in text
        # 3,000 steps left at 500 steps/s: six seconds; the CPU thread count the run reported.
        await wait_for(pilot, lambda: "ETA 0:06" in screen_text(app), what="the ETA on the status line")
        assert "500 steps/s" in screen_text(app) and "cpu · 1 thread" in screen_text(app)


@pytest.mark.timeout(60)
async def test_charts_stay_live_while_data_arrives(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        charts.budget = 1e-9  # as if every build were slow: the wait after one still never passes a second
        start(app, total=100_000)
        events = run_events(30_000)
        done = threading.Event()

        def trainer() -> None:  # a run logging ~1,500 steps a second for about two seconds
            for k in range(0, len(events), 20):
                feed(app, events[k:k + 20])
                done.wait(0.02)
            done.set()

        builds = charts.loss.builds
        thread = threading.Thread(target=trainer)
        thread.start()
        await wait_for(pilot, done.is_set, what="the feed to end")
        thread.join()
        assert charts.loss.builds >= builds + 2, "redrawn while the data arrived, not only at the end"
        assert charts.interval == MAX_WAIT_S
        # Nothing follows the last batch: the pending redraw still draws it.
        await wait_for(pilot, lambda: "train 0.007641" in title(charts.loss), what="the newest value drawn")
        assert x_labels(charts.loss)[-1] == "30k"


@pytest.mark.timeout(60)
async def test_smoothing_zoom_and_log_y_keys(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        loss = charts.loss
        start(app)
        feed(app, run_events(2000))
        await wait_for(pilot, lambda: "train 0.1095" in title(loss), what="2,000 steps on the chart")
        train, val = loss.color("plot--train-loss"), loss.color("plot--val-loss")
        assert charts.smooth and line_colors(loss) == {loss.faint(train), train, val}
        assert loss.border_subtitle == "smoothed · log (auto)"  # 2.09 → 0.11: more than a decade
        assert "  1┤" in loss.render().plain and "0.5┤" in loss.render().plain  # values, not their logs
        await pilot.press("e")
        await wait_for(pilot, lambda: not charts.smooth and line_colors(loss) == {train, val}, what="no smoothing")
        assert loss.border_subtitle == "log (auto)"
        assert "1k" in x_labels(loss)
        await pilot.press("w")
        await wait_for(pilot, lambda: "from step 1.5k" in loss.border_subtitle, what="the recent quarter")
        labels = x_labels(loss)
        assert labels[-1] == "2k" and "1k" not in labels and all(float(v.rstrip("k")) >= 1.5 for v in labels)
        await pilot.press("w", "l")
        await wait_for(pilot, lambda: loss.border_subtitle == "", what="full history, linear y")
        assert "1k" in x_labels(loss) and "0.1┤" not in loss.render().plain
        # A loss within one decade is not put on a log axis by default.
        await pilot.press("l")
        narrow = replay([RunStarted(run_dir="n", recipe="x", device="cpu", steps=1000),
                         *run_events(1000, loss=lambda s: 1 - s / 2500)])
        charts.show(narrow)
        await wait_for(pilot, lambda: "train 0.6" in title(loss), what="the narrow run")
        assert charts.log_y is None and not charts.effective_log(loss) and "log" not in loss.border_subtitle


@pytest.mark.timeout(60)
async def test_other_runs_are_overlaid_in_their_own_colours(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts = app.home.charts
        mine = replay([RunStarted(run_dir="a", recipe="x", device="cpu", steps=1000), *run_events(1000)])
        other = replay([RunStarted(run_dir="b", recipe="x", device="cpu", steps=1000),
                        *run_events(800, loss=lambda s: 3.0 / (1 + s / 300))])
        charts.show(mine, [("lr 1e-3", other)])
        await wait_for(pilot, lambda: "lr 1e-3" in title(charts.loss), what="the overlay's legend")
        first = OVERLAY_COLORS[0]
        assert first in line_colors(charts.loss) and first in line_colors(charts.metric)
        # Its label in both titles; its latest loss too where the chart is wide enough (not at 160 columns: the
        # title says as much as fits rather than being cut).
        assert "lr 1e-3" in title(charts.metric)
        assert cell_len(title(charts.loss)) <= charts.loss.size.width - 6, title(charts.loss)
        await pilot.resize_terminal(260, 50)
        await wait_for(pilot, lambda: re.search(r"━ lr 1e-3 0\.\d+", title(charts.loss)) is not None,
                       what="the overlay's latest loss in a wide title")
        charts.show(mine)
        await wait_for(pilot, lambda: "lr 1e-3" not in title(charts.loss), what="the overlay gone")
        assert first not in line_colors(charts.loss)


@pytest.mark.timeout(60)
async def test_a_new_split_redraws_the_charts_when_the_pane_keeps_its_size(recipes, tmp_path):
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        charts, metric = app.home.charts, app.home.charts.metric
        start(app)
        feed(app, run_events(1000))
        await wait_for(pilot, lambda: "train 0.2091" in title(charts.loss), what="1,000 steps on the chart")
        await wait_for(pilot, lambda: len(metric.render().plain.split("\n")) == metric.content_size.height,
                       what="the metric chart drawn at its height")
        pane, height = charts.size, metric.content_size.height
        charts.styles.grid_rows = "3fr 1fr 1"  # the metric's row grows, the pane does not
        await wait_for(pilot, lambda: metric.content_size.height > height, what="the taller metric chart")
        assert charts.size == pane
        await wait_for(pilot, lambda: len(metric.render().plain.split("\n")) == metric.content_size.height,
                       what="the metric chart redrawn at its new height")


class CurveApp(App):
    def compose(self) -> ComposeResult:
        yield CurveChart("lr-find", id="curve")


@pytest.mark.timeout(60)
async def test_a_curve_chart_on_a_log_x_axis():
    app = CurveApp()
    async with app.run_test(size=(80, 20)) as pilot:
        chart = app.query_one(CurveChart)
        lrs = [10 ** (-6 + k * 0.1) for k in range(51)]  # 1e-6 … 0.1
        losses = [2.3 - 0.3 * k / 50 if k < 40 else 2.0 + (k - 40) for k in range(51)]
        chart.plot([("loss", lrs, losses)], log_x=True, x_label="learning rate")
        await wait_for(pilot, lambda: chart.builds >= 1, what="the curve drawn")
        assert chart.border_subtitle == "x: learning rate · log x"
        assert "loss" in title(chart) and "loss 12" in title(chart)  # the last value
        labels = x_labels(chart)
        assert {"1e-06", "0.0001", "0.01"} <= set(labels)
        assert line_colors(chart) == {COLORS[0]}
        chart.plot([("loss", lrs, losses), ("smoothed", lrs, losses)], log_x=True)
        await wait_for(pilot, lambda: "smoothed" in title(chart), what="two curves")
        assert line_colors(chart) == {COLORS[1]}, "the later curve wins the cells it shares"
