"""The charts pane: the loss (half the pane: what a run is watched for), the validation metric, the gradient norm,
and the learning rate as a one-line strip (a constant lr is one number, not a quarter of the screen).

Titles carry the latest values (train and val loss, the metric with its best and where, the gradient norm). Keys:
``l`` log-y (auto by default: on when a chart's values span more than a decade), ``e`` the smoothed loss (a moving
average, the raw curve faint behind it), ``w`` the last quarter of the steps instead of the whole run.
Other runs' curves can be drawn beside the current one (``show(state, overlays)``), each in its own colour.

The redraw policy: while data arrives, at most ``max_hz`` redraws a second and never less than one a second
(``MAX_WAIT_S``); only charts whose data, size or mode changed are drawn, so a constant lr or a metric between
evaluations costs nothing. plotext's builds run in a process of their own (``ChartProcess``): the UI thread lays the
charts out, sends them, and shows the answer (titles and charts together); without that process they are built here,
holding the GIL the trainer needs. ``budget`` (the share of wall time this thread's part may take) stretches the
interval on a slow machine, never past a second.
"""
from __future__ import annotations

import time
from itertools import cycle
from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Grid
from textual.reactive import reactive
from textual.timer import Timer

from .. import chart_titles
from ..chart_process import ChartProcess
from ..marks import follow_theme
from ..run_state import RunState
from .lr_strip import LrStrip
from .plot import RGB, Curve, Layout, Plot, ansi_rows

MAX_WAIT_S = 0.9  # while data arrives, no chart is older than this (a timer may fire late: under a second)
RECENT = 0.25  # `w`: the last quarter of the steps
# Other runs' lines: explicit colours, none of the current run's (blue train, orange val, green metric).
OVERLAY_COLORS: tuple[RGB, ...] = ((230, 100, 210), (80, 215, 215), (235, 215, 80), (240, 95, 95), (170, 160, 255),
                                   (250, 180, 200))
Overlays = Sequence[tuple[str, RunState]]
Made = list[tuple[Plot, Layout | list, tuple[str, str]]]  # (plot, what to draw, its titles)


class Charts(Grid):
    log_y: reactive[bool | None] = reactive(None, init=False)  # None: auto (a decade or more of span)
    smooth: reactive[bool] = reactive(True, init=False)
    recent: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = None, max_hz: float = 1.25, budget: float = 0.01) -> None:
        super().__init__(id=id)
        self.max_hz, self.budget = max_hz, budget
        self.state = RunState()
        self.overlays: list[tuple[str, RunState]] = []
        self._next_ok = 0.0
        self._timer: Timer | None = None  # a pending "draw when allowed"
        self.loss = Plot("loss", id="chart-loss")
        self.metric = Plot("val metric", id="chart-metric")
        self.grad = Plot("grad norm", id="chart-grad")
        self.lr = LrStrip(id="chart-lr")
        self.ticks = 0  # redraw passes so far (tests read it)
        self.interval = 1 / max_hz  # the wait after the last redraw before the next one (tests read it)
        self.process = ChartProcess()  # plotext's builds, off this thread; started with the first build
        self._dirty = False  # something asked for a redraw while the process was building
        self._apply_s = 0.0  # what showing the last answer took on this thread
        self._resize_due = False  # a redraw for a new size is queued after the layout pass

    @property
    def builds(self) -> int:
        """Chart builds so far, all charts together (tests and the benchmark read it)."""
        return self.loss.builds + self.metric.builds + self.grad.builds + self.lr.builds

    def compose(self) -> ComposeResult:
        yield from (self.loss, self.metric, self.grad, self.lr)

    def on_mount(self) -> None:
        follow_theme(self, lambda: self.show(self.state, self.overlays))  # the line colours come from app.tcss

    def on_unmount(self) -> None:
        self.process.close()

    def data_changed(self) -> None:
        """New points arrived (the screen calls this from its drain). No polling timer: every wake-up of the UI
        thread takes the GIL from the trainer, so an idle chart costs nothing."""
        self.tick()

    def show(self, state: RunState, overlays: Overlays = ()) -> None:
        """Chart a run (a new one, the restored last one, a watched one), and other runs beside it: (label, state)
        pairs, each drawn in its own colour with its label in the titles' legend."""
        self.state, self.overlays = state, list(overlays)
        for plot in (self.loss, self.metric, self.grad, self.lr):
            plot.invalidate()
        self._next_ok = 0.0
        self.tick()

    def watch_log_y(self) -> None:
        self._answer_key()

    def watch_smooth(self) -> None:
        self._answer_key()

    def watch_recent(self) -> None:
        self._answer_key()

    def _answer_key(self) -> None:
        self._next_ok = 0.0  # a key press deserves an immediate answer
        self.tick()

    def on_plot_resized(self, event: Plot.Resized) -> None:
        # A plot's size, not this pane's: a new split of the grid resizes the plots alone. The new size is drawn
        # after the layout pass, not after the rate limit's wait (a timer that fires later would wake an idle app);
        # one answer for all the plots a layout resized.
        event.stop()
        if not self._resize_due:
            self._resize_due = True
            self.call_after_refresh(self._after_resize)

    def _after_resize(self) -> None:
        self._resize_due = False
        self._answer_key()

    def tick(self) -> None:
        if self.process.busy:  # its answer ticks again: the newest data is drawn then
            self._dirty = True
            return
        now = time.monotonic()
        if now < self._next_ok:
            if self._timer is None:  # come back when allowed, so the newest data is drawn even if none follows
                self._timer = self.set_timer(self._next_ok - now, self._retick)
            return
        t0 = time.perf_counter()
        drew = self.redraw()
        spent = time.perf_counter() - t0 + self._apply_s  # this thread's share: the builds run elsewhere
        if drew:  # stretch the interval only as far as the budget asks, never past MAX_WAIT_S
            self.interval = max(1 / self.max_hz, min(spent / self.budget, MAX_WAIT_S))
            self._next_ok = now + self.interval

    def _retick(self) -> None:
        self._timer = None
        self.tick()

    def effective_log(self, plot: Plot) -> bool:
        """Whether ``plot`` draws a log y axis now: ``l``'s choice, or auto (loss and grad norm spanning a decade)."""
        if self.log_y is not None:
            return self.log_y
        if plot is self.metric:
            return False
        names = ("train_loss", "val_loss") if plot is self.loss else ("grad_norm",)
        runs = [self.state, *(s for _, s in self.overlays)]
        series = [r.series[n] for r in runs for n in names if len(r.series[n])]
        lo, hi = min((s.lo for s in series), default=0.0), max((s.hi for s in series), default=0.0)
        return lo > 0 and hi > 10 * lo

    # -- drawing ----------------------------------------------------------------------------------------
    def redraw(self) -> bool:
        """Draw the charts whose data, size or mode changed (plotext's part in the chart process, when there is
        one: they show when it answers); returns whether any was drawn."""
        self.ticks += 1
        x_min = self._x_min()
        made: Made = []
        for plot, names in ((self.loss, ("train_loss", "val_loss")), (self.metric, ("metric",)),
                            (self.grad, ("grad_norm",))):
            if not plot.display:
                continue
            log = self.effective_log(plot)
            key = (self._counts(names), x_min, log, self.smooth if plot is self.loss else None)
            layout = plot.prepare(key, lambda p=plot: self._curves(p, x_min), log_y=log)
            titles = self._titles(plot, log, x_min)
            if layout is None:
                plot.set_titles(*titles)
            else:  # the titles change with the chart, so that both always show the same data
                made.append((plot, layout, titles))
        far = [(str(plot.id), layout) for plot, layout, _ in made if isinstance(layout, Layout)]
        if not far or not self.process.submit(far, lambda texts: self._apply(made, texts)):
            self._apply(made, None)
        drew = bool(made)
        if self.lr.display:
            drew |= self.lr.show(self.state.series["lr"], self.loss.color("plot--lr"))
        return drew

    def _apply(self, made: Made, texts: list[str] | None) -> None:
        """Show a redraw's charts: plotext's ``texts`` (one per layout, in order), or, without them, drawn here."""
        t0 = time.perf_counter()
        answers = iter(texts or ())
        for plot, layout, titles in made:
            start = time.perf_counter()
            text = next(answers, None) if isinstance(layout, Layout) else None
            if text is not None:
                rows = ansi_rows(text)
            else:
                rows = plot.rows_of(layout, plot.figure() if isinstance(layout, Layout) else None)
            plot.put_rows(rows, time.perf_counter() - start)
            plot.set_titles(*titles)
        self._apply_s = time.perf_counter() - t0 if texts is not None else 0.0
        if self._dirty:
            self._dirty = False
            self.tick()

    def _counts(self, names: tuple[str, ...]) -> tuple[object, ...]:
        runs = [self.state, *(s for _, s in self.overlays)]
        return tuple((id(r), *(len(r.series[n]) for n in names)) for r in runs)

    def _x_min(self) -> float | None:
        if not self.recent:
            return None
        last = max((r.series["train_loss"].last or (0, 0))[0] for r in [self.state, *(s for _, s in self.overlays)])
        return last * (1 - RECENT) if last > 0 else None

    def _curves(self, plot: Plot, x_min: float | None) -> list[Curve]:
        width = max(1, plot.content_size.width)
        state = self.state

        def curve(run: RunState, name: str, label: str, color: RGB) -> Curve:
            xs, ys = run.series[name].points(width, x_min=x_min)
            return Curve(label, xs, ys, color)
        if plot is self.loss:
            train = self.loss.color("plot--train-loss")
            out = [curve(state, "train_loss", "train", plot.faint(train) if self.smooth else train)]
            if self.smooth:
                out.append(curve(state, "train_loss_ema", "train (smoothed)", train))
            out.append(curve(state, "val_loss", "val", self.loss.color("plot--val-loss")))
            loss = "train_loss_ema" if self.smooth else "train_loss"
            out += [curve(run, loss, label, color) for (label, run), color in zip(self.overlays, _colors())]
            return out
        name, component = ("metric", "plot--metric") if plot is self.metric else ("grad_norm", "plot--grad-norm")
        out = [curve(state, name, name, plot.color(component))]
        if plot is self.metric:
            out += [curve(run, "metric", label, color) for (label, run), color in zip(self.overlays, _colors())]
        return out

    def _titles(self, plot: Plot, log: bool, x_min: float | None) -> tuple[str, str]:
        """The chart's title and subtitle, as fully as its width allows (``chart_titles``)."""
        overlays = [(label, run, color) for (label, run), color in zip(self.overlays, _colors())]
        if plot is self.loss:
            titles = chart_titles.loss_titles(self.state, plot.color("plot--train-loss"), plot.color("plot--val-loss"),
                                              overlays)
        elif plot is self.metric:
            titles = chart_titles.metric_titles(self.state, overlays)
        else:
            titles = chart_titles.grad_titles(self.state)
        log_word = ("log" if self.log_y else "log (auto)") if log else ""
        width = plot.size.width
        subtitle = chart_titles.subtitles(plot is self.loss and self.smooth, x_min, log_word)
        return chart_titles.fit(titles, width), chart_titles.fit(subtitle, width)


def _colors() -> cycle[RGB]:
    return cycle(OVERLAY_COLORS)
