"""The main screen's ways to compare runs and start changed ones: the runs view (``r``, ``tui/screens/runs_view.py``)
whose chosen runs are loaded from their events.jsonl in a background job and laid over the charts (or opened alone),
and the overrides form (``c``, ``tui/widgets/overrides_form.py``) whose ``--set`` edits start a new training run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from recipe_tui.core.config import apply_overrides

from .. import bridge
from ..jobs import Job
from ..messages import RunsLoaded
from .run_screen import short_path
from .runs_view import RunsChoice, RunsView

if TYPE_CHECKING:
    from .main_screen import MainScreen

    _Base = MainScreen
else:
    _Base = object


class RunsActions(_Base):
    """Mixed into ``MainScreen``: its charts, log, jobs and training start."""

    form_edits: dict[str, str]

    def action_runs(self) -> None:
        """r: every run of the experiment, to lay over the charts or open."""
        self.app.push_screen(RunsView(self.runs, self.exp), self.runs_chosen)

    def runs_chosen(self, choice: RunsChoice | None) -> None:
        if choice is None:
            return
        if choice.action == "clear":
            self.charts.show(self.state, [])
            self.run_log.add("the other runs are off the charts")
            return
        job = self.jobs.current
        if choice.action == "open" and (self.state.active or (job is not None and job.kind == "train")):
            self.notify("Training is running and keeps the charts: enter in the runs view lays a past run over it "
                        "instead.", severity="warning")
            return
        self.status.job = f"loading {len(choice.runs)} run(s)…"

        def body(job: Job) -> None:
            runs, problems = [], []
            for label, run_dir in choice.runs:
                try:
                    runs.append((label, bridge.load_run(run_dir)))
                except bridge.UnreadableHistory as exc:
                    problems.append(str(exc))
            self.post_message(RunsLoaded(choice.action, runs, problems))

        self.jobs.start("runs", body, foreground=False)

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        self.status.job = ""
        for problem in message.problems:
            self.run_log.add(problem, "warning")
        if not message.runs:
            return
        if message.action == "overlay":
            self.charts.show(self.state, message.runs)
            self.run_log.add(f"laid over the charts: {', '.join(label for label, _ in message.runs)} "
                             "(r then x takes them off)")
            return
        label, state = message.runs[0]
        if self.state.active:  # training started while the run loaded: its charts win
            return
        self.charts.overlays = []
        self.show_run(state)
        self.run_log.add(f"showing {short_path(state.run_dir) if state.run_dir else label} alone ({state.status} at "
                         f"step {state.step:,})")

    def action_change(self) -> None:
        """c: the overrides form; its start trains the experiment with the edits, like ``train --set``."""
        from ..widgets.overrides_form import OverridesForm

        if self.busy():
            return
        self.app.push_screen(OverridesForm(self.exp, self.form_edits), self.overrides_chosen)

    def overrides_chosen(self, overrides: tuple[str, ...] | None) -> None:
        if overrides is None or self.busy():
            return
        self.form_edits = dict(o.split("=", 1) for o in overrides)
        exp = apply_overrides(self.exp, overrides)  # the form checked them with the same code
        self.run_log.add(f"training with --set {' --set '.join(overrides)}" if overrides
                         else "training the recipe unchanged (the form had no edits)")
        self.start_training(apart=exp.train.nproc > 1, exp=exp, overrides=overrides)

