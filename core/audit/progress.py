"""Throttled progress: call in every loop iteration; it honours stop and reports at most ~10 times a second."""
from __future__ import annotations

import time
from typing import Callable

TickFn = Callable[[str, int, int], None]  # CheckContext.tick: (task, done, total); raises CheckStopped on stop


class Ticker:
    def __init__(self, tick: TickFn | None, task: str, total: int, interval: float = 0.1) -> None:
        self.tick, self.task, self.total, self.interval = tick, task, max(0, int(total)), interval
        self._last = 0.0

    def __call__(self, done: int) -> None:
        if self.tick is None:
            return
        now = time.monotonic()
        if self.total and (done >= self.total or now - self._last >= self.interval):
            self._last = now
            self.tick(self.task, int(done), self.total)
        else:
            self.tick(self.task, 0, 0)  # total 0: only checks stop, emits nothing
