"""The runs view (``r``): every run of the experiment (``core.runs.list_runs``, the rows of ``recipe-tui runs``), one
line each: its status, steps, what differs from the recipe as opened (``changes``, as ``--set`` keys) or where it
came from (the tag of a capacity point, an lr-find sweep, a rung, a trial), best and final losses, the metric and
the time it trained.

Keys: ↑/↓ (j/k) move, ``space`` selects several, ``enter`` lays the selected runs' curves over the charts (none
selected: the run under the cursor), ``o`` opens the run under the cursor on the charts alone, ``x`` takes the
overlays off, ``escape`` closes. The screen answers with a ``RunsChoice``; the main screen loads the runs' curves
from their events.jsonl (``bridge.load_run``) in a job of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from recipe_tui.core.config import Experiment
from recipe_tui.core.overrides import format_value

from ..widgets.footer import KeysFooter

COLUMNS = ("", "run", "status", "steps", "changes / origin", "val best", "val final", "metric", "train best",
           "train final", "time")
CHANGES_MAX = 48  # characters of the changes column


@dataclass(frozen=True)
class RunsChoice:
    action: str  # overlay | open | clear
    runs: tuple[tuple[str, str], ...] = ()  # (label, run_dir), in the table's order


class RunsView(Screen[RunsChoice | None]):
    BINDINGS = [
        Binding("space", "toggle", "Select", id="runs.toggle"),
        Binding("enter", "overlay", "Overlay", id="runs.overlay", priority=True),
        Binding("o", "open", "Open alone", id="runs.open"),
        Binding("x", "clear", "Clear overlays", id="runs.clear"),
        Binding("escape", "close", "Close", id="runs.close"),
        Binding("j", "down", "Down", show=False, id="runs.down"),
        Binding("k", "up", "Up", show=False, id="runs.up"),
    ]

    def __init__(self, runs_root: str | Path, exp: Experiment) -> None:
        super().__init__()
        self.runs_root, self.exp = Path(runs_root), exp
        self.rows: list[dict[str, Any]] | None = None  # None while they load
        self.selected: set[str] = set()  # run dirs
        self.table: DataTable = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        self.note = Static(f"reading the runs of {exp.name}…", id="runs-note")

    def compose(self) -> ComposeResult:
        yield self.note
        yield self.table
        yield KeysFooter()

    def on_mount(self) -> None:
        self.table.add_columns(*COLUMNS)
        self.table.focus()
        self.load_rows()

    @work(thread=True, exit_on_error=False)
    def load_rows(self) -> None:
        """Summaries are small, but a run without one is replayed from its events once: off the UI thread."""
        from recipe_tui.core.runs import list_runs

        rows = list_runs(self.runs_root, self.exp.name, self.exp)
        self.app.call_from_thread(self.fill, rows)

    def fill(self, rows: list[dict[str, Any]]) -> None:
        if not self.is_attached:  # closed while the rows were read
            return
        self.rows = rows
        if not rows:
            self.note.update(f"No runs of {self.exp.name} yet (under {self.runs_root / self.exp.name}): t trains one, "
                             "c changes settings and trains, and lr-find, capacity and the stage 4–6 items make runs "
                             "too. escape closes.")
            self.table.display = False
            return
        self.note.update(f"{len(rows)} runs of {self.exp.name}, oldest first; changes against the recipe as opened. "
                         "space selects, enter overlays the selected runs on the charts, o opens one alone, "
                         "x clears the overlays, escape closes.")
        for row in rows:
            self.table.add_row(*self.cells(row), key=row["run_dir"])
        self.table.move_cursor(row=len(rows) - 1)  # the newest

    def cells(self, row: dict[str, Any]) -> list[str]:
        mark = "●" if row["run_dir"] in self.selected else " "
        steps = f"{row['steps']:,}" + (f"/{row['total_steps']:,}" if row["total_steps"] else "")
        metric = row["metric"]
        metric_text = f"{metric['name'] or ''} {_num(metric['best'])}".strip() if metric["best"] is not None else "–"
        return [mark, row["name"], row["status"], steps, _clip(differences(row), CHANGES_MAX),
                _num(row["val_loss"]["best"]), _num(row["val_loss"]["final"]), metric_text,
                _num(row["train_loss"]["best"]), _num(row["train_loss"]["final"]), _duration(row["seconds"])]

    # -- keys -------------------------------------------------------------------------------------------
    def cursor_row(self) -> dict[str, Any] | None:
        if not self.rows:
            return None
        return self.rows[min(self.table.cursor_row, len(self.rows) - 1)]

    def action_toggle(self) -> None:
        row = self.cursor_row()
        if row is None:
            return
        self.selected ^= {row["run_dir"]}
        self.table.update_cell(row["run_dir"], self.table.ordered_columns[0].key, "●" if row["run_dir"] in self.selected
                               else " ")
        self.table.action_cursor_down()

    def action_overlay(self) -> None:
        rows = [r for r in self.rows or [] if r["run_dir"] in self.selected]
        if not rows:
            row = self.cursor_row()
            rows = [row] if row is not None else []
        if rows:
            self.dismiss(RunsChoice("overlay", tuple((run_label(r), r["run_dir"]) for r in rows)))

    def action_open(self) -> None:
        row = self.cursor_row()
        if row is not None:
            self.dismiss(RunsChoice("open", ((run_label(row), row["run_dir"]),)))

    def action_clear(self) -> None:
        self.dismiss(RunsChoice("clear"))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_down(self) -> None:
        self.table.action_cursor_down()

    def action_up(self) -> None:
        self.table.action_cursor_up()


def differences(row: dict[str, Any]) -> str:
    """``lr-find sweep 2 · train.lr=0.01``: where the run came from (its tag) and how it differs from the recipe."""
    tag = row.get("tag") or {}
    origin = f"{tag.get('kind', '')} {tag.get('label', '')}".strip() if tag else ""
    changes = " ".join(f"{k}={format_value(v) or 'unset'}" for k, v in (row.get("changes") or {}).items())
    return " · ".join(x for x in (origin, changes) if x) or "the recipe"


def run_label(row: dict[str, Any]) -> str:
    """A short legend label: the run's time of day and what sets it apart (``0614 lr=0.01``)."""
    name = row["name"]
    when = name.split("-", 1)[1] if "-" in name else name  # 061614, or 061614-1 for a second run that second
    tag = row.get("tag") or {}
    what = (str(tag.get("label") or tag.get("kind") or "") if tag else
            " ".join(f"{k.rsplit('.', 1)[-1]}={format_value(v)}" for k, v in (row.get("changes") or {}).items()))
    return f"{when} {_clip(what, 20)}".strip()


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _num(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}"


def _duration(seconds: Any) -> str:
    s = float(seconds or 0)
    return f"{s:.0f}s" if s < 90 else f"{s / 60:.0f}m" if s < 5400 else f"{s / 3600:.1f}h"
