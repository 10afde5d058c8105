"""What quitting says: the question ``q`` asks while a job runs, and the lines printed to the terminal after the
app has exited (the session's run: its dir, its state and how to resume it; a job that did not return)."""
from __future__ import annotations

import shlex
import threading
from pathlib import Path

from recipe_tui.core.events import LogLine

from .run_state import RunState
from .shutdown import stuck_at

WHAT = {"train": "Training", "check": "A check", "browse": "The browser's loss pass"}
ASK = tuple(WHAT)  # the jobs ``q`` asks about (watching only reads: it quits at once)


def question(kind: str, state: RunState) -> str:
    """The quit question for a running job of ``kind``."""
    if kind == "train":
        where = f" (step {state.step:,} of {state.total:,})" if state.total else " (starting)"
        return (f"Training is running{where}.\n\nStop it and quit? A checkpoint is written; "
                "`recipe-tui train --resume RUN_DIR` continues it.")
    return f"{WHAT.get(kind, 'A job')} is running.\n\nStop it and quit?"


def resume_command(run_dir: str | Path, file: str | Path | None = None) -> str:
    """The command that continues ``run_dir`` (with the recipes file that made it, when one was named)."""
    extra = f" --file {shlex.quote(str(file))}" if file is not None else ""
    return f"recipe-tui train --resume {shlex.quote(str(run_dir))}{extra}"


def run_line(run_dir: str, status: str, step: int, total: int, checkpoint: int | None,
             file: str | Path | None = None, reason: str = "") -> str:
    """One line on a run after the app (or a headless command) ended: where it is, its state, how to resume."""
    of = f" of {total:,}" if total else ""
    head = f"recipe-tui: run {run_dir} {status} at step {step:,}{of}"
    if status == "completed":
        return head + "."
    why = f" ({reason})" if reason else ""
    if checkpoint is None:
        return f"{head}{why}; no checkpoint was written, so there is nothing to resume."
    saved = "" if checkpoint == step else f"; its last checkpoint is step {checkpoint:,}"
    return f"{head}{why}{saved}; continue it with: {resume_command(run_dir, file)}"


def stuck_line(kind: str, thread: threading.Thread, waited: float) -> str:
    """Says that a job's user code did not return, and where it is."""
    return (f"recipe-tui: the {kind} job did not return within {waited:g} s of the stop: its code is still running "
            f"(at {stuck_at(thread)}); the app exited without it.")


def record_stuck(run_dir: str, message: str) -> None:
    """Append the note to the run's events.jsonl (its own append handle: the stuck thread writes nothing)."""
    from recipe_tui.core.rundir import RunDir  # imports torch: not before the first frame

    try:
        run = RunDir(Path(run_dir))
        run.record(LogLine(message, level="warning"))
        run.close()
    except OSError:
        pass
