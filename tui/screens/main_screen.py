"""The app's main screen: the checklist and item detail, the charts, the dataset pane, the run log and
the status line; the keys that start jobs (enter, t, T, b) and steer them (s, p).

Training runs in a worker thread of the app, or, with ``train.nproc`` > 1 or ``T``, in processes of its own
(``tui/child_run.py``), followed like ``watch`` and steered through the run's control file; such a run can be left
running when the app quits, and opening the app again re-attaches to it.

The first frame shows before torch is imported: the data, the check registry and the last run's
curves load in a background job after it. Worker results arrive as messages (``tui/messages.py``).

One job owns the keys at a time, with one exception: stage-1 data checks only read the data, so they
may run beside training, in a process of their own (its own random numbers, one thread, lower priority).
Everything that builds a model here (stage 2 on, the browser's loss pass) waits for training.
"""
from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Tree

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.config import Experiment, RecipesFile
from recipe_tui.core.events import CheckRow, CheckStarted, Failed, Finished, LogLine, Progress

from .. import jobs
from ..checklist_results import ChecklistResults
from ..jobs import Job
from ..messages import BrowserReady, CheckReported, DataLoaded, HistoryLoaded, JobEnded, SideJobEnded
from ..run_state import RunState
from ..ui_state import UiState
from ..widgets.checklist import Checklist
from ..widgets.dataset import DatasetPane
from ..widgets.footer import KeysFooter
from ..widgets.item_detail import ItemDetail
from .apart_runs import ApartRuns
from .runs_actions import RunsActions
from .run_screen import CHART_BINDINGS, VIEW_BINDINGS, Handler, RunScreen, metrics_text, short_path


class MainScreen(RunsActions, ApartRuns, RunScreen, inherit_bindings=False):
    # All of them here, in the footer's order (inherited chart keys would come first).
    BINDINGS = [
        Binding("t", "train", "Train", id="app.train"),
        Binding("s", "stop", "Stop", id="app.stop"),
        Binding("p", "pause", "Pause", id="app.pause"),
        # Before the chart keys: comparing runs is what stage 3 on is about (at 120 columns the footer ends near b).
        Binding("r", "runs", "Runs", id="app.runs"),
        Binding("c", "change", "Change+train", id="app.change"),
        *CHART_BINDINGS,
        Binding("b", "browse", "Browse", id="app.browse"),
        *VIEW_BINDINGS,
        # After z: from about 140 columns on (below that the keys before ``? Help`` are cut from the end).
        Binding("T", "train_apart", "Train detachable", key_display="T", id="app.train-apart"),
        # inherit_bindings=False drops Screen's own: tab moves between the panes.
        Binding("tab", "app.focus_next", "Next pane", show=False, id="app.focus-next"),
        Binding("shift+tab", "app.focus_previous", "Previous pane", show=False, id="app.focus-previous"),
    ]

    def __init__(self, recipes: RecipesFile, exp: Experiment, runs: str | Path, ui: UiState | None = None,
                 overrides: tuple[str, ...] = ()) -> None:
        super().__init__(runs, ui)
        self.recipes = recipes
        self.exp = exp
        self.overrides = overrides  # ``recipe-tui --set K=V``: a run in processes of its own gets them too
        self.checks = ChecklistState.load(self.runs, exp.name)
        self.data: Future = Future()  # the splits once the load job has them (None if it failed)
        self.splits: Any = None  # the same, on the UI thread, once DataLoaded arrived
        self.checklist = Checklist(recipes, id="checklist")
        self.checklist.border_title = f"{exp.name} · checklist"
        self.detail = ItemDetail(id="detail")
        self.dataset = DatasetPane(id="dataset")
        self.dataset.border_title = f"Dataset · {exp.data.source or exp.data.factory}"
        self.results = ChecklistResults(recipes, self.checks, self.checklist, self.detail, self.dataset, self.run_log)
        self.side: Job | None = None  # stage-1 checks running beside training
        self.form_edits: dict[str, str] = {}  # the overrides form's last edits (c)

    def event_handlers(self) -> dict[type, Handler]:
        return {**super().event_handlers(), Progress: self.show_progress}

    def compose(self) -> ComposeResult:
        # Marks, the first item's detail and the findings are filled in before the first layout: content
        # that arrives during the mount pass would cost a second layout.
        self.results.restore()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.checklist
                yield self.detail
            with Vertical(id="right"):
                yield self.charts
                with Horizontal(id="bottom"):
                    yield self.dataset
                    yield self.predictions
                    yield self.run_log
        yield self.filter_bar
        yield self.status
        yield KeysFooter()

    def mounted(self) -> None:
        if self.checks.warning:
            self.run_log.add(self.checks.warning, "warning")
        # The stages the user left unfolded, and the current one (the first with work left); a first
        # launch unfolds only the current stage, so all six headings fit from 120×40 up.
        stored = self.ui.expanded.get(self.exp.name, [])
        self.checklist.unfold_only({*stored, self.checklist.current_stage()})
        self.checklist.focus()

    def on_checklist_folds_changed(self, message: Checklist.FoldsChanged) -> None:
        self.ui.expanded[self.exp.name] = message.expanded
        self.save_ui()

    def start_background(self) -> None:
        super().start_background()
        self.reattach()  # before the load job: the followed run's curves win over the last run's
        self.jobs.start("load", lambda job: jobs.load(job, self.exp, self.runs, self.data, self.post_message),
                        foreground=False)

    # -- the checklist ------------------------------------------------------------------------------
    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node.data is not None:
            self.results.show_detail(event.node.data)

    def on_checklist_run_requested(self, message: Checklist.RunRequested) -> None:
        ref = message.ref
        if ref.item == "train":
            self.action_train()
            return
        if ref.item and not self.results.items[ref.item].check:
            self.notify("A manual item: work through its guidance, then press space to tick it.")
            return
        stage = next(s for s in self.recipes.stages if s.number == ref.stage)
        ids = [ref.item] if ref.item else [i.id for i in stage.items if i.check]
        if not ids:
            self.notify(f"Stage {stage.number} has no automated items; its items are ticked by hand.")
            return
        self.start_checks(ids)

    def on_checklist_tick_requested(self, message: Checklist.TickRequested) -> None:
        refusal = self.results.toggle_tick(message.ref)
        if refusal:
            self.notify(refusal)

    # -- starting and steering jobs -----------------------------------------------------------------
    def busy(self) -> bool:
        job = self.jobs.current
        if job is None:
            return False
        self.notify(f"A {job.kind} job is running; s stops it.", severity="warning")
        return True

    def start_checks(self, item_ids: list[str]) -> None:
        job = self.jobs.current
        if job is not None and job.kind == "train":
            self.start_beside_training(item_ids)
            return
        if self.busy():
            return
        if self.side is not None:
            self.notify("The data checks beside training are still running; try again when they end.")
            return
        self.status.job = "checking…"
        self.start_job("check", lambda job: jobs.check(job, self.exp, self.check_ids(item_ids), self.runs,
                                                        self.data, self.post_message), item_ids)

    def check_ids(self, item_ids: list[str]) -> list[str]:
        items = self.results.items
        return list(dict.fromkeys(items[i].check for i in item_ids if items[i].check))

    def start_beside_training(self, item_ids: list[str]) -> None:
        """Stage-1 data checks only read the data: they run beside training, in a process of their own.
        Anything that builds a model in this process would draw from the run's random numbers: refused."""
        if any(self.recipes.stage_of(i) != 1 for i in item_ids):
            self.notify("Training is running: checks from stage 2 on build models, which would take random "
                        "numbers from the run, so they wait until it ends (s stops it). Stage-1 data checks "
                        "can run now.", severity="warning", timeout=8)
            return
        if self.side is not None:
            self.notify("The data checks beside training are still running.")
            return
        ids = self.check_ids(item_ids)
        self.run_log.add(f"running {', '.join(ids)} beside training: they only read the data, in a process "
                         "of their own (own random numbers, lower priority)")

        def body(job: Job) -> None:
            try:
                jobs.side_check(job, self.exp, ids, self.runs, self.post_message)
            finally:
                self.post_message(SideJobEnded(job.id))

        self.side = self.jobs.start("check", body, item_ids, foreground=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = self.jobs.current
        if action == "stop":
            return True if job is not None else None
        if action == "pause":
            return True if job is not None and job.kind == "train" else None
        return True

    def action_train(self) -> None:
        """Train in this process (the app's worker thread); with ``train.nproc`` > 1 torchrun starts the
        processes, in a process of its own."""
        self.start_training(apart=self.exp.train.nproc > 1)

    def action_train_apart(self) -> None:
        """T: train in a process of its own, even with one device, so that the run can outlive the app."""
        self.start_training(apart=True)

    def start_training(self, apart: bool, exp: Experiment | None = None, overrides: tuple[str, ...] = ()) -> None:
        """``exp``/``overrides``: the overrides form's experiment and its ``--set`` edits (default: the recipe)."""
        if self.busy():
            return
        exp = exp or self.exp
        self.show_run(RunState())
        if exp.train.predictions > 0 and (self.splits is None or len(self.splits.val) > 0):
            self.predictions.expect()
        self.checklist.set_status("train", "running")
        if not apart:
            self.status.job = "starting training (torch, data, model)…"
            self.start_job("train", lambda job: jobs.train(job, exp, self.runs, self.data), ("train",))
            return
        self.start_apart(overrides)

    def action_stop(self) -> None:
        job = self.jobs.current
        if job is None:
            return
        self.jobs.stop(job)
        if job.kind == "train" and self.state.active:
            self.state.status = "stopping"
        note = " (a checkpoint is written)" if job.kind == "train" else ""
        self.run_log.add(f"stopping the {job.kind} job…{note}")
        self.status.show(self.state)

    def action_pause(self) -> None:
        job = self.jobs.current
        if job is None or job.kind != "train":
            return
        pause = job.control.pause
        if pause.is_set():
            pause.clear()
            self.state.status = "training"
        else:
            pause.set()
            self.state.status = "paused"
        self.status.show(self.state)

    def action_browse(self) -> None:
        """The sample browser, filtered by what the data checks found and, after training, by loss."""
        if self.splits is None:
            self.notify("The data is still loading; try again in a moment.")
            return
        job = self.jobs.current
        if job is not None and job.kind == "train":
            self.browse_beside_training()
            return
        if self.busy():
            return
        findings = self.results.findings()
        self.status.job = "browser: losses of the last run…"
        self.start_job("browse", lambda job: jobs.browse(job, self.exp, self.runs, self.splits, findings,
                                                          self.post_message))

    def browse_beside_training(self) -> None:
        """The browser only reads samples, so it opens during training, but without the loss filter:
        the losses need a model, and building one would take random numbers from the run."""
        from ..widgets.sample_browser import SampleBrowser

        if self.exp.data.augment or self.exp.data.augmentation != "none":
            self.notify("Training is running and data.augment draws its random crops from the run's random "
                        "numbers: b opens the browser when training ends.", severity="warning", timeout=8)
            return
        self.notify("Training is running: the browser opens without the loss filter (b after training adds it).")
        self.app.push_screen(SampleBrowser(self.splits, self.results.findings()))

    def commands(self) -> list[SystemCommand]:
        return [*super().commands(),
                SystemCommand("Run item", "key enter: run the selected checklist item", self.checklist.action_run),
                SystemCommand("Tick item", "key space: tick the selected manual item", self.checklist.action_tick)]

    # -- what jobs report ---------------------------------------------------------------------------
    def on_job_ended(self, message: JobEnded) -> None:
        self.drain(everything=True)  # the job's last events first
        job = self.jobs.ended(message.job_id)
        if job is None:
            return
        self.results.job_ended(job.kind)
        self.status.job = ""
        if self.state.status == "stopping":
            self.state.status = "stopped"
        if job.kind == "train":
            self.apart_ended()
        self.status.show(self.state)

    def on_side_job_ended(self, message: SideJobEnded) -> None:
        if self.side is None or self.side.id != message.job_id:
            return
        self.side = None
        self.results.job_ended("check")

    def on_check_reported(self, message: CheckReported) -> None:
        e = message.event
        if isinstance(e, CheckStarted):
            if self.side is None:  # beside training the status line keeps showing the run
                self.status.job = f"checking {e.id}"
            self.results.check_started(e)
        elif isinstance(e, LogLine):
            self.show_log(e)
        elif isinstance(e, CheckRow):
            self.results.check_row(e)  # a rung, a trial, a member: live in the item pane
        else:
            self.results.check_result(e)

    def on_data_loaded(self, message: DataLoaded) -> None:
        self.splits = message.splits
        self.dataset.show_summary(message.summary)

    def on_browser_ready(self, message: BrowserReady) -> None:
        from ..widgets.sample_browser import SampleBrowser

        self.app.push_screen(SampleBrowser(self.splits, message.findings))

    def show_progress(self, e: Progress) -> None:
        job = self.jobs.current
        if job is not None and job.kind == "check":
            self.status.job = f"checking {e.task} {e.done:,}/{e.total:,}"

    def show_log(self, e: LogLine) -> None:
        super().show_log(e)
        self.results.log_line(e)

    def show_finished(self, e: Finished) -> None:
        super().show_finished(e)
        self.results.train_finished(e, self.state.total, self.state.run_dir, metrics_text(e.final))

    def show_failed(self, e: Failed) -> None:
        super().show_failed(e)
        self.results.train_failed(e, self.state.run_dir)

    def history_shown(self, message: HistoryLoaded) -> None:
        if message.state.status != "idle":
            self.run_log.add(f"last run ({message.state.status} at step {message.state.step:,}): "
                             f"{short_path(message.run_dir)}")

    def job_failed(self, job: Job, summary: str, tb: str) -> None:
        if job.kind == "load":
            self.dataset.show_message(f"the data did not load: {summary} (traceback in the log)")
        elif job.kind == "train":
            self.state.status = "failed"
        self.results.job_failed(job.kind, job.items, summary, tb)
