"""recipe-tui's Textual app: the checklist, item detail, dataset, live charts, run log and status line.

The first frame shows before torch is imported: everything heavy (torch, data, the check registry,
the last run's curves, NVML) happens in thread workers after mount. Workers only append to
``self.queue``; ``drain`` takes the queue ≤10 times a second and updates the panes in one batch.
Worker errors reach one place, ``on_worker_state_changed``.
"""
from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path
from typing import Any, Iterable

from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Tree
from textual.worker import Worker

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.config import ConfigError, Item, load_recipes

from .bridge import EventQueue
from .dispatch import EventDispatch, short_path
from .run_state import RunState
from .sysinfo import SysSampler
from .widgets.charts import Charts
from .widgets.checklist import Checklist, Ref
from .widgets.dataset import DatasetPane
from .widgets.help_screen import HelpScreen
from .widgets.item_detail import ItemDetail
from .widgets.run_log import RunLog
from .widgets.status_line import StatusLine
from .workers import Job, JobRunner

# Below the design's 10 Hz ceiling: every wake-up of the UI thread takes the GIL from the trainer, and
# the status line (1 Hz) and charts (≤4 Hz, budgeted) show nothing faster anyway.
DRAIN_HZ = 5


class RecipeApp(EventDispatch, JobRunner, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "recipe-tui"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("t", "train", "Train", id="app.train"),
        Binding("s", "stop", "Stop", id="app.stop"),
        Binding("p", "pause", "Pause", id="app.pause"),
        Binding("l", "log_y", "Log-y", id="app.log-y"),
        Binding("b", "browse", "Browse", id="app.browse"),
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
        self._loaded_splits: Any = None  # set by the load worker's thread, before the UI drains DataLoaded
        self._data_ready = threading.Event()  # the load job ended (loaded or failed)
        self._errors: dict[str, str] = {}  # check id → traceback of its last error
        self._current_check = ""
        self._eval_logged = float("-inf")
        self._printed = ""  # a print() in progress (Print events arrive in pieces)
        self._handlers = self.event_handlers()
        if self.watch_dir is not None and not self.watch_dir.is_dir():
            raise ConfigError(f"{self.watch_dir}: no such run directory (watch takes runs/<recipe>/<timestamp>).")
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
                    yield self._compose_checklist()
                    yield self.detail
            with Vertical(id="right"):
                yield Charts(id="charts")
                with Horizontal(id="bottom"):
                    if self.watch_dir is None:
                        self.dataset = DatasetPane(id="dataset")
                        self.dataset.border_title = f"Dataset · {self.exp.data.source or self.exp.data.factory}"
                        self._show_data_checks()  # before the first layout, like the checklist
                        yield self.dataset
                    yield RunLog(id="log")
        yield StatusLine(id="status")
        yield Footer()

    def _compose_checklist(self) -> Checklist:
        """The checklist with its restored marks and the detail of its first item, filled in before the
        first layout: content that arrives during the mount pass would cost a second layout, and the
        detail pane would keep the one-line height it had when empty."""
        self.checklist = Checklist(self.recipes, id="checklist")
        self.checklist.border_title = f"{self.exp.name} · checklist"
        self.detail = ItemDetail(id="detail")
        for item_id in self.items:
            self.checklist.set_status(item_id, self._restored_status(item_id))
        first = self.recipes.stages[0]
        self._show_detail(Ref(first.number, first.items[0].id) if first.items else Ref(first.number))
        return self.checklist

    def on_mount(self) -> None:
        self.charts = self.query_one(Charts)
        self.charts.show(self.state)
        self.run_log = self.query_one(RunLog)
        self.run_log.border_title = "Log"
        self.status = self.query_one(StatusLine)
        self.set_interval(1 / DRAIN_HZ, self.drain)
        self.set_interval(1.0, self.refresh_status)
        self.begin_capture_print(self)
        if self.watch_dir is not None:
            self.status.watching = True
            self.run_log.add(f"watching {short_path(str(self.watch_dir))}: another process writes it, "
                             "training keys are off")
        else:
            if self.checks.warning:
                self.run_log.add(self.checks.warning, "warning")
            self.checklist.focus()
        # After the first frame: importing torch in a worker holds the GIL for long stretches, which
        # would otherwise delay the very frame it is meant not to delay.
        self.call_after_refresh(self._start_background)

    def _start_background(self) -> None:
        self._start_sampler()
        if self.watch_dir is not None:
            job = self._new_job("watch")
            self._track(job, self._watch_worker(job, self.watch_dir))
        else:
            job = Job(next(self._ids), "load")
            self._track(job, self._load_worker(job))

    def _restored_status(self, item_id: str) -> str:
        if self.checks.is_ticked(item_id):
            return "ticked"
        res = self.checks.result(item_id)
        return res.status if res is not None else self.checklist.status(item_id)

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

    # -- actions ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.watch_dir is not None and action in ("train", "stop", "pause", "browse"):
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
        note = " (a checkpoint is written)" if job.kind == "train" else ""
        self.run_log.add(f"stopping the {job.kind} job…{note}")
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

    def action_browse(self) -> None:
        """The sample browser, filtered by what the data checks found and, after training, by loss."""
        if self._splits is None:
            self.notify("The data is still loading; try again in a moment.")
            return
        if self._busy():  # e.g. training: building a model for the losses would draw from its RNG
            return
        findings = {cid: res for cid in ("data-stats", "duplicates", "outliers", "label-issues")
                    if (res := self.checks.result(cid)) is not None}
        job = self._new_job("browse")
        self.status.job = "browser: losses of the last run…"
        self._track(job, self._browse_worker(job, findings))

    def action_log_y(self) -> None:
        self.charts.set_log_y(not self.charts.log_y)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(f"runs: {self.runs.resolve()}"))

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


def run_app(file: str | Path | None = None, recipe: str | None = None, runs: str | Path = "runs",
            watch: str | Path | None = None) -> int:
    """Open the app (``recipe-tui``) or watch a run dir (``recipe-tui watch``); returns the exit code."""
    from contextlib import nullcontext

    from .stderr_guard import guard_stderr

    app = RecipeApp(file=file, recipe=recipe, runs=runs, watch=watch)  # bad input fails before the screen switches
    # Watch mode runs no C code of its own and must not write into another process's runs folder.
    from recipe_tui.core.paths import inside
    log_path = inside(runs, app.exp.name, "stderr.log") if watch is None else None
    with guard_stderr(log_path) if log_path is not None else nullcontext() as guard:
        if guard is not None:
            app.driver_class = guard.driver_class
            app.error_console.file = guard.terminal  # a crash report must reach the screen, not the log
        app.run()
    if guard is not None and guard.new_bytes() > 0:
        print(f"recipe-tui: {guard.new_bytes():,} bytes of low-level stderr output were kept in {log_path}",
              file=sys.stderr)
    return app.return_code if app.return_code is not None else 0
