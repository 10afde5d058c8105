"""The charts pane: loss (train and val), the task metric, learning rate and gradient norm.

It owns the redraw policy: at most ``max_hz`` rebuilds a second, only of charts whose data, size or
log-y changed, and builds take at most ``budget`` of the wall time (but a chart is never older than
MAX_WAIT_S). A plotext build is pure Python and holds the GIL the trainer needs; measured on 2 busy
cores, building and then painting the charts is what the UI spends most of its time on, so the budget
is what keeps live charts from slowing training (the design's ≥0.97× rule). Big charts cost more
per build, so they refresh less often: ~0.5 s at 80×24, 2–4 s at 250×70.
"""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Grid
from textual.reactive import reactive
from textual.timer import Timer

from ..marks import follow_theme
from ..run_state import RunState
from .plot import Line, Plot

MAX_WAIT_S = 4.0


class Charts(Grid):
    log_y: reactive[bool] = reactive(False, init=False)  # l toggles it; every chart redraws at once

    def __init__(self, *, id: str | None = None, max_hz: float = 4.0, budget: float = 0.01) -> None:
        super().__init__(id=id)
        self.max_hz = max_hz
        self.budget = budget  # fraction of wall time that chart builds may take (painting adds about as much)
        self.state = RunState()
        self._next_ok = 0.0
        self._timer: Timer | None = None  # a pending "draw when the budget allows"
        self.builds = 0  # how many chart builds so far (tests and the benchmark read it)
        # Line colours: the plot--<line> component classes in app.tcss.
        self.metric_plot = Plot("val metric", [Line("val", "metric")], id="chart-metric")
        self.plots = [Plot("loss", [Line("train", "train_loss"), Line("val", "val_loss")], id="chart-loss"),
                      self.metric_plot,
                      Plot("learning rate", [Line("lr", "lr")], id="chart-lr"),
                      Plot("grad norm", [Line("grad norm", "grad_norm")], id="chart-grad")]

    def compose(self) -> ComposeResult:
        yield from self.plots

    def on_mount(self) -> None:
        follow_theme(self, lambda: self.show(self.state))  # the line colours come from app.tcss

    def data_changed(self) -> None:
        """New points arrived (the app calls this from its drain). No polling timer: every wake-up of
        the UI thread takes the GIL from the trainer, so an idle chart costs nothing."""
        self.tick()

    def show(self, state: RunState) -> None:
        """Chart another run (a new one, the restored last one, a watched one)."""
        self.state = state
        for plot in self.plots:
            plot.invalidate()
        self.metric_plot.retitle(f"val {state.metric_name or 'metric'}")
        self._next_ok = 0.0
        self.tick()

    def watch_log_y(self) -> None:
        self._next_ok = 0.0  # a key press deserves an immediate answer
        self.tick()

    def on_resize(self) -> None:
        self._next_ok = 0.0
        self.call_after_refresh(self.tick)  # sizes of the plots are known after the layout pass

    def tick(self) -> None:
        now = time.perf_counter()
        if now < self._next_ok:
            if self._timer is None:  # come back when allowed, so the newest data is drawn even if none follows
                self._timer = self.set_timer(self._next_ok - now, self._retick)
            return
        if self.state.metric_name:
            self.metric_plot.retitle(f"val {self.state.metric_name}")
        spent = 0.0
        for plot in self.plots:
            if plot.display and plot.rebuild(self.state.series, self.log_y):
                spent += plot.build_seconds
                self.builds += 1
        # After spending `spent`, wait long enough that builds stay within the budget, but never so
        # long that the charts stop looking live; and never rebuild more than max_hz times a second.
        if spent:
            self._next_ok = now + max(1 / self.max_hz, min(spent / self.budget, MAX_WAIT_S))

    def _retick(self) -> None:
        self._timer = None
        self.tick()
