"""Training in processes of their own, followed like ``recipe-tui watch``: a run the app starts (``train.nproc`` > 1,
which starts torchrun, or ``T``, so that the run can outlive the app) or a live run it finds on opening (re-attach).
No Textual here.

The child is ``recipe-tui train …`` in a session of its own (the app's terminal, its ctrl+c and its SIGHUP never
reach it), stdin from /dev/null, stdout and stderr into a log file: ``runs/<recipe>/train-<time>.log`` until the run
dir exists, then moved to ``RUN_DIR/output.log`` (the same open file: the child goes on writing into it). The run
dir is the one whose summary.json names a process of the child's tree as its writer (rank 0 under torchrun). The
app follows its events.jsonl and steers it through ``RUN_DIR/control`` (stop, pause, run), as anyone else can.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Failed, Finished
from recipe_tui.core.paths import inside
from recipe_tui.core.runsummary import SUMMARY, read_summary, writer_here

from .bridge import RunFollower
from .run_state import RunState
from .shutdown import spare

OUTPUT_LOG = "output.log"  # in the run dir: the child's stdout and stderr
CONTROL = "control"  # core.rundir.CONTROL (not imported: rundir imports torch, and this runs before the first frame)
POLL_S = 0.25


class ChildFailed(Exception):
    """The training process ended before its run started (bad configuration, data that does not load…)."""


class ChildRun:
    """A training run in processes of its own: one this app starts (``new``, then ``launch``) or one it found
    running (``found``). ``pid`` is the process to watch, ``top`` the top of its process tree (its memory is the
    run's), ``run_dir`` where it writes, once known."""

    def __init__(self, runs_root: str | Path, recipe: str, command: list[str] | None = None) -> None:
        self.runs_root, self.recipe, self.command = Path(runs_root), recipe, command
        self.popen: subprocess.Popen | None = None
        self.run_dir: Path | None = None
        self.log_path: Path | None = None
        self.writer: psutil.Process | None = None  # the process writing the run dir (rank 0)
        self.top: int | None = None
        self.launched_at = 0.0
        self.detached = threading.Event()  # the app quits and leaves the run going

    @classmethod
    def new(cls, recipes_path: str | Path, runs_root: str | Path, recipe: str, overrides: tuple[str, ...] = ()
            ) -> "ChildRun":
        """A run of ``recipe`` as ``recipe-tui train`` would train it (``train.nproc`` > 1: through torchrun)."""
        cmd = [sys.executable, "-m", "recipe_tui.tui.cli", "train", "--file", str(Path(recipes_path).resolve()),
               "--runs", str(Path(runs_root).resolve()), "--recipe", recipe]
        for o in overrides:
            cmd += ["--set", o]
        return cls(runs_root, recipe, cmd)

    @classmethod
    def found(cls, run_dir: Path, summary: dict[str, Any]) -> "ChildRun":
        """A live run that another process writes (left running by an earlier app, or started headless)."""
        child = cls(run_dir.parent.parent, run_dir.parent.name)
        child.run_dir = run_dir
        child.writer = psutil.Process(int(summary["pid"]))
        child.top = top_of_run(child.writer)
        log = run_dir / OUTPUT_LOG
        child.log_path = log if log.is_file() else None
        return child

    @property
    def attached(self) -> bool:
        """Found running rather than started by this app."""
        return self.command is None

    @property
    def pid(self) -> int | None:
        if self.popen is not None:
            return self.popen.pid
        return self.writer.pid if self.writer is not None else None

    def launch(self) -> None:
        """Start the child; its output goes to ``runs/<recipe>/train-<time>.log`` for now."""
        assert self.command is not None
        folder = inside(self.runs_root, self.recipe)
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / time.strftime(f"train-%Y%m%d-%H%M%S-{os.getpid()}.log")
        self.launched_at = time.time()
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        spare(self.popen.pid)  # the app's exit must not end it (shutdown.kill_children)
        self.top = self.popen.pid

    def ended(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is not None
        try:
            return self.writer is None or not self.writer.is_running() or \
                self.writer.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            return True

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def find_run_dir(self) -> bool:
        """Look for the run dir this child writes (its summary.json names a process of the child's tree); once
        found, move the output log into it. True when known."""
        if self.run_dir is not None:
            return True
        tree = self._tree()
        parent = self.runs_root / self.recipe
        try:
            candidates = [p for p in parent.iterdir() if p.is_dir() and p.stat().st_mtime >= self.launched_at - 2]
        except OSError:
            return False
        for run_dir in sorted(candidates, reverse=True):
            s = read_summary(run_dir)
            if s is not None and s.get("pid") in tree:
                self.run_dir, self.writer = run_dir, psutil.Process(int(s["pid"]))
                self._move_log(run_dir / OUTPUT_LOG)
                return True
        return False

    def _tree(self) -> set[int]:
        if self.popen is None:
            return set()
        try:
            return {self.popen.pid, *(p.pid for p in psutil.Process(self.popen.pid).children(recursive=True))}
        except psutil.Error:
            return {self.popen.pid}

    def _move_log(self, target: Path) -> None:
        if self.log_path is None:
            return
        try:
            os.replace(self.log_path, target)  # the child's open file moves with it (same file system)
            self.log_path = target
        except OSError:
            pass  # it stays in the runs folder, which the log line names

    def ask(self, word: str) -> None:
        """Write ``stop``, ``pause`` or ``run`` into the run's control file (read by the trainer, rank 0)."""
        assert self.run_dir is not None
        tmp = self.run_dir / (CONTROL + ".tmp")
        tmp.write_text(word + "\n", encoding="utf-8")
        os.replace(tmp, self.run_dir / CONTROL)

    def asked(self) -> str:
        """What the control file asks now (``run`` when there is none): a run left paused stays paused."""
        try:
            word = (self.run_dir / CONTROL).read_text(encoding="utf-8").strip().lower() if self.run_dir else ""
        except OSError:
            word = ""
        return word if word in ("stop", "pause") else "run"

    def interrupt(self) -> None:
        """Before its run dir exists there is no control file: ctrl+c it (``recipe-tui train`` stops cleanly and,
        under ``--nproc``, passes the stop on to every rank)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)

    def output_tail(self, lines: int = 3) -> str:
        """The last lines the child printed (why it failed)."""
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_bytes()[-4000:].decode("utf-8", errors="replace")
        except OSError:
            return ""
        return " / ".join([line.strip() for line in text.splitlines() if line.strip()][-lines:])


def top_of_run(proc: psutil.Process) -> int:
    """The top of a run's process tree, from its writer up: through torchrun and ``recipe-tui train --nproc``,
    never further (the shell, or the app that started it)."""
    top = proc
    try:
        parent = top.parent()
        while parent is not None and _launches_training(parent.cmdline()):
            top, parent = parent, parent.parent()
    except psutil.Error:
        pass
    return top.pid


def _launches_training(cmd: list[str]) -> bool:
    if "torch.distributed.run" in cmd:
        return True
    ours = any(a == "recipe_tui.tui.cli" or Path(a).name == "recipe-tui" for a in cmd)
    return ours and "train" in cmd


def find_live(runs_root: str | Path, recipe: str) -> list[tuple[Path, dict[str, Any]]]:
    """The plain training runs of ``recipe`` (not a capacity point or another check's run) whose summary.json says
    ``running`` and whose writer is alive on this host, newest first."""
    parent = Path(runs_root) / recipe
    try:
        dirs = sorted((p for p in parent.iterdir() if (p / SUMMARY).is_file()), reverse=True)
    except OSError:
        return []
    live = []
    for run_dir in dirs:
        s = read_summary(run_dir)
        if s is not None and s.get("status") == "running" and not s.get("tag") and writer_here(s):
            live.append((run_dir, s))
    return live


def follow(child: ChildRun, control: RunControl, on_followed: Callable[[RunState | None, int | None], object],
           poll_s: float = POLL_S) -> None:
    """The job of a run in processes of its own: start it (or take the one found), wait for its run dir, then
    follow it until its processes end or the app detaches. ``on_followed(history, checkpoint)`` is called once the
    run dir is known: a re-attached run's history in one piece and its last checkpoint's step; a new run's events
    all go through ``control.emit``. ``control``'s stop and pause reach the run through its control file."""
    if child.popen is None and not child.attached:
        child.launch()
    if not _wait_for_run_dir(child, control, poll_s):
        return
    assert child.run_dir is not None
    follower = RunFollower(child.run_dir, control)
    history = follower.history() if child.attached else None
    sent = child.asked() if child.attached else "run"
    if sent == "pause":
        control.pause.set()  # left paused: shown so, and p resumes it
    on_followed(history, follower.checkpoint)
    ended_well = history is not None and not history.active
    while not child.detached.is_set():
        ended = child.ended()
        events = follower.poll()  # after ``ended``: what it wrote before it exited is read
        ended_well = ended_well or any(isinstance(e, (Finished, Failed)) for e in events)
        if ended:
            _say_end(child, control, ended_well)
            return
        word = "stop" if control.stop.is_set() else "pause" if control.pause.is_set() else "run"
        if word != sent and not child.detached.is_set():  # detaching sets ``stop`` too, after ``detached``
            _ask(child, control, word)
            sent = word
        child.detached.wait(poll_s)


def _ask(child: ChildRun, control: RunControl, word: str) -> None:
    try:
        child.ask(word)
    except OSError as exc:  # a run dir deleted or read-only: say so, and go on following
        control.log(f"could not ask the run to {word} (its control file: {exc.strerror or exc}); "
                    f"`echo {word} > {child.run_dir}/{CONTROL}` does the same", "warning")


def _wait_for_run_dir(child: ChildRun, control: RunControl, poll_s: float) -> bool:
    """Until the child's run dir exists: False when it was stopped or detached before; ``ChildFailed`` when it
    ended without one for another reason."""
    interrupted = False
    while not child.find_run_dir():
        if child.detached.is_set():
            return False
        if child.ended():
            if child.find_run_dir():
                break
            if control.stopped:
                return False  # stopped while starting: nothing was recorded
            raise ChildFailed(f"the training process ended (exit code {child.returncode}) before its run started: "
                              f"{child.output_tail() or 'it printed nothing'} (its output: {child.log_path})")
        if control.stopped and not interrupted:
            child.interrupt()
            interrupted = True
        child.detached.wait(poll_s)
    return True


def _say_end(child: ChildRun, control: RunControl, ended_well: bool) -> None:
    code = child.returncode
    how = f" (exit code {code})" if code is not None else ""
    if ended_well:
        control.log(f"the training process ended{how}; its output: {child.log_path}" if child.log_path
                    else f"the training process ended{how}")
    else:
        control.log(f"the training process ended{how} without recording how the run ended (killed?); "
                    f"its output: {child.log_path or 'not kept'}", "warning")
