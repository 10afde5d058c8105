"""The checklist's marks, results and tracebacks, and what the checklist, item and dataset panes show
of them. A plain collaborator of the main screen: it gets the recipes, the stored checklist state and
the panes it updates, and is called on the UI thread only.
"""
from __future__ import annotations

from recipe_tui.core.checklist_state import ChecklistState
from recipe_tui.core.config import RecipesFile
from recipe_tui.core.events import CheckResult, CheckRow, CheckStarted, Failed, Finished, LogLine

from .marks import finding_count, status_of
from .widgets.checklist import Checklist, Ref
from .widgets.dataset import DatasetPane
from .widgets.item_detail import ItemDetail
from .widgets.run_log import RunLog

DATA_FINDINGS = ("data-stats", "duplicates", "outliers", "label-issues")  # what the sample browser filters by


class ChecklistResults:
    def __init__(self, recipes: RecipesFile, checks: ChecklistState, checklist: Checklist, detail: ItemDetail,
                 dataset: DatasetPane, run_log: RunLog) -> None:
        self.recipes = recipes
        self.items = {i.id: i for i in recipes.items()}
        self.checks = checks
        self.checklist = checklist
        self.detail = detail
        self.dataset = dataset
        self.run_log = run_log
        self.errors: dict[str, str] = {}  # check id → traceback of its last error
        self.current_check = ""  # the check running now: a traceback logged just before its result is its own
        self.live: dict[str, dict[str, list[dict]]] = {}  # check id → table → the rows it emitted so far (running)

    def restore(self) -> None:
        """The restored marks, the first item's detail and the data checks' findings."""
        for item_id in self.items:
            res = self.checks.result(item_id)
            self.checklist.set_status(item_id, self.restored_status(item_id),
                                      finding_count(res) if res is not None else 0)
        first = self.recipes.stages[0]
        self.show_detail(Ref(first.number, first.items[0].id) if first.items else Ref(first.number))
        self.show_data_checks()

    def restored_status(self, item_id: str) -> str:
        if self.checks.is_ticked(item_id):
            return "ticked"
        res = self.checks.result(item_id)
        return status_of(res) if res is not None else self.checklist.status(item_id)

    def show_detail(self, ref: Ref) -> None:
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
        detail = self.errors.get(item.check or item.id, "") if status in ("error", "fail") else ""
        live = self.live.get(item.check or "") if status == "running" else None
        self.detail.show(item, f"stage {stage.number} · {stage.title}", status, self.checks.result(item.id),
                         self.checks.result_time(item.id), detail, live=live)

    def show_data_checks(self) -> None:
        stage = self.recipes.stages[0]
        self.dataset.show_checks([(i.id, self.checklist.status(i.id), self.checks.result(i.id))
                                  for i in stage.items if i.check])

    def findings(self) -> dict[str, CheckResult]:
        """The data checks' last results, for the sample browser's filters."""
        return {cid: res for cid in DATA_FINDINGS if (res := self.checks.result(cid)) is not None}

    # -- changes ------------------------------------------------------------------------------------
    def toggle_tick(self, ref: Ref) -> str:
        """Tick or untick a manual item; for an automated one, the sentence that says why not."""
        item = self.items[ref.item]
        if item.check or item.id == "train":
            return "Automated items are not ticked: enter runs them."
        ticked = self.checks.toggle_tick(item.id)
        self.save()
        self.checklist.set_status(item.id, "ticked" if ticked else "manual")
        self.show_detail(ref)
        return ""

    def record(self, item_id: str, res: CheckResult) -> None:
        self.checks.record(item_id, res)
        self.save()
        if item_id not in self.items:
            return  # the recipes file has no such item (e.g. no "train"): the result is kept, not shown
        if not self.checks.is_ticked(item_id):
            self.checklist.set_status(item_id, status_of(res), finding_count(res))
        if self.recipes.stage_of(item_id) == 1:
            self.show_data_checks()
        ref = self.checklist.selected()
        if ref is not None and (ref.item == item_id or (not ref.item and self.recipes.stage_of(item_id) == ref.stage)):
            self.show_detail(ref)  # the item itself, or its stage heading with the counts

    def save(self) -> None:
        try:
            self.checks.save()
        except OSError as exc:
            self.run_log.add(f"could not save the checklist state: {exc}", "warning")

    def items_of(self, check_id: str) -> list[str]:
        return [i.id for i in self.items.values() if i.check == check_id]

    # -- what jobs report ---------------------------------------------------------------------------
    def check_started(self, e: CheckStarted) -> None:
        self.current_check = e.id
        self.live.pop(e.id, None)
        for item_id in self.items_of(e.id):
            self.checklist.set_status(item_id, "running")

    def check_row(self, e: CheckRow) -> None:
        """A row of a running check's table (any check's: sweeps, points, rungs, trials, members): shown at once
        in the item pane when the check's item is selected."""
        self.live.setdefault(e.id, {}).setdefault(e.table, []).append(e.row)
        ref = self.checklist.selected()
        if ref is not None and ref.item and self.items[ref.item].check == e.id:
            self.show_detail(ref)

    def check_result(self, e: CheckResult) -> None:
        from recipe_tui.core.checks import STOPPED

        self.live.pop(e.id, None)  # the result holds the whole tables
        for item_id in self.items_of(e.id):
            if e.status == "skip" and e.summary == STOPPED:  # stopping is no verdict: keep the last real one
                last = self.checks.result(item_id)
                self.checklist.set_status(item_id, status_of(last) if last is not None else "pending")
            else:
                self.record(item_id, e)
        level = {"fail": "error", "error": "error", "warn": "warning"}.get(e.status, "info")
        self.run_log.add(f"{e.id}: {e.status.upper()} {e.summary}", level)

    def log_line(self, e: LogLine) -> None:
        if e.level == "error" and e.detail and self.current_check:
            self.errors[self.current_check] = e.detail  # run_check logs the traceback just before the result

    def train_finished(self, e: Finished, total: int, run_dir: str, final: str) -> None:
        status = "pass" if e.status == "completed" else "skip"
        summary = (f"completed {e.step:,} steps{final}" if e.status == "completed"
                   else f"stopped at step {e.step:,} of {total:,}; checkpoint saved" if total
                   else f"stopped at step {e.step:,} (open-ended); checkpoint saved, best.pt beside it")
        hint = "" if e.status == "completed" else f"`recipe-tui train --resume {run_dir}` continues it; t starts a new run."
        metrics = {"run_dir": run_dir, "state": e.status, **e.final}
        if e.alarms:  # the wiggle alarm: the run went through, but its loss deserves a look
            status = "warn"
            summary += "; " + " ".join(str(a.get("message", a.get("kind", ""))) for a in e.alarms)
            metrics["alarms"] = e.alarms
            hint = ("Lower the learning rate (the lr-find item suggests one) or clip gradients (train.grad_clip). "
                    + hint).strip()
        self.record("train", CheckResult("train", status, summary, metrics, hint=hint))

    def train_failed(self, e: Failed, run_dir: str) -> None:
        self.errors["train"] = e.detail
        self.record("train", CheckResult("train", "fail", e.reason, {"run_dir": run_dir},
                                         hint="Lower the learning rate, or clip gradients (train.grad_clip)."))

    def job_failed(self, kind: str, items: tuple[str, ...], summary: str, tb: str) -> None:
        """A train or check job's worker raised: its items get an ``error`` with the traceback."""
        if kind == "train":
            self.errors["train"] = tb
            self.record("train", CheckResult("train", "error", summary,
                                             hint="The traceback is in the log (tab, then enter unfolds it)."))
        elif kind == "check":
            for item_id in items:
                if self.checklist.status(item_id) == "running":
                    self.errors[self.items[item_id].check or item_id] = tb
                    self.record(item_id, CheckResult(item_id, "error", summary))

    def job_ended(self, kind: str) -> None:
        if kind == "train" and self.checklist.status("train") == "running":
            self.checklist.set_status("train", self.restored_status("train"))
        self.current_check = ""
