"""How a job is driven: where its events go and how it is stopped or paused.

One ``RunControl`` is what the trainer, the checks and every future stage get: the worker only calls
``emit`` and looks at ``stop``/``pause``; whoever started the job (the CLI, the app, a test) sets them.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from .events import Emit, Event, LogLine, Progress, null_emit


class Stopped(Exception):
    """Raised by ``RunControl.tick`` once the job was asked to stop; the job ends as stopped, not failed."""


@dataclass(frozen=True)
class RunControl:
    emit: Emit = null_emit
    stop: threading.Event = field(default_factory=threading.Event)
    pause: threading.Event = field(default_factory=threading.Event)

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
            pass

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
