"""The jobs a screen runs, each driven by one core ``RunControl`` (emit, stop, pause), the same object the
trainer and the checks get from the CLI.

``Jobs`` starts and tracks them; the functions below are the worker bodies. A body runs in a daemon thread of
its own: it only emits events (into the screen's queue, through ``job.control``), posts messages to the screen
and reads what it was given, never a widget. A Textual worker (async, no thread of its own) awaits the
thread, so worker errors still come back as ``Worker.StateChanged``. Not a Textual *thread* worker: those run
in asyncio's executor, which the interpreter waits for at exit, so a body stuck in user code (a forward that
never returns, a stuck DataLoader worker) would keep the app from quitting (Textual issue 3966). A daemon
thread can be left behind: quitting waits for it a bounded time (``Jobs.wait``).
"""
from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.message import Message
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from recipe_tui.core.config import Experiment
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import CheckResult, CheckRow, CheckStarted, Event, LogLine

from . import bridge, child_run
from .bridge import EventQueue
from .messages import BrowserReady, CheckReported, DataLoaded, HistoryLoaded, JobEnded, RunFollowed
from .shutdown import GRACE_S

# How long quitting waits for a stopped job: training gets GRACE_S to write its checkpoint (it stops at its
# next step); checks and the loss pass tick every batch and keep nothing that is not written yet, so they get a
# moment to end cleanly; the rest (loading data, NVML, watching) only read and are not waited for.
QUIT_WAIT_S = {"train": GRACE_S, "check": 0.5, "browse": 0.5}
QUIT_WAIT_OTHER_S = 0.0
ALIVE = (WorkerState.PENDING, WorkerState.RUNNING)

Post = Callable[[Message], object]


@dataclass(frozen=True)
class Job:
    id: int
    kind: str  # load | sampler | check | train (in this process, or followed: ``child_run``) | browse | watch
    control: RunControl
    items: tuple[str, ...] = ()  # the checklist items a check job runs


class UserExit(Exception):
    """A job's code raised SystemExit or KeyboardInterrupt (``sys.exit()`` in the user's code): an error of that
    job, never the end of the app."""


class Jobs:
    """At most one foreground job (check, train, browse, watch: ``current``, it owns the keys), plus
    background ones (the data load, NVML start-up). Worker errors come back to the host screen as
    ``Worker.StateChanged``; ``failure`` turns one into the job it belongs to."""

    def __init__(self, host: Widget, queue: EventQueue) -> None:
        self.host = host
        self.queue = queue
        self.current: Job | None = None
        self._workers: dict[Worker, Job] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._ids = itertools.count(1)

    def start(self, kind: str, body: Callable[[Job], object], items: Iterable[str] = (),
              foreground: bool = True) -> Job:
        """Run ``body(job)`` in a daemon thread; a foreground job posts ``JobEnded`` when it returns."""
        job = Job(next(self._ids), kind, RunControl(emit=self.queue.emit), tuple(items))
        done: Future = Future()
        done.set_running_or_notify_cancel()  # cancelling the awaiting worker (at exit) must not cancel this

        def run() -> None:
            try:
                done.set_result(body(job))
            except Exception as exc:
                done.set_exception(exc)
            except BaseException as exc:  # noqa: BLE001 - sys.exit() in user code ends the job, not the app
                done.set_exception(UserExit(f"the code called {type(exc).__name__}({exc})"))
            finally:
                if foreground:
                    self.host.post_message(JobEnded(job.id))

        async def await_thread() -> Any:
            return await asyncio.wrap_future(done)

        worker = self.host.run_worker(await_thread, name=kind, group="job" if foreground else "load",
                                      exit_on_error=False)
        thread = threading.Thread(target=run, daemon=True, name=f"recipe-tui-{kind}-{job.id}")
        self._workers[worker] = job
        self._threads[job.id] = thread
        thread.start()
        if foreground:
            self.current = job
            self.host.refresh_bindings()
        return job

    def ended(self, job_id: int) -> Job | None:
        """The foreground job with this id, which is over; None when it is not the current one."""
        job = self.current
        if job is None or job.id != job_id:
            return None
        self.current = None
        self.host.refresh_bindings()
        return job

    def failure(self, event: Worker.StateChanged) -> tuple[Job, BaseException] | None:
        """The job and its exception when ``event`` says its worker raised; forgets finished workers."""
        if event.state in ALIVE:
            return None
        job = self._workers.pop(event.worker, None)
        error = event.worker.error
        if event.state != WorkerState.ERROR or job is None or error is None:
            return None
        return job, error

    def stop(self, job: Job) -> None:
        job.control.stop.set()
        job.control.pause.clear()  # a paused trainer must wake up to see the stop

    def stop_all(self) -> None:
        for job in self._workers.values():
            self.stop(job)

    def running(self) -> list[tuple[Job, threading.Thread]]:
        """The jobs whose thread has not returned yet."""
        jobs = {job.id: job for job in self._workers.values()}
        return [(jobs[i], t) for i, t in list(self._threads.items()) if t.is_alive() and i in jobs]

    async def wait(self) -> list[tuple[Job, threading.Thread]]:
        """Until every stopped job's thread has returned (the trainer writes its checkpoint first), each at most
        its ``QUIT_WAIT_S``; returns the jobs still running after that (stuck in user code)."""
        start = time.monotonic()
        while True:
            left = [(job, t) for job, t in self.running()
                    if time.monotonic() - start < QUIT_WAIT_S.get(job.kind, QUIT_WAIT_OTHER_S)]
            if not left:
                return self.running()
            await asyncio.sleep(0.01)


def error_text(exc: BaseException) -> tuple[str, str]:
    """``Type: message`` and the full traceback of a worker's exception."""
    return f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))


# ------------------------------------------------------------------------------- worker bodies


def load(job: Job, exp: Experiment, runs: Path, data: Future, post: Post) -> None:
    """The last run's curves, then the data (``data`` gets the splits, or None when loading failed)."""
    def body() -> Any:
        try:
            history = bridge.load_history(exp, runs)
        except bridge.UnreadableHistory as exc:  # it must not keep the data from loading
            job.control.log(str(exc), "warning")
        else:
            if history is not None:
                post(HistoryLoaded(*history))
        if job.control.stopped:
            return None
        splits, summary = bridge.load_splits(exp)
        post(DataLoaded(summary, splits))
        # torch, the data and the app are loaded and live as long as the app: out of the collector's sight, a full
        # collection during a flood of events takes ~30 ms instead of ~230 (key presses wait for it).
        gc.freeze()
        return splits

    splits = None
    try:
        splits = body()
    finally:
        data.set_result(splits)  # None when the load failed: jobs waiting for the data load it themselves


def check(job: Job, exp: Experiment, check_ids: list[str], runs: Path, data: Future, post: Post) -> None:
    """Starts, log lines and results go to the screen as messages, in order; progress through the queue."""
    if not bridge.wait_for_data(data, job.control.stop):
        return
    bridge.check_job(exp, check_ids, _check_control(job, post), runs, data.result())


def side_check(job: Job, exp: Experiment, check_ids: list[str], runs: Path, post: Post) -> None:
    """Data checks beside training: ``check``, but in a process of their own (``bridge.check_process``), which
    cannot touch the training run's random numbers, threads or GIL."""
    code = bridge.check_process(exp, check_ids, _check_control(job, post), runs)
    if code != 0 and not job.control.stopped:
        raise RuntimeError(f"the data checks' process ended with exit code {code} (its output is in the log)")


def _check_control(job: Job, post: Post) -> RunControl:
    """The job's control, with check starts, log lines, table rows and results posted as messages (few, in order)
    and everything else (progress) through the queue."""
    def emit(event: Event) -> None:
        if isinstance(event, (CheckStarted, LogLine, CheckRow, CheckResult)):
            post(CheckReported(event))
        else:
            job.control.emit(event)

    return job.control.with_emit(emit)


def train(job: Job, exp: Experiment, runs: Path, data: Future) -> None:
    if bridge.wait_for_data(data, job.control.stop):
        bridge.train_job(exp, job.control, runs)


def browse(job: Job, exp: Experiment, runs: Path, splits: Any, findings: dict[str, Any], post: Post) -> None:
    """Adds the last run's per-sample losses (top losses, confusion) to the findings, then asks the
    screen to open the browser. A job like the others: it blocks training (building a model draws
    from torch's global RNG), ``s`` stops it, and quitting does not wait for a long validation pass."""
    from recipe_tui.core.control import Stopped

    def tick(*_: Any) -> None:
        if job.control.stopped:
            raise Stopped()

    try:
        losses = bridge.losses_of_last_run(exp, runs, splits, tick)
        if losses is not None:
            findings = {**findings, "losses": losses}
    except Stopped:
        return
    except Exception as exc:  # an old run of a changed model: browse without losses
        job.control.log(f"browser: no losses from the last run: {type(exc).__name__}: {exc}", "warning",
                        traceback.format_exc())
    if not job.control.stopped:
        post(BrowserReady(findings))


def watch(job: Job, run_dir: Path, post: Post) -> None:
    bridge.watch_job(run_dir, job.control, lambda state: post(HistoryLoaded(state, str(run_dir))))


def follow(job: Job, child: child_run.ChildRun, post: Post) -> None:
    """Training in processes of its own (``child_run``), started here or found running: followed like ``watch``,
    steered through its control file."""
    child_run.follow(child, job.control, lambda history, checkpoint: post(RunFollowed(child, history, checkpoint)))
