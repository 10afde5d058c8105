"""Keep raw writes to file descriptor 2 off the screen while the app runs.

Textual's Linux driver draws the whole screen through ``sys.__stderr__`` (fd 2). C code (CUDA, NCCL,
OpenMP warnings), ``faulthandler`` and DataLoader worker processes write to fd 2 directly, below
Python, and would scribble over the frame. So while the app runs:

* fd 2 is duplicated once (``os.dup``) and the driver draws on that copy of the terminal;
* fd 2 itself is pointed at a log file (``os.dup2``), which child processes inherit too;
* afterwards fd 2 is pointed back at the terminal.

This is only done where it is known to be safe: fd 2 is a terminal and the driver is Textual's
``LinuxDriver`` (whose output file is the ``_file`` attribute it sets from ``sys.__stderr__``).
Python-level ``print``/``warnings`` are captured by Textual itself and shown in the run log.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO


@dataclass
class Guard:
    terminal: TextIO  # where the driver and the crash report must write
    log_path: Path
    log_size_before: int
    driver_class: Any

    def new_bytes(self) -> int:
        try:
            return self.log_path.stat().st_size - self.log_size_before
        except OSError:
            return 0


@contextmanager
def guard_stderr(log_path: str | Path) -> Iterator[Guard | None]:
    """Yields a ``Guard`` (pass ``guard.driver_class`` to the App) or ``None`` when nothing was changed."""
    if sys.platform == "win32" or not os.isatty(2):
        yield None
        return
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:
        yield None
        return
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    encoding = getattr(sys.__stderr__, "encoding", None) or "utf-8"
    terminal = os.fdopen(os.dup(2), "w", encoding=encoding, errors="backslashreplace")

    class TerminalDriver(LinuxDriver):
        def __init__(self, app: Any, **kwargs: Any) -> None:
            super().__init__(app, **kwargs)
            self._file = terminal  # draw on the saved terminal, not on fd 2

    with open(log_path, "ab") as log:
        before = os.path.getsize(log_path)
        sys.stderr.flush()
        os.dup2(log.fileno(), 2)
    try:
        yield Guard(terminal, log_path, before, TerminalDriver)
    finally:
        terminal.flush()
        os.dup2(terminal.fileno(), 2)
        terminal.close()
