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


def question(kind: str, state: RunState, apart: bool = False) -> str:
    """The quit question for a running job of ``kind``; ``apart``: training runs in processes of its own, so
    it can also be left running (detach)."""
    if kind != "train":
        return f"{WHAT.get(kind, 'A job')} is running.\n\nStop it and quit?"
    where = f" (step {state.step:,} of {state.total:,})" if state.total else " (starting)"
    if apart:
        return (f"Training is running in processes of its own{where}.\n\nStop it and quit? A checkpoint is "
                "written. Or detach: quit and leave it running; opening the app again re-attaches to it.")
    return (f"Training is running{where}.\n\nStop it and quit? A checkpoint is written; "
            "`recipe-tui train --resume RUN_DIR` continues it. (T trains in a process of its own, which can "
            "be left running when the app quits.)")


def apart_line(run_dir: str | None, pid: int | None, step: int, total: int, log: str | Path | None,
               paused: bool = False, detached: bool = True, file: str | Path | None = None) -> str:
    """After the app left a run in processes of its own: detached (it goes on), or still stopping by itself."""
    of = f" of {total:,}" if total else ""
    if run_dir is None:
        then = ("opening the app again re-attaches to its run" if detached
                else "it was asked to stop and ends by itself")
        return f"recipe-tui: the training process (pid {pid}) is still starting, on its own; {then}; its output: {log}"
    where = f"run {run_dir} (pid {pid}, step {step:,}{of}"
    if not detached:
        return (f"recipe-tui: {where}) is still stopping in its own processes: it writes its checkpoint and ends by "
                f"itself; then continue it with: {resume_command(run_dir, file)}")
    pause = "; paused: press p after re-attaching, or write `run` into its control file" if paused else ""
    control = shlex.quote(str(Path(run_dir) / "control"))
    return (f"recipe-tui: {where}) goes on in processes of its own{pause}. Opening the app again re-attaches to it; "
            f"`recipe-tui watch {shlex.quote(str(run_dir))}` follows it, `echo stop > {control}` stops it; "
            f"its output: {log or 'not kept'}")


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
