"""The UI side of the bridge: drain the workers' queue and turn each event into pane updates.

A mixin of ``RecipeApp`` (kept apart so the app module stays small). Everything here runs on the UI
thread, from ``drain`` (a ≤10 Hz timer) or from the app's own handlers.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from recipe_tui.core.events import (CheckResult, CheckStarted, Checkpoint, Eval, Failed, Finished, LogLine, Progress,
                                    RunStarted, Step)

from .bridge import DataLoaded, HistoryLoaded, JobEnded

EVAL_LOG_S = 10.0


class EventDispatch:
    """Needs from the app: state, status, run_log, charts, checklist, dataset, detail, checks, items,
    recipes, job, watch_dir, queue and the ``_show_detail``/``_restored_status`` helpers."""

    _handlers: dict[type, Callable[[Any], None]]
    _eval_logged: float
    _current_check: str
    _errors: dict[str, str]
    _splits: Any

    def event_handlers(self) -> dict[type, Callable[[Any], None]]:
        """Event type → handler: ``drain`` looks events up here instead of an if/elif chain."""
        return {RunStarted: self._on_run_started, Step: self.state_apply, Eval: self._on_eval,
                Finished: self._on_finished, Failed: self._on_failed, Checkpoint: self._on_checkpoint,
                LogLine: self._on_log, Progress: self._on_progress, CheckStarted: self._on_check_started,
                CheckResult: self._on_check_result, JobEnded: self._on_job_ended, DataLoaded: self._on_data,
                HistoryLoaded: self._on_history}

    def drain(self) -> None:
        """Take everything the workers emitted since the last tick and update the panes in one batch."""
        events_ = self.queue.drain()
        if not events_:
            return
        with self.batch_update():
            version = self.state.version
            for event in events_:
                handler = self._handlers.get(type(event))
                if handler is not None:
                    handler(event)
            self.status.show(self.state)
            if self.state.version != version:
                self.charts.data_changed()

    def refresh_status(self) -> None:
        self.status.show(self.state, self.sampler.sample())

    def state_apply(self, event: Any) -> None:
        self.state.apply(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self.state.apply(e)
        if self.job is not None and self.job.pause.is_set():
            self.state.status = "paused"
        self.status.job = ""
        self.run_log.add(f"training {e.recipe} on {e.device} ({e.params:,} parameters) → {short_path(e.run_dir)}")

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
        self.run_log.add(f"checkpoint at step {e.step:,} → {short_path(e.path)}")

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
        from recipe_tui.core.checks import STOPPED

        for item_id in self._items_of(e.id):
            if e.status == "skip" and e.summary == STOPPED:  # stopping is no verdict: keep the last real one
                last = self.checks.result(item_id)
                self.checklist.set_status(item_id, last.status if last is not None else "pending")
            else:
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
            self.run_log.add(f"last run ({e.state.status} at step {e.state.step:,}): {short_path(e.run_dir)}")

    # -- checklist results ------------------------------------------------------------------------
    def _items_of(self, check_id: str) -> list[str]:
        return [i.id for i in self.items.values() if i.check == check_id]

    def _record(self, item_id: str, res: CheckResult) -> None:
        self.checks.record(item_id, res)
        self._save_checks()
        if item_id not in self.items:
            return  # the recipes file has no such item (e.g. no "train"): the result is kept, not shown
        if not self.checks.is_ticked(item_id):
            self.checklist.set_status(item_id, res.status)
        if self.recipes.stage_of(item_id) == 1:
            self._show_data_checks()
        ref = self.checklist.selected()
        if ref is not None and (ref.item == item_id or (not ref.item and self.recipes.stage_of(item_id) == ref.stage)):
            self._show_detail(ref)  # the item itself, or its stage heading with the counts

    def _save_checks(self) -> None:
        try:
            self.checks.save()
        except OSError as exc:
            self.run_log.add(f"could not save the checklist state: {exc}", "warning")

    def _show_data_checks(self) -> None:
        stage = self.recipes.stages[0]
        self.dataset.show_checks([(i.id, self.checklist.status(i.id), self.checks.result(i.id))
                                  for i in stage.items if i.check])


def short_path(path: str) -> str:
    """A path relative to the working directory when it is inside it: log lines stay one line."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
