"""What the app's two home screens share: a training run on the charts, in the log and on the status
line, fed by the screen's jobs through its event queue.

Worker threads emit into ``self.queue``. The first event after a drain posts one ``EventsPending``
(several collapse into one, ``can_replace``); the screen then drains everything at once, at most once
every ``DRAIN_INTERVAL_S`` (a one-shot timer waits out the rest of the interval), and updates the panes
in one batch. So a flood of events costs at most 5 drains a second and nothing wakes the UI while no
job emits. Subclasses compose the panes and add their own event handlers (``event_handlers``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import events
from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker

from recipe_tui.core.events import Checkpoint, Eval, Failed, Finished, LogLine, Predictions, RunStarted, Step

from .. import jobs, quitting
from ..bridge import EventQueue
from ..child_run import ChildRun
from ..jobs import Job, Jobs, error_text
from ..messages import EventsPending, HistoryLoaded
from ..run_state import RunState
from ..sysinfo import SysSampler
from ..ui_state import UiState
from ..widgets.charts import Charts
from ..widgets.filter_bar import FilterBar, FilterRequested
from ..widgets.predictions import PredictionsPane
from ..widgets.run_log import RunLog
from ..widgets.status_line import StatusLine

# Half the design's 10 Hz ceiling: every wake-up of the UI thread takes the GIL from the trainer, and the
# status line (1 Hz) and charts (1–2 Hz) show nothing faster anyway. Check results and the end
# of a job are messages of their own, so they show at once.
DRAIN_INTERVAL_S = 0.2
# While a run trains, every drain takes the GIL from its thread and repaints the log, the status line and the charts
# (each frame ~5 ms of this thread at 160×50): one drain per chart refresh (Charts.max_hz), the status line's
# 1 Hz reading taken in the same frame.
DRAIN_TRAINING_S = 0.8
# At most this many events per drain (~45 ms of handlers on this 2-core box): a key press never waits long
# behind a flood, and 5 drains a second still take 100,000 events/s. Beyond that the queue folds (EventQueue).
DRAIN_TAKE = 20_000
FOLDED_LOG_S = 10.0  # how often the log may say that a flood's routine events were folded
# The machine's load on the status line (step, rate and ETA refresh with it): every second while a job
# runs, every few seconds while idle, so that an idle app costs next to nothing.
STATUS_BUSY_S, STATUS_IDLE_S = 1.0, 5.0

Handler = Callable[[Any], None]

# The charts' keys, on both home screens.
CHART_BINDINGS = [
    Binding("l", "log_y", "Log-y", id="app.log-y"),
    Binding("e", "smooth", "Smooth", id="app.smooth"),
    Binding("w", "recent", "Recent", id="app.recent"),
]

# Keys for looking at the panes, on both home screens.
VIEW_BINDINGS = [
    Binding("z", "zoom", "Zoom", id="app.zoom"),
    Binding("g", "top", "Top", show=False, id="app.top"),
    Binding("G", "bottom", "Bottom", show=False, id="app.bottom"),
]


class RunScreen(Screen[None]):
    BINDINGS = [*CHART_BINDINGS, *VIEW_BINDINGS]
    ALLOW_IN_MAXIMIZED_VIEW = "Footer, #status, #filter"

    def __init__(self, runs: str | Path, ui: UiState | None = None) -> None:
        super().__init__()
        self.runs = Path(runs)
        self.ui = ui if ui is not None else UiState.load(self.runs)
        self.queue = EventQueue(wake=self._wake)
        self.jobs = Jobs(self, self.queue)
        self.sampler = SysSampler()
        self.state = RunState()
        self.charts = Charts(id="charts")
        self.run_log = RunLog(id="log")
        self.predictions = PredictionsPane(id="predictions")  # in #bottom once the run on the charts has some
        self.status = StatusLine(id="status")
        self.filter_bar = FilterBar(id="filter")  # `/` in the checklist or the log
        self.handlers: dict[type, Handler] = self.event_handlers()
        self.drains = 0  # how many drains took events (tests and benchmarks read it)
        self._last_drain = float("-inf")
        self._drain_timer: Timer | None = None
        self._status_timer: Timer | None = None
        self._status_at = float("-inf")  # when the status line last took a reading
        self._printed = ""  # a print() in progress (Print events arrive in pieces)
        self.session_run = ""  # the run dir of the last run started in this session (the exit line names it)
        self.last_checkpoint: int | None = None  # its last checkpoint's step
        self.apart: ChildRun | None = None  # the run followed in processes of its own (MainScreen)
        self._folded_logged = float("-inf")
        self._predictions_due = False  # a drain applied Predictions: the pane shows the latest once, after it

    def event_handlers(self) -> dict[type, Handler]:
        """Event type → handler: ``drain`` looks events up here instead of an if/elif chain."""
        return {RunStarted: self.show_run_started, Step: self.show_step, Eval: self.show_eval,
                Finished: self.show_finished, Failed: self.show_failed, Checkpoint: self.show_checkpoint,
                LogLine: self.show_log, Predictions: self.show_predictions}

    # -- life cycle ---------------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.run_log.border_title = "Log"
        if self.ui.warning:
            self.run_log.add(self.ui.warning, "warning")
        self.charts.set_reactive(Charts.log_y, self.ui.log_y)
        self.charts.set_reactive(Charts.smooth, self.ui.smooth)
        self.charts.set_reactive(Charts.recent, self.ui.recent)
        self.charts.show(self.state)
        self.refresh_status()
        self.app.begin_capture_print(self)
        # After the first frame: importing torch in a worker holds the GIL for long stretches, which
        # would otherwise delay the very frame it is meant not to delay.
        self.call_after_refresh(self.start_background)
        self.mounted()

    def mounted(self) -> None:
        """Called at the end of ``on_mount``."""

    def start_background(self) -> None:
        self.jobs.start("sampler", lambda job: self.sampler.start(), foreground=False)

    def start_job(self, kind: str, body: Callable[[Job], object], items: Iterable[str] = ()) -> Job:
        """Start the foreground job (it owns the keys); the status line follows it every second."""
        job = self.jobs.start(kind, body, items)
        self.refresh_status()
        return job

    def on_unmount(self) -> None:
        self.jobs.stop_all()  # any way out (quit, ctrl+c twice, a crash) must not leave a job running
        self.app.end_capture_print(self)
        self.sampler.close()

    async def stop_jobs(self, file: str | Path | None = None, detach: bool = False) -> list[str]:
        """Stop every job and wait, bounded, for its thread (the trainer checkpoints and returns); show the rest.
        ``detach``: a run in processes of its own (``apart``) is left running instead. Returns what to print after
        exit: the session's run and how to resume it (``file``: the recipes file to name), or where a run left
        running is; and any job that did not return (user code stuck), also noted in the run's events.jsonl."""
        job, apart, paused = self.jobs.current, self.apart, self.state.status == "paused"
        detach = detach and apart is not None
        if detach:
            apart.detached.set()  # before the stop below: the follower lets go without asking the run to stop
        elif job is not None and job.kind == "train" and self.state.active:
            self.state.status = "stopping"
            self.run_log.add("stopping the train job… (a checkpoint is written)")
            self.status.show(self.state)
        self.jobs.stop_all()
        stuck = await self.jobs.wait()
        self.drain(everything=True)
        if apart is not None and (detach or not apart.ended()):
            line = quitting.apart_line(apart.run_dir and short_path(str(apart.run_dir)), apart.top, self.state.step,
                                       self.state.total, apart.log_path, paused, detach, file)
            return [line]  # its follower only reads: nothing of the run is left behind in this process
        lines = []
        for job, thread in stuck:
            line = quitting.stuck_line(job.kind, thread, jobs.QUIT_WAIT_S.get(job.kind, jobs.QUIT_WAIT_OTHER_S))
            lines.append(line)
            if job.kind == "train" and self.session_run:
                quitting.record_stuck(self.session_run, line.removeprefix("recipe-tui: "))
                self.state.status = "interrupted"
        if self.session_run:
            lines.insert(0, quitting.run_line(short_path(self.session_run), self.state.status, self.state.step,
                                              self.state.total, self.last_checkpoint, file, self.state.reason))
        return lines

    def refresh_status(self) -> None:
        if self._status_timer is not None:
            self._status_timer.stop()
        self._status_at = time.monotonic()
        self.status.reading = self.sampler.sample()
        self.status.show(self.state)
        busy = self.jobs.current is not None or self.state.active
        self._status_timer = self.set_timer(STATUS_BUSY_S if busy else STATUS_IDLE_S, self.refresh_status)

    # -- the event queue ----------------------------------------------------------------------------
    def _wake(self) -> None:
        """Called by the queue from any thread, once per drain: non-blocking and thread-safe."""
        self.post_message(EventsPending())

    def on_events_pending(self, _: EventsPending) -> None:
        if self._drain_timer is not None:
            return  # a drain is already due
        interval = DRAIN_TRAINING_S if self.state.status == "training" else DRAIN_INTERVAL_S
        wait = self._last_drain + interval - time.monotonic()
        if wait > 0:
            self._drain_timer = self.set_timer(wait, self._timed_drain)
        else:
            self.drain()

    def _timed_drain(self) -> None:
        self._drain_timer = None
        self.drain()

    def drain(self, everything: bool = False) -> None:
        """Take what the workers emitted since the last drain and update the panes in one batch.
        Handlers of messages that must come after a job's events (its end, its failure) call it first.

        A drain takes at most ``DRAIN_TAKE`` events, so that keys stay responsive under a flood (a tiny model
        logging every step); the rest waits for the next drain. The queue itself is bounded (``EventQueue``).
        ``everything``: all that is queued now (before a job's end is shown)."""
        self._last_drain = time.monotonic()
        events_ = self.queue.drain(len(self.queue) if everything else DRAIN_TAKE)
        if len(self.queue):  # more than one drain takes: the rest after the interval
            self.on_events_pending(EventsPending())
        self._note_folded()
        if not events_:
            return
        self.drains += 1
        with self.app.batch_update(), self.run_log.batch():
            version = self.state.version
            for event in events_:
                handler = self.handlers.get(type(event))
                if handler is not None:
                    handler(event)
            if self._predictions_due:
                self._predictions_due = False
                self.predictions.show(self.state.predictions)
            if time.monotonic() - self._status_at >= 0.7 * STATUS_BUSY_S:
                self.refresh_status()  # in this frame, not in one of its own a moment later
            else:
                self.status.show(self.state)
            if self.state.version != version:
                self.charts.data_changed()

    def _note_folded(self) -> None:
        """Say (at most every ``FOLDED_LOG_S``) that the screen skipped routine events of a flood."""
        now = time.monotonic()
        if self.queue.folded and now - self._folded_logged >= FOLDED_LOG_S:
            self._folded_logged = now
            self.run_log.add(f"{self.queue.take_folded():,} step events arrived faster than the screen draws them "
                             "and were left off the charts; the run dir's events.jsonl has every one", "warning")

    # -- training events ----------------------------------------------------------------------------
    def show_run_started(self, e: RunStarted) -> None:
        self.state.apply(e)
        job = self.jobs.current
        if job is not None and job.control.pause.is_set():
            self.state.status = "paused"
        self.status.job = ""
        self.session_run = e.run_dir
        self.last_checkpoint = e.start_step if e.start_step else None
        self.run_log.add(f"training {e.recipe} on {e.device} ({e.params:,} parameters) → {short_path(e.run_dir)}")

    def show_step(self, e: Step) -> None:
        self.state.apply(e)

    def show_eval(self, e: Eval) -> None:
        self.state.apply(e)
        # Every eval updates one folded log line (key "eval"): the latest numbers stay in view without
        # flooding the log, and a warning logged meanwhile stays above the next one.
        self.run_log.add(f"step {e.step:,}: {e.split} loss {e.loss:.4g}{metrics_text(e.metrics)}", key="eval")

    def show_checkpoint(self, e: Checkpoint) -> None:
        self.last_checkpoint = e.step
        # The run dir is in the "training … →" line; the file name is enough here (one line at 80 columns).
        self.run_log.add(f"checkpoint at step {e.step:,} → {Path(e.path).name}", key="checkpoint")

    def show_finished(self, e: Finished) -> None:
        self.state.apply(e)
        self.run_log.add(f"training {e.status} at step {e.step:,}{metrics_text(e.final)}")

    def show_failed(self, e: Failed) -> None:
        self.state.apply(e)
        self.run_log.add(f"training failed at step {e.step:,}: {e.reason}", "error", e.detail)

    def show_log(self, e: LogLine) -> None:
        self.run_log.add(e.message, e.level, e.detail, e.time)

    def show_predictions(self, e: Predictions) -> None:
        # A drain can hold several evaluations' predictions (a tiny model evaluates many times a second): the pane
        # draws only the latest, once, after the drain's other events.
        self.state.apply(e)
        self._predictions_due = True

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        # No drain first: events queued after this message was posted (a watched run goes on) belong
        # after the history, and the next drain applies them to it.
        job = self.jobs.current
        if self.state.active or (job is not None and job.kind == "train"):
            return  # a new run started meanwhile: its curves win
        if self.session_run and Path(message.run_dir) == Path(self.session_run):
            return  # this session followed it (re-attached) and shows it already
        self.show_run(message.state)
        self.history_shown(message)

    def history_shown(self, message: HistoryLoaded) -> None:
        """Called after a recorded run was put on the charts."""

    def show_run(self, state: RunState) -> None:
        """Chart another run (a new one, the restored last one, a watched one)."""
        self.state = state
        self.charts.show(state, self.charts.overlays)  # other runs laid over stay until the runs view drops them
        self.status.show(state)
        self.predictions.show(state.predictions)

    # -- worker failures ----------------------------------------------------------------------------
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place where a worker's exception becomes a log entry (and, per screen, a mark)."""
        failure = self.jobs.failure(event)
        if failure is None:
            return
        job, exc = failure
        summary, tb = error_text(exc)
        self.drain(everything=True)  # events emitted before the failure go first
        self.run_log.add(f"{job.kind} failed: {summary}", "error", tb)
        self.job_failed(job, summary, tb)

    def job_failed(self, job: Job, summary: str, tb: str) -> None:
        """Called after a job's worker raised and the log said so."""

    # -- keys and the rest --------------------------------------------------------------------------
    def action_log_y(self) -> None:
        """l: auto ↔ the other scale than auto shows now (every press changes what the loss chart shows)."""
        charts = self.charts
        charts.log_y = self.ui.log_y = None if charts.log_y is not None else not charts.effective_log(charts.loss)
        self.save_ui()

    def action_smooth(self) -> None:
        self.charts.smooth = self.ui.smooth = not self.charts.smooth
        self.save_ui()

    def action_recent(self) -> None:
        self.charts.recent = self.ui.recent = not self.charts.recent
        self.save_ui()

    def save_ui(self) -> None:
        problem = self.ui.save()
        if problem:
            self.run_log.add(problem, "warning")

    def on_filter_requested(self, message: FilterRequested) -> None:
        self.filter_bar.open(message.target, message.text, message.placeholder)

    def action_zoom(self) -> None:
        """z: the focused pane fills the screen (Textual's maximize); z or escape gives the layout back."""
        if self.maximized is not None:
            self.minimize()
        elif self.focused is None or not self.maximize(self.focused):
            self.notify("Nothing to zoom here: tab to a pane first.")

    def action_top(self) -> None:
        if self.focused is not None:
            self.focused.action_scroll_home()  # the checklist moves its cursor to the first line

    def action_bottom(self) -> None:
        if self.focused is not None:
            self.focused.action_scroll_end()

    def on_print(self, event: events.Print) -> None:
        """print() and warnings from any thread (Textual captures them) go to the run log."""
        self._printed += event.text
        *lines, self._printed = self._printed.split("\n")
        for line in lines:
            if line.strip():
                self.run_log.add(line, "warning" if event.stderr else "info")

    def commands(self) -> list[SystemCommand]:
        """The command palette's entries for this screen's keys (the enabled ones)."""
        out = []
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.show and self.check_action(binding.action, ()):  # not tab, g/G: moves, not actions
                out.append(SystemCommand(binding.description, f"key {binding.key_display or binding.key}",
                                         getattr(self, f"action_{binding.action}")))
        return out


def metrics_text(values: dict[str, float]) -> str:
    """``, accuracy 0.9749, val_loss 0.1153``: numbers to append to a log line or a summary."""
    return "".join(f", {k} {v:.4g}" for k, v in values.items())


def short_path(path: str) -> str:
    """A path relative to the working directory when it is inside it: log lines stay one line."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
