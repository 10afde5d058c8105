"""What the status line and the charts show about a training run, folded from core events.

UI-free so a worker can replay a whole events.jsonl into one (re-open, ``watch``) and hand it to the
UI in one piece, instead of pushing a million events through the queue.
"""
from __future__ import annotations

import math
import time
from typing import Any

from recipe_tui.core.events import Eval, Event, Failed, Finished, Predictions, RunStarted, Step

from .series import MinMaxSeries

SERIES = ("train_loss", "train_loss_ema", "val_loss", "metric", "lr", "grad_norm")
ACTIVE = ("training", "paused", "stopping")
EMA_BETA = 0.9  # the smoothed loss: a debiased moving average over about ten logged steps (TensorBoard's kind)
RATE_TAU_S = 30.0  # steps/s: the mean since the start for this long, then a moving average with this time constant
LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "perplexity")  # metric names whose best is the lowest


class RunState:
    def __init__(self) -> None:
        self.status = "idle"  # idle | training | paused | stopping | completed | stopped | failed | interrupted
        self.recipe = ""
        self.run_dir = ""
        self.device = ""
        self.params = 0
        self.step = 0
        self.total = 0
        self.rate: float | None = None  # steps/s, smoothed
        self.metric_name = ""
        self.latest: dict[str, float] = {}
        self.reason = ""  # why it failed
        self.final: dict[str, float] = {}
        self.series: dict[str, MinMaxSeries] = {name: MinMaxSeries() for name in SERIES}
        self.version = 0  # bumps whenever a series got a point: charts rebuild only then
        self.last_event_time: float | None = None  # wall clock of the newest event (watch: is it alive?)
        self.best: tuple[int, float] | None = None  # (step, value) of the best validation metric
        self.threads = 0  # torch's CPU threads of the run (RunStarted; 0: not reported)
        self.predictions: Predictions | None = None  # the latest prediction dynamics (one per evaluation)
        self.alarms: list[dict[str, Any]] = []  # Finished.alarms (the wiggle alarm)
        self._ema, self._ema_n = 0.0, 0
        self._rate_step, self._rate_steps, self._rate_time = 0, 0, 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def apply(self, event: Event) -> None:
        self.last_event_time = time.time()
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _run_started(self, e: RunStarted) -> None:
        self.status, self.recipe, self.run_dir, self.device = "training", e.recipe, e.run_dir, e.device
        self.total, self.step, self.params, self.rate = e.steps, e.start_step, e.params, None
        self.reason, self.final, self.threads = "", {}, e.threads
        self._rate_step, self._rate_steps, self._rate_time = e.start_step, 0, 0.0

    def _step(self, e: Step) -> None:
        self.step = e.step
        self._add("train_loss", e.step, e.loss)
        if math.isfinite(e.loss):
            self._ema_n += 1
            self._ema = EMA_BETA * self._ema + (1 - EMA_BETA) * e.loss
            self._add("train_loss_ema", e.step, self._ema / (1 - EMA_BETA ** self._ema_n))
        self._add("lr", e.step, e.lr)
        if e.grad_norm is not None:
            self._add("grad_norm", e.step, e.grad_norm)
        if e.steps_per_s and e.steps_per_s > 0 and e.step > self._rate_step:
            self._smooth_rate(e.step - self._rate_step, e.steps_per_s)
        self._rate_step = e.step

    def _smooth_rate(self, steps: int, steps_per_s: float) -> None:
        """Each Step reports the rate since the previous one (evaluations and checkpoints in between included): the
        mean over the first ``RATE_TAU_S`` of training, then a moving average weighted by each interval's duration
        (about the steps done in the last ``RATE_TAU_S`` over that time). A half-second evaluation moves the ETA by
        about half a second's worth, not by minutes (an average of seconds per step would weigh the slow interval
        by its length twice)."""
        seconds = steps / steps_per_s
        self._rate_steps += steps
        self._rate_time += seconds
        if self.rate is None or self._rate_time <= RATE_TAU_S:
            self.rate = self._rate_steps / self._rate_time
        else:
            self.rate += (1 - math.exp(-seconds / RATE_TAU_S)) * (steps_per_s - self.rate)

    def _eval(self, e: Eval) -> None:
        if e.split != "val":
            return
        self._add("val_loss", e.step, e.loss)
        if e.metrics:
            self.metric_name = self.metric_name or next(iter(e.metrics))
            value = e.metrics.get(self.metric_name)
            if value is not None:
                self._add("metric", e.step, float(value))
                lower = self.metric_name.lower().endswith(LOWER_IS_BETTER)
                if self.best is None or (value < self.best[1] if lower else value > self.best[1]):
                    self.best = (e.step, float(value))

    def _finished(self, e: Finished) -> None:
        self.status, self.step, self.final, self.alarms = e.status, e.step, dict(e.final), list(e.alarms)

    def _predictions(self, e: Predictions) -> None:
        self.predictions = e

    def _failed(self, e: Failed) -> None:
        self.status, self.step, self.reason = "failed", e.step, e.reason

    def _add(self, name: str, step: int, value: float) -> None:
        self.series[name].append(step, float(value))
        self.latest[name] = float(value)
        self.version += 1

    def eta_s(self) -> float | None:
        if not self.active or not self.rate or self.total <= self.step:
            return None
        return (self.total - self.step) / self.rate

    def snapshot(self) -> dict[str, Any]:
        """The numbers a test or a log line wants, without the series."""
        return {"status": self.status, "step": self.step, "total": self.total, "rate": self.rate,
                "device": self.device, "run_dir": self.run_dir, **self.latest}


_HANDLERS = {RunStarted: RunState._run_started, Step: RunState._step, Eval: RunState._eval,
             Finished: RunState._finished, Failed: RunState._failed, Predictions: RunState._predictions}


def replay(events: Any) -> RunState:
    """A RunState from recorded events (a run dir's history)."""
    state = RunState()
    for event in events:
        state.apply(event)
    return state
