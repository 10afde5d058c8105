"""What worker threads tell the UI, as Textual messages (``post_message`` is thread-safe and never blocks).

Training events travel in the screen's ``EventQueue`` (thousands a second); the queue only posts
``EventsPending`` when it goes from drained to non-empty. The rare notes below are messages of their own,
handled in the order they were posted. Where a note must come after the events emitted before it
(``JobEnded``, a worker's failure), its handler drains the queue first.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from recipe_tui.core.events import CheckResult, CheckRow, CheckStarted, LogLine

from .bridge import DataSummary
from .run_state import RunState


@dataclass
class EventsPending(Message, bubble=False):
    """The event queue has events to drain. Several pending ones collapse into one (``can_replace``)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsPending)


@dataclass
class JobEnded(Message, bubble=False):
    """A foreground job's worker returned (or raised: ``Worker.StateChanged`` follows with the error)."""

    job_id: int


@dataclass
class DataLoaded(Message, bubble=False):
    summary: DataSummary
    splits: Any  # core.data.Splits, handed to check jobs so they do not load the data again


@dataclass
class HistoryLoaded(Message, bubble=False):
    """A run's recorded events folded into one state: the last run on opening, the watched run in watch mode."""

    state: RunState
    run_dir: str


@dataclass
class CheckReported(Message, bubble=False):
    """A check job's start, log line, table row or result. Few, and their order matters (a traceback belongs to the
    check that is running; a row to the run that started before it), so they are messages, in order; only its
    Progress events use the queue."""

    event: CheckStarted | LogLine | CheckRow | CheckResult


@dataclass
class BrowserReady(Message, bubble=False):
    """The sample browser's findings are gathered (with the last run's losses when there is one)."""

    findings: dict[str, Any]


@dataclass
class SideJobEnded(Message, bubble=False):
    """A job that ran beside the foreground one (stage-1 data checks during training) returned."""

    job_id: int


@dataclass
class RunFollowed(Message, bubble=False):
    """A run in processes of its own (``tui/child_run.py``) is followed: its run dir is known. ``history``: a
    re-attached run's recorded events folded into one state, ``checkpoint`` its last checkpoint's step; None for a
    run this app just started (its events all come through the queue)."""

    child: Any  # child_run.ChildRun
    history: RunState | None
    checkpoint: int | None


@dataclass
class RunsLoaded(Message, bubble=False):
    """Runs chosen in the runs view, their recorded curves loaded: ``action`` ``overlay`` (laid over the charts) or
    ``open`` (the first on the charts alone). ``problems``: runs whose events could not be read."""

    action: str
    runs: list[tuple[str, RunState]]
    problems: list[str]
