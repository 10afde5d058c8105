"""How a job is driven: where its events go and how it is stopped or paused.

One ``RunControl`` is what the trainer, the checks and every future stage get: the worker only calls
``emit`` and looks at ``stop``/``pause``; whoever started the job (the CLI, the app, a test) sets them.
Another process (the app following a headless or torchrun run) drives it through a ``ControlFile``.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .events import Emit, Event, LogLine, Progress, null_emit

CONTROL_WORDS = ("stop", "pause", "run")


def _nothing() -> None:
    return None


class Stopped(Exception):
    """Raised by ``RunControl.tick`` once the job was asked to stop; the job ends as stopped, not failed."""


@dataclass(frozen=True)
class RunControl:
    emit: Emit = null_emit
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)
    poll: Callable[[], None] = _nothing  # the trainer calls it every step: brings stop/pause up to date


    @property
    def stopped(self) -> bool:
        return self.stop.is_set()

    def tick(self, task: str = "", done: int = 0, total: int = 0) -> None:
        """Call at least once per step of any loop: raises ``Stopped`` when asked to stop, reports progress."""
        if self.stop.is_set():
            raise Stopped()
        if total:
            self.emit(Progress(task=task, done=done, total=total))

    def log(self, message: str, level: str = "info", detail: str = "") -> None:
        self.emit(LogLine(message, level=level, detail=detail))

    def wait_while_paused(self, poll_s: float = 0.05) -> None:
        """Block while paused; returns at once when stopped."""
        while self.pause.is_set() and not self.stop.wait(poll_s):
            self.poll()

    def also(self, *emits: Emit) -> "RunControl":
        """The same stop and pause, with events also going to ``emits`` (e.g. a run dir's recorder)."""
        first = self.emit

        def emit(event: Event) -> None:
            for e in emits:
                e(event)
            first(event)
        return replace(self, emit=emit)

    def with_emit(self, emit: Emit) -> "RunControl":
        """The same stop and pause, events going to ``emit`` only."""
        return replace(self, emit=emit)

    def linked(self) -> "RunControl":
        """A control for one part of this job (a trial, a rung) that can be stopped on its own (a pruned trial);
        stopping the job stops it too. Events and pause are the job's."""
        return replace(self, stop=LinkedStop(self.stop))

    def watching(self, path: str | Path) -> "RunControl":
        """The same control, also driven by the control file ``path`` (see ``ControlFile``)."""
        return replace(self, poll=ControlFile(path, self).poll)


class LinkedStop(threading.Event):
    """Set on its own, or once ``parent`` is set: the stop of one part of a job."""

    def __init__(self, parent: threading.Event) -> None:
        super().__init__()
        self.parent = parent

    def is_set(self) -> bool:
        return super().is_set() or self.parent.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.parent.is_set() or super().wait(timeout) or self.parent.is_set()


class ControlFile:
    """Stop or pause a run from another process: write ``stop``, ``pause`` or ``run`` (resume) into the file.

    ``poll`` looks at the file at most every ``interval_s`` (a clock read otherwise, so the training step does not
    pay for a system call) and only reads it when its modification time or size changed. A file present when the
    run starts is removed first: a ``stop`` left from an earlier run must not stop the resumed one.
    """

    def __init__(self, path: str | Path, control: RunControl, interval_s: float = 0.1) -> None:
        self.path, self.control, self.interval_s = Path(path), control, interval_s
        self._next = 0.0
        self._seen: tuple[int, int] | None = None
        self.path.unlink(missing_ok=True)

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        try:
            st = os.stat(self.path)
        except OSError:
            return
        if (st.st_mtime_ns, st.st_size) == self._seen:
            return
        self._seen = (st.st_mtime_ns, st.st_size)
        try:
            word = self.path.read_text(encoding="utf-8", errors="replace").strip().lower()
        except OSError:
            return
        self._apply(word)

    def _apply(self, word: str) -> None:
        c = self.control
        if word == "stop":
            c.stop.set()
        elif word == "pause":
            c.pause.set()
        elif word == "run":
            c.pause.clear()
        elif word:
            c.log(f"{self.path.name}: ignored '{word[:40]}' (expected one of {', '.join(CONTROL_WORDS)})", "warning")
