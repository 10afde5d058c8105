"""recipe-tui's Textual app: the checklist, item detail, dataset, live charts, run log and status line.

The first frame shows before torch is imported: everything heavy (torch, data, the check registry,
the last run's curves, NVML) happens in thread workers after mount. Workers only append to
``self.queue``; ``drain`` takes the queue ≤10 times a second and updates the panes in one batch.
Worker errors reach one place, ``on_worker_state_changed``.
"""
from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Tree
from textual.worker import Worker, WorkerState

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.config import Item, load_recipes
from recipe_tui.core.events import (CheckResult, CheckStarted, Checkpoint, Eval, Failed, Finished, LogLine, Progress,
                                    RunStarted, Step)

from . import bridge
from .bridge import DataLoaded, EventQueue, HistoryLoaded, JobEnded
from .run_state import RunState
from .sysinfo import SysSampler
from .widgets.charts import Charts
from .widgets.checklist import Checklist, Ref
from .widgets.dataset import DatasetPane
from .widgets.help_screen import HelpScreen
from .widgets.item_detail import ItemDetail
from .widgets.run_log import RunLog
from .widgets.status_line import StatusLine

DRAIN_HZ = 10  # the design's ceiling: more often costs the trainer GIL time for nothing visible
QUIT_WAIT_S = 10.0
EVAL_LOG_S = 10.0  # the trainer checks stop every step; this only bounds a step stuck in C code


@dataclass
class Job:
    id: int
    kind: str  # load | check | train | watch
    items: tuple[str, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)


class RecipeApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "recipe-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("t", "train", "Train", id="app.train"),
        Binding("s", "stop", "Stop", id="app.stop"),
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("l", "log_y", "Log-y", id="app.log-y"),
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(self, file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
                 watch: str | Path | None = None) -> None:
        super().__init__()
        self.runs = Path(runs)
        self.watch_dir = Path(watch) if watch is not None else None
        self.queue = EventQueue()
        self.state = RunState()
        self.sampler = SysSampler()
        self.job: Job | None = None  # the one load-free job (check, train, watch) that owns the keys
        self._jobs: dict[Worker, Job] = {}
        self._ids = itertools.count(1)
        self._splits: Any = None
        self._errors: dict[str, str] = {}  # check id → traceback of its last error
        self._current_check = ""
        self._eval_logged = -EVAL_LOG_S
        self._printed = ""  # a print() in progress (Print events arrive in pieces)
        self._handlers: dict[type, Callable[[Any], None]] = {
            RunStarted: self._on_run_started, Step: self.state_apply, Eval: self._on_eval,
            Finished: self._on_finished, Failed: self._on_failed, Checkpoint: self._on_checkpoint,
            LogLine: self._on_log, Progress: self._on_progress, CheckStarted: self._on_check_started,
            CheckResult: self._on_check_result, JobEnded: self._on_job_ended, DataLoaded: self._on_data,
            HistoryLoaded: self._on_history}
        if self.watch_dir is None:
            self.recipes = load_recipes(file)
            self.exp = self.recipes.experiment(recipe)
            self.items: dict[str, Item] = {i.id: i for i in self.recipes.items()}
            self.checks = ChecklistState.load(self.runs, self.exp.name)

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            if self.watch_dir is None:
                with Vertical(id="left"):
                    yield Checklist(self.recipes, id="checklist")
                    yield ItemDetail(id="detail")
            with Vertical(id="right"):
                yield Charts(id="charts")
                with Horizontal(id="bottom"):
                    if self.watch_dir is None:
                        yield DatasetPane(id="dataset")
                    yield RunLog(id="log")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.charts = self.query_one(Charts)
        self.run_log = self.query_one(RunLog)
        self.run_log.border_title = "Log"
        self.status = self.query_one(StatusLine)
        self.set_interval(1 / DRAIN_HZ, self.drain)
        self.set_interval(1.0, self.refresh_status)
        self.begin_capture_print(self)
        self._start_sampler()
        if self.watch_dir is not None:
            self.sub_title = f"watch {self.watch_dir}"
            self.status.watching = True
            self.charts.border_title = f"watch {self.watch_dir}"
            job = self._new_job("watch")
            self._track(job, self._watch_worker(job, self.watch_dir))
            return
        self.checklist = self.query_one(Checklist)
        self.checklist.border_title = f"{self.exp.name} · checklist"
        self.detail = self.query_one(ItemDetail)
        self.dataset = self.query_one(DatasetPane)
        self.dataset.border_title = f"Dataset · {self.exp.data.source or self.exp.data.factory}"
        for item_id in self.items:
            self.checklist.set_status(item_id, self._restored_status(item_id))
        self._show_data_checks()
        if self.checks.warning:
            self.run_log.add(self.checks.warning, "warning")
        self.checklist.focus()
        # Shown once the first layout is done: an update during the mount pass keeps a one-line height.
        self.call_after_refresh(lambda: self._show_detail(self.checklist.selected() or Ref(1)))
        job = Job(next(self._ids), "load")
        self._track(job, self._load_worker(job))

    def _restored_status(self, item_id: str) -> str:
        if self.checks.is_ticked(item_id):
            return "ticked"
        res = self.checks.result(item_id)
        return res.status if res is not None else self.checklist.status(item_id)

    # -- the bridge: drain the queue --------------------------------------------------------------
    def drain(self) -> None:
        events_ = self.queue.drain()
        if not events_:
            return
        with self.batch_update():
            for event in events_:
                handler = self._handlers.get(type(event))
                if handler is not None:
                    handler(event)
            self.status.show(self.state)

    def refresh_status(self) -> None:
        self.status.show(self.state, self.sampler.sample())

    def state_apply(self, event: Any) -> None:
        self.state.apply(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self.state.apply(e)
        if self.job is not None and self.job.pause.is_set():
            self.state.status = "paused"
        self.status.job = ""
        self.run_log.add(f"training {e.recipe} on {e.device} ({e.params:,} parameters) → {_short(e.run_dir)}")

    def _on_eval(self, e: Eval) -> None:
        self.state.apply(e)
        # The charts carry every eval; the log gets one every EVAL_LOG_S so that a fast run does not
        # flood it (each log line also costs the UI a relayout).
        now = time.monotonic()
        if now - self._eval_logged >= EVAL_LOG_S:
            self._eval_logged = now
            metrics = "".join(f", {k} {v:.4g}" for k, v in e.metrics.items())
            self.run_log.add(f"step {e.step:,}: {e.split} loss {e.loss:.4g}{metrics}")

    def _on_checkpoint(self, e: Checkpoint) -> None:
        self.run_log.add(f"checkpoint at step {e.step:,} → {_short(e.path)}")

    def _on_finished(self, e: Finished) -> None:
        self.state.apply(e)
        final = "".join(f", {k} {v:.4g}" for k, v in e.final.items())
        self.run_log.add(f"training {e.status} at step {e.step:,}{final}")
        if self.watch_dir is None:
            status = "pass" if e.status == "completed" else "skip"
            summary = (f"completed {e.step:,} steps{final}" if e.status == "completed"
                       else f"stopped at step {e.step:,} of {self.state.total:,}; checkpoint saved")
            self._record("train", CheckResult("train", status, summary, {"run_dir": self.state.run_dir, **e.final}))

    def _on_failed(self, e: Failed) -> None:
        self.state.apply(e)
        self.run_log.add(f"training failed at step {e.step:,}: {e.reason}", "error", e.detail)
        if self.watch_dir is None:
            self._errors["train"] = e.detail
            self._record("train", CheckResult("train", "fail", e.reason, {"run_dir": self.state.run_dir},
                                              hint="Lower the learning rate, or clip gradients (train.grad_clip)."))

    def _on_log(self, e: LogLine) -> None:
        self.run_log.add(e.message, e.level, e.detail, e.time)
        if e.level == "error" and e.detail and self._current_check:
            self._errors[self._current_check] = e.detail  # run_check logs the traceback just before the result

    def _on_progress(self, e: Progress) -> None:
        if self.job is not None and self.job.kind == "check":
            self.status.job = f"checking {e.task} {e.done:,}/{e.total:,}"

    def _on_check_started(self, e: CheckStarted) -> None:
        self.status.job = f"checking {e.id}"
        self._current_check = e.id
        for item_id in self._items_of(e.id):
            self.checklist.set_status(item_id, "running")

    def _on_check_result(self, e: CheckResult) -> None:
        for item_id in self._items_of(e.id):
            self._record(item_id, e)
        level = {"fail": "error", "error": "error", "warn": "warning"}.get(e.status, "info")
        self.run_log.add(f"{e.id}: {e.status.upper()} {e.summary}", level)

    def _on_job_ended(self, e: JobEnded) -> None:
        if self.job is not None and self.job.id == e.job_id:
            if self.job.kind == "train" and self.checklist.status("train") == "running":
                self.checklist.set_status("train", self._restored_status("train"))
            self.job = None
            self.status.job = ""
            self._current_check = ""
            if self.state.status == "stopping":
                self.state.status = "stopped"
            self.refresh_bindings()

    def _on_data(self, e: DataLoaded) -> None:
        self._splits = e.splits
        self.dataset.show_summary(e.summary)

    def _on_history(self, e: HistoryLoaded) -> None:
        if self.state.active or (self.job is not None and self.job.kind == "train"):
            return  # a new run started meanwhile: its curves win
        self.state = e.state
        self.charts.show(self.state)
        if self.watch_dir is None and e.state.status != "idle":
            self.run_log.add(f"last run ({e.state.status} at step {e.state.step:,}): {_short(e.run_dir)}")

    # -- checklist --------------------------------------------------------------------------------
    def _items_of(self, check_id: str) -> list[str]:
        return [i.id for i in self.items.values() if i.check == check_id]

    def _record(self, item_id: str, res: CheckResult) -> None:
        self.checks.record(item_id, res)
        self._save_checks()
        if not self.checks.is_ticked(item_id):
            self.checklist.set_status(item_id, res.status)
        if self.recipes.stage_of(item_id) == 1:
            self._show_data_checks()
        ref = self.checklist.selected()
        if ref is not None and ref.item == item_id:
            self._show_detail(ref)

    def _save_checks(self) -> None:
        try:
            self.checks.save()
        except OSError as exc:
            self.run_log.add(f"could not save the checklist state: {exc}", "warning")

    def _show_data_checks(self) -> None:
        stage = self.recipes.stages[0]
        self.dataset.show_checks([(i.id, self.checklist.status(i.id), self.checks.result(i.id))
                                  for i in stage.items if i.check])

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data is not None:
            self._show_detail(event.node.data)

    def _show_detail(self, ref: Ref) -> None:
        stage = next(s for s in self.recipes.stages if s.number == ref.stage)
        if not ref.item:
            counts: dict[str, int] = {}
            for item in stage.items:
                status = self.checklist.status(item.id)
                counts[status] = counts.get(status, 0) + 1
            self.detail.show_stage(stage.number, stage.title, counts)
            return
        item = self.items[ref.item]
        status = self.checklist.status(item.id)
        detail = self._errors.get(item.check or item.id, "") if status in ("error", "fail") else ""
        self.detail.show(item, f"stage {stage.number} · {stage.title}", status, self.checks.result(item.id),
                         self.checks.result_time(item.id), detail)

    def on_checklist_run_requested(self, message: Checklist.RunRequested) -> None:
        ref = message.ref
        if ref.item == "train":
            self.action_train()
            return
        if ref.item and not self.items[ref.item].check:
            self.notify("A manual item: work through its guidance, then press space to tick it.")
            return
        stage = next(s for s in self.recipes.stages if s.number == ref.stage)
        ids = [ref.item] if ref.item else [i.id for i in stage.items if i.check]
        if not ids:
            self.notify(f"Stage {stage.number} has no automated items; its items are ticked by hand.")
            return
        self.start_checks(ids)

    def on_checklist_tick_requested(self, message: Checklist.TickRequested) -> None:
        item = self.items[message.ref.item]
        if item.check or item.id == "train":
            self.notify("Automated items are not ticked: enter runs them.")
            return
        ticked = self.checks.toggle_tick(item.id)
        self._save_checks()
        self.checklist.set_status(item.id, "ticked" if ticked else "manual")
        self._show_detail(message.ref)

    # -- jobs -------------------------------------------------------------------------------------
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
        bridge.load_job(self.exp, self.runs, self.queue.emit, job.stop)

    @work(thread=True, exit_on_error=False, group="load")
    def _start_sampler(self) -> None:
        self.sampler.start()

    @work(thread=True, exit_on_error=False, group="job")
    def _check_worker(self, job: Job, check_ids: list[str], splits: Any) -> None:
        try:
            bridge.check_job(self.exp, check_ids, self.queue.emit, job.stop, self.runs, splits)
        finally:
            self.queue.emit(JobEnded(job.id))

    @work(thread=True, exit_on_error=False, group="job")
    def _train_worker(self, job: Job) -> None:
        try:
            bridge.train_job(self.exp, self.queue.emit, job.stop, job.pause, self.runs)
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

    # -- actions ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.watch_dir is not None and action in ("train", "stop", "pause"):
            return False  # watch mode only shows a run; another process owns it
        if action == "stop":
            return True if self.job is not None else None
        if action == "pause":
            return True if self.job is not None and self.job.kind == "train" else None
        return True

    def action_train(self) -> None:
        if self.watch_dir is not None or self._busy():
            return
        job = self._new_job("train", ("train",))
        self.state = RunState()
        self.charts.show(self.state)
        self.status.job = "starting training (torch, data, model)…"
        self.checklist.set_status("train", "running")
        self._track(job, self._train_worker(job))

    def action_stop(self) -> None:
        job = self.job
        if job is None:
            return
        job.stop.set()
        job.pause.clear()
        if job.kind == "train" and self.state.active:
            self.state.status = "stopping"
        self.run_log.add(f"stopping the {job.kind} job…" + (" (a checkpoint is written)" if job.kind == "train" else ""))
        self.status.show(self.state)

    def action_pause(self) -> None:
        job = self.job
        if job is None or job.kind != "train":
            return
        if job.pause.is_set():
            job.pause.clear()
            self.state.status = "training"
        else:
            job.pause.set()
            self.state.status = "paused"
        self.status.show(self.state)

    def action_log_y(self) -> None:
        self.charts.set_log_y(not self.charts.log_y)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(f"runs: {self.runs.resolve()}"))

    async def action_quit(self) -> None:
        """Stop every job, wait for its worker (the trainer checkpoints and returns), then exit."""
        running = [w for w in self._jobs if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        for job in self._jobs.values():
            job.stop.set()
            job.pause.clear()
        deadline = time.monotonic() + QUIT_WAIT_S
        while any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self.drain()
        self.exit(0)

    def on_unmount(self) -> None:
        for job in self._jobs.values():  # any other way out (ctrl+c twice, a crash) must not leave a job running
            job.stop.set()
        self.sampler.close()

    def on_print(self, event: events.Print) -> None:
        """print() and warnings from any thread (Textual captures them) go to the run log."""
        self._printed += event.text
        *lines, self._printed = self._printed.split("\n")
        for line in lines:
            if line.strip():
                self.run_log.add(line, "warning" if event.stderr else "info")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.action != "quit" and self.check_action(binding.action, ()):  # Textual lists Quit itself
                yield SystemCommand(binding.description, f"key {binding.key_display or binding.key}",
                                    getattr(self, f"action_{binding.action}"))
        if self.watch_dir is None:
            yield SystemCommand("Run item", "key enter: run the selected checklist item", self.checklist.action_run)
            yield SystemCommand("Tick item", "key space: tick the selected manual item", self.checklist.action_tick)


def _short(path: str) -> str:
    """A path relative to the working directory when it is inside it: log lines stay one line."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def run_app(file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
            watch: str | Path | None = None) -> int:
    """Open the app (``recipe-tui``) or watch a run dir (``recipe-tui watch``); returns the exit code."""
    from contextlib import nullcontext

    from .stderr_guard import guard_stderr

    app = RecipeApp(file=file, recipe=recipe, runs=runs, watch=watch)  # bad input fails before the screen switches
    # Watch mode runs no C code of its own and must not write into another process's runs folder.
    log_path = Path(runs) / app.exp.name / "stderr.log" if watch is None else None
    with guard_stderr(log_path) if log_path is not None else nullcontext() as guard:
        if guard is not None:
            app.driver_class = guard.driver_class
            app.error_console.file = guard.terminal  # a crash report must reach the screen, not the log
        app.run()
    if guard is not None and guard.new_bytes() > 0:
        print(f"recipe-tui: {guard.new_bytes():,} bytes of low-level stderr output were kept in {log_path}",
              file=sys.stderr)
    return app.return_code if app.return_code is not None else 0
