"""The charts pane: loss (train and val), the task metric, learning rate and gradient norm.

It owns the redraw policy: at most ``max_hz`` rebuilds a second, only of charts whose data, size or
log-y changed, and never more than ``budget`` of the UI thread's time. On a small CPU a plotext
build competes with the trainer for the GIL; the budget keeps live charts from slowing training
(the design's ≥0.97× throughput rule), at the price of a lower refresh rate for big charts.
"""
from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Grid

from ..run_state import RunState
from .plot import Line, Plot

MAX_WAIT_S = 4.0
BLUE, ORANGE, GREEN, VIOLET, GREY = (80, 160, 255), (255, 160, 40), (90, 200, 120), (190, 130, 255), (200, 200, 200)


class Charts(Grid):
    def __init__(self, *, id: str | None = None, max_hz: float = 4.0, budget: float = 0.01) -> None:
        super().__init__(id=id)
        self.max_hz = max_hz
        self.budget = budget  # fraction of wall time that chart builds may take
        self.log_y = False
        self.state = RunState()
        self._next_ok = 0.0
        self.builds = 0  # how many chart builds so far (tests and the benchmark read it)

    def compose(self) -> ComposeResult:
        yield Plot("loss", [Line("train", "train_loss", BLUE), Line("val", "val_loss", ORANGE)], id="chart-loss")
        yield Plot("val metric", [Line("val", "metric", GREEN)], id="chart-metric")
        yield Plot("learning rate", [Line("lr", "lr", VIOLET)], id="chart-lr")
        yield Plot("grad norm", [Line("grad norm", "grad_norm", GREY)], id="chart-grad")

    def on_mount(self) -> None:
        self.set_interval(1 / self.max_hz, self.tick)

    def show(self, state: RunState) -> None:
        """Chart another run (a new one, the restored last one, a watched one)."""
        self.state = state
        for plot in self.query(Plot):
            plot.invalidate()
        self.query_one("#chart-metric", Plot).border_title = f"val {state.metric_name or 'metric'}"
        self._next_ok = 0.0
        self.tick()

    def set_log_y(self, on: bool) -> None:
        self.log_y = on
        self._next_ok = 0.0  # a key press deserves an immediate answer
        self.tick()

    def on_resize(self) -> None:
        self._next_ok = 0.0
        self.call_after_refresh(self.tick)  # sizes of the plots are known after the layout pass

    def tick(self) -> None:
        now = time.perf_counter()
        if now < self._next_ok:
            return
        metric = self.query_one("#chart-metric", Plot)
        if self.state.metric_name and metric.border_title != f"val {self.state.metric_name}":
            metric.border_title = f"val {self.state.metric_name}"
        spent = 0.0
        for plot in self.query(Plot):
            if plot.display and plot.rebuild(self.state.series, self.log_y):
                spent += plot.build_seconds
                self.builds += 1
        # After spending `spent`, wait long enough that builds stay within the budget, but never so
        # long that the charts stop looking live.
        self._next_ok = now + min(spent / self.budget, MAX_WAIT_S) if spent else now
