"""Ending the process in bounded time, whatever a job's thread is doing (no Textual here: the CLI uses it too).

A job runs the user's code (a model's forward, a dataset, a DataLoader worker) in a thread. When asked to stop,
the trainer returns at its next step, after writing a checkpoint. But user code can block forever (a stuck
DataLoader worker, a deadlocked collective, a ``sleep``), and Python cannot interrupt a thread: waiting for it
would hang the exit. So jobs run in daemon threads, the wait for them is bounded (``GRACE_S``), and the
process ends with ``fast_exit``: atexit handlers, flushed streams, child processes (DataLoader workers)
ended, then ``os._exit``. That also skips the interpreter's teardown, which takes about a second once torch is
imported.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, NoReturn, TypeVar

import psutil

GRACE_S = 5.0  # how long a stopped job may take to return before the process exits without it
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
T = TypeVar("T")


def say(message: str, file: Any = None) -> None:
    """Print to stderr (or ``file``), ignoring a terminal that is gone (SIGHUP: EIO; a closed pipe: EPIPE). A
    closed stdout is the exception: the reader of the command's output went away (``… --json | head``), which the
    CLI reports as such (exit 141)."""
    try:
        print(message, file=file or sys.stderr, flush=True)
    except BrokenPipeError:
        if file is sys.stdout:
            raise
    except (OSError, ValueError):
        pass


def stuck_at(thread: threading.Thread) -> str:
    """Where ``thread`` is now, for the message that says user code did not return: the innermost frame of
    code outside Python and its installed packages (the user's), else the innermost frame."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "an unknown place"
    stack = traceback.extract_stack(frame)
    library = tuple({sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parent.parent)})
    mine = [f for f in stack if not f.filename.startswith(library) and not f.filename.startswith("<")]
    f = (mine or stack)[-1]
    return f"{Path(f.filename).name}:{f.lineno} in {f.name}"


_SPARED: set[int] = set()


def spare(pid: int) -> None:
    """``kill_children`` leaves ``pid`` and every process under it alone: a training run in processes of its own,
    which stops (or goes on, detached) by itself (``tui/child_run.py``)."""
    _SPARED.add(pid)


def kill_children(timeout: float = 1.0) -> int:
    """End this process's child processes (DataLoader workers, the user's own) except the spared ones: SIGTERM,
    then SIGKILL after ``timeout``. Returns how many there were."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    spared = set(_SPARED)
    for pid in _SPARED:
        try:
            spared.update(p.pid for p in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            pass
    children = [c for c in children if c.pid not in spared]
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    return len(children)


def jobs_left_behind() -> list[threading.Thread]:
    """Job threads (named ``recipe-tui-…``) still running: exiting must not wait for them, nor run atexit handlers
    that might."""
    return [t for t in threading.enumerate() if t.name.startswith("recipe-tui-") and t.is_alive()]


def fast_exit(code: int, run_atexit: bool = True) -> NoReturn:
    """End the process now. Files the jobs wrote are flushed line by line already; here stdout and stderr are
    flushed, child processes ended, and atexit handlers run (unless a thread is stuck, when one of them
    might wait for it), then ``os._exit``: no wait for daemon threads or the interpreter's teardown."""
    kill_children()
    if run_atexit:
        try:
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001 - nothing may keep the process from ending now
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def run_stoppable(body: Callable[[], T], stop: threading.Event,
                  on_stuck: Callable[[str], object], grace_s: float = GRACE_S, announce: bool = True) -> T:
    """Run ``body()`` in a daemon thread while the main thread waits and takes the signals: the first SIGINT,
    SIGTERM or SIGHUP sets ``stop`` (the job checkpoints and returns); a second SIGINT or SIGTERM exits at once
    (130). When the job has not returned ``grace_s`` after the stop, ``on_stuck(where)`` is called (it records and
    says so) and the process exits with 130. ``announce``: say so on stderr (one rank of a torchrun group speaks
    for all). Returns what ``body`` returns, or raises what it raised."""
    if threading.current_thread() is not threading.main_thread():
        return body()  # signals reach only the main thread: nothing to wait for here
    box: dict[str, Any] = {}
    done = threading.Event()
    stopped_at: list[float] = []

    def target() -> None:
        try:
            box["result"] = body()
        except BaseException as exc:  # handed to the main thread
            box["error"] = exc
        finally:
            done.set()

    def handler(signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if stopped_at:
            if signum == getattr(signal, "SIGHUP", None):
                return  # the terminal went away after a stop: keep stopping
            if announce:
                say(f"\n{name} again: exiting without waiting for the job.")
            fast_exit(130, run_atexit=False)
        stopped_at.append(time.monotonic())
        if announce:
            say(f"\n{name}: stopping (a checkpoint is written; ctrl+c again to exit at once)…")
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    thread = threading.Thread(target=target, daemon=True, name="recipe-tui-job")
    try:
        thread.start()
        while not done.wait(0.05):
            if stopped_at and time.monotonic() - stopped_at[0] > grace_s and not done.is_set():
                on_stuck(stuck_at(thread))
                fast_exit(130, run_atexit=False)
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
    if "error" in box:
        raise box["error"]
    return box["result"]
