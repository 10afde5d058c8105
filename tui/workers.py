"""Jobs: one thread worker each (``exit_on_error=False``), their stop/pause events, and the one
place where a worker's exception becomes a log entry and an ``error`` mark.

A mixin of ``RecipeApp``. Workers only call ``self.queue.emit``; the ``Job`` they get carries the
events the UI sets (stop, pause), so cancellation reaches the trainer's loop and every check's ``tick``.
"""
from __future__ import annotations

import asyncio
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from textual import work
from textual.worker import Worker, WorkerState

from recipe_tui.core.events import CheckResult

from . import bridge
from .bridge import JobEnded

QUIT_WAIT_S = 10.0  # the trainer checks stop every step; this only bounds a step stuck in C code


@dataclass
class Job:
    id: int
    kind: str  # load | check | train | watch
    items: tuple[str, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)


class JobRunner:
    """Needs from the app: exp, runs, queue, job, _jobs, _ids, _splits, status, run_log, dataset, state,
    checklist, items, _errors, ``_record``, ``drain`` and Textual's ``notify``/``refresh_bindings``/``exit``."""

    def _new_job(self, kind: str, items: Iterable[str] = ()) -> Job:
        self.job = Job(next(self._ids), kind, tuple(items))
        self.refresh_bindings()
        return self.job

    def _busy(self) -> bool:
        if self.job is None:
            return False
        self.notify(f"A {self.job.kind} job is running; s stops it.", severity="warning")
        return True

    def start_checks(self, item_ids: list[str]) -> None:
        if self._busy():
            return
        check_ids = list(dict.fromkeys(self.items[i].check for i in item_ids if self.items[i].check))
        self.status.job = "checking…"
        job = self._new_job("check", item_ids)
        self._track(job, self._check_worker(job, check_ids, self._splits))

    def _track(self, job: Job, worker: Worker) -> None:
        """Called on the UI thread with the Worker that ``@work`` returned, before its messages are handled."""
        self._jobs[worker] = job

    @work(thread=True, exit_on_error=False, group="load")
    def _load_worker(self, job: Job) -> None:
        def emit(event: Any) -> None:
            if isinstance(event, bridge.DataLoaded):
                self._loaded_splits = event.splits  # for jobs started before the UI thread drains this
            self.queue.emit(event)

        try:
            bridge.run_detachable(lambda: bridge.load_job(self.exp, self.runs, emit, job.stop), job.stop, 0.2)
        finally:
            self._data_ready.set()

    def _wait_for_data(self, job: Job) -> bool:
        """Jobs started while the data loads wait for it: two loads at once would download into the same
        folder (cifar10's first run) and hold the data twice. False when the job was stopped meanwhile."""
        while not self._data_ready.wait(0.05):
            if job.stop.is_set():
                return False
        return True

    @work(thread=True, exit_on_error=False, group="load")
    def _start_sampler(self) -> None:
        self.sampler.start()

    @work(thread=True, exit_on_error=False, group="job")
    def _check_worker(self, job: Job, check_ids: list[str], splits: Any) -> None:
        try:
            if not self._wait_for_data(job):
                return
            splits = splits if splits is not None else self._loaded_splits
            run = lambda: bridge.check_job(self.exp, check_ids, self.queue.emit, job.stop, self.runs, splits)  # noqa: E731
            bridge.run_detachable(run, job.stop, QUIT_WAIT_S)
        finally:
            self.queue.emit(JobEnded(job.id))

    @work(thread=True, exit_on_error=False, group="job")
    def _train_worker(self, job: Job) -> None:
        try:
            if self._wait_for_data(job):
                bridge.train_job(self.exp, self.queue.emit, job.stop, job.pause, self.runs)
        finally:
            self.queue.emit(JobEnded(job.id))

    @work(thread=True, exit_on_error=False, group="job")
    def _browse_worker(self, job: Job, findings: dict[str, Any]) -> None:
        """Adds the last run's per-sample losses (top losses, confusion) to the findings, then opens the browser.

        A job like the others: it blocks training (building a model draws from torch's global RNG), ``s``
        stops it, and quitting does not wait for a long validation pass (``run_detachable``).
        """
        from recipe_tui.core.checks import CheckStopped
        from recipe_tui.core.events import LogLine

        from .widgets.sample_browser import SampleBrowser

        def tick(*_: Any) -> None:
            if job.stop.is_set():
                raise CheckStopped()

        try:
            try:
                losses = bridge.run_detachable(lambda: bridge.losses_of_last_run(self.exp, self.runs, self._splits, tick),
                                               job.stop, 0.2)
                if losses is not None:
                    findings["losses"] = losses
            except CheckStopped:
                return
            except Exception as exc:  # an old run of a changed model: browse without losses
                self.queue.emit(LogLine(f"browser: no losses from the last run: {type(exc).__name__}: {exc}",
                                        "warning", traceback.format_exc()))
            if not job.stop.is_set():
                self.call_from_thread(self.push_screen, SampleBrowser(self._splits, findings))
        finally:
            self.queue.emit(JobEnded(job.id))

    @work(thread=True, exit_on_error=False, group="job")
    def _watch_worker(self, job: Job, run_dir: Path) -> None:
        bridge.watch_job(run_dir, self.queue.emit, job.stop)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place where a worker's exception becomes a log entry and an ``error`` mark."""
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        job = self._jobs.pop(event.worker, None)
        if event.state != WorkerState.ERROR or job is None:
            return
        exc = event.worker.error
        tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.drain()  # events emitted before the failure go first
        self.run_log.add(f"{job.kind} failed: {type(exc).__name__}: {exc}", "error", tb)
        if job.kind == "load":
            self.dataset.show_message(f"the data did not load: {type(exc).__name__}: {exc} (traceback in the log)")
        elif job.kind == "train":
            self.state.status = "failed"
            self._errors["train"] = tb
            self._record("train", CheckResult("train", "error", f"{type(exc).__name__}: {exc}",
                                              hint="The traceback is in the log (tab, then enter unfolds it)."))
        elif job.kind == "check":
            for item_id in job.items:
                if self.checklist.status(item_id) == "running":
                    self._errors[self.items[item_id].check or item_id] = tb
                    self._record(item_id, CheckResult(item_id, "error", f"{type(exc).__name__}: {exc}"))

    async def action_quit(self) -> None:
        """Stop every job, wait for its worker (the trainer checkpoints and returns), then exit."""
        running = [w for w in self._jobs if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        for job in self._jobs.values():
            job.stop.set()
            job.pause.clear()
        deadline = time.monotonic() + QUIT_WAIT_S
        alive = (WorkerState.PENDING, WorkerState.RUNNING)
        while any(w.state in alive for w in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.drain()
        self.exit(0)

    def on_unmount(self) -> None:
        for job in self._jobs.values():  # any other way out (ctrl+c twice, a crash) must not leave a job running
            job.stop.set()
        self.sampler.close()
