"""The main screen's runs in processes of their own (``tui/child_run.py``): starting one (``t`` with
``train.nproc`` > 1, ``T``), re-attaching on opening to one still going (left running when an earlier app quit, or
started headless), and what the screen shows while it follows one. Stop and pause reach it through the job's
control (the follower writes them into the run's control file); quitting can leave it running (``stop_jobs``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import psutil

from .. import child_run, jobs
from ..child_run import ChildRun
from ..messages import RunFollowed
from .run_screen import short_path

if TYPE_CHECKING:
    from .main_screen import MainScreen

    _Base = MainScreen
else:
    _Base = object


class ApartRuns(_Base):
    """Mixed into ``MainScreen``: its jobs, log, status line, sampler and checklist show the followed run."""

    apart: ChildRun | None

    def start_apart(self, overrides: tuple[str, ...] = ()) -> None:
        """``overrides``: the overrides form's edits, after the app's own ``--set``."""
        n = self.exp.train.nproc
        self.status.job = (f"starting {n} training processes (torchrun)…" if n > 1
                           else "starting training in a process of its own…")
        self.follow_apart(ChildRun.new(self.recipes.path, self.runs, self.exp.name, (*self.overrides, *overrides)))

    def follow_apart(self, child: ChildRun) -> None:
        self.apart = child
        self.start_job("train", lambda job: jobs.follow(job, child, self.post_message), ("train",))

    def reattach(self) -> None:
        """On opening: a run of this experiment still going in processes of its own (left running when an earlier
        app quit, or started headless) is followed here, steered through its control file."""
        live = child_run.find_live(self.runs, self.exp.name)
        for run_dir, summary in live[1:]:
            self.run_log.add(f"another run of {self.exp.name} is going too (pid {summary.get('pid')}): "
                             f"recipe-tui watch {short_path(str(run_dir))}", "warning")
        if not live:
            return
        try:
            child = ChildRun.found(*live[0])
        except psutil.Error:  # it ended just now
            return
        self.checklist.set_status("train", "running")
        self.status.job = f"re-attaching to {short_path(str(child.run_dir))}…"
        self.follow_apart(child)

    def on_run_followed(self, message: RunFollowed) -> None:
        child = message.child
        if child is not self.apart:
            return
        self.sampler.follow(child.top)
        self.status.job = ""
        if message.history is None:
            n = self.exp.train.nproc
            self.run_log.add(f"training in {f'{n} processes (torchrun)' if n > 1 else 'a process of its own'}, "
                             f"pid {child.top}; its output: {short_path(str(child.log_path))}; q can leave it running")
            return
        state, job = message.history, self.jobs.current
        if job is not None and job.control.pause.is_set() and state.active:
            state.status = "paused"
        self.show_run(state)
        self.session_run, self.last_checkpoint = str(child.run_dir), message.checkpoint
        self.run_log.add(f"re-attached to {short_path(str(child.run_dir))} at step {state.step:,}: it was still "
                         f"training in processes of its own (pid {child.top}); s stops it, p pauses it, q can leave "
                         "it running again")

    def apart_ended(self) -> None:
        """The followed run's job ended: its processes are gone (or the app let go of it: detach)."""
        apart, self.apart = self.apart, None
        if apart is None:
            return
        self.sampler.follow(None)
        if self.state.active and not apart.detached.is_set():  # it ended without recording how the run ended
            self.state.status = "interrupted"

