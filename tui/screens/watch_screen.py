"""``recipe-tui watch RUN_DIR``: the charts, log and status of a run that another process writes
(headless, torchrun). It only shows: no checklist, no training keys; the watch job follows events.jsonl."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from .. import jobs
from ..ui_state import UiState
from ..widgets.footer import KeysFooter
from .run_screen import RunScreen, short_path


class WatchScreen(RunScreen):
    def __init__(self, run_dir: str | Path, runs: str | Path, ui: UiState | None = None, note: str = "") -> None:
        super().__init__(runs, ui)
        self.run_dir = Path(run_dir)
        self.note = note  # how the run dir was chosen (the newest run of a recipe's folder)

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="right"):
                yield self.charts
                with Horizontal(id="bottom"):
                    yield self.predictions
                    yield self.run_log
        yield self.filter_bar
        yield self.status
        yield KeysFooter()

    def mounted(self) -> None:
        self.status.watching = True
        if self.note:
            self.run_log.add(self.note)
        self.run_log.add(f"watching {short_path(str(self.run_dir))}: another process writes it, "
                         "training keys are off")

    def start_background(self) -> None:
        super().start_background()
        self.start_job("watch", lambda job: jobs.watch(job, self.run_dir, self.post_message))
