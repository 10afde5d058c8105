"""plotext off the UI thread: one long-lived process of its own builds the charts' text, so that a build no longer
holds the GIL the trainer's thread needs (about 12 ms a build in the app, three charts a second: 4 % of training).

The app's side (``ChartProcess``) sends the charts' ``Layout``s (downsampled points, size, colours, ticks: plain
values) and is called back on the event loop's thread with plotext's ANSI text, which the UI thread only turns
into segments (``plot.ansi_rows``). The process starts on the first request, reads requests from its stdin and
ends when that closes (``close``, or this process gone). Anything that goes wrong (it cannot start, it dies, a
build raises) is answered with None: the caller draws in its own process, as it would without one.

Frames both ways: a 4-byte length, then a pickle (the child is this package's own code).
"""
from __future__ import annotations

import asyncio
import os
import pickle
import signal
import struct
import subprocess
import sys
from typing import Any, BinaryIO, Callable, Sequence

from .plotext_build import Layout, build_ansi, new_figure

HEAD = struct.Struct("<I")
Texts = list[str] | None  # plotext's text per layout, in order; None: draw them yourself
Done = Callable[[Texts], object]
CLOSE_WAIT_S = 1.0


class ChartProcess:
    """The app's side of the chart process; use it from the event loop's thread only."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.failed = False  # it could not start or died: callers draw in their own process from now on
        self.starts = 0  # processes started (tests read it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: dict[int, Done] = {}
        self._next_id = 0
        self._buf = bytearray()

    @property
    def busy(self) -> bool:
        """Whether a request is waiting for its answer."""
        return bool(self._waiting)

    def submit(self, layouts: Sequence[tuple[str, Layout]], done: Done) -> bool:
        """Ask for the text of ``layouts`` ((figure name, layout) pairs; each name keeps a plotext figure of its own);
        ``done(texts)`` is called on the event loop when they arrive. False: there is no process (it cannot start,
        or no event loop runs here) and ``done`` will not be called: draw now, in this process."""
        if self.failed:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self.proc is None and not self._start(loop):
            return False
        self._next_id += 1
        body = pickle.dumps((self._next_id, list(layouts)), protocol=pickle.HIGHEST_PROTOCOL)
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(HEAD.pack(len(body)) + body)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self._fail()
            return False
        self._waiting[self._next_id] = done
        return True

    def _start(self, loop: asyncio.AbstractEventLoop) -> bool:
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
            assert self.proc.stdout is not None
            os.set_blocking(self.proc.stdout.fileno(), False)
            loop.add_reader(self.proc.stdout.fileno(), self._readable)
        except (OSError, NotImplementedError, ValueError):
            self._fail()
            return False
        self._loop = loop
        self.starts += 1
        return True

    def _readable(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the process ended
            self._fail()
            return
        self._buf += chunk
        while len(self._buf) >= HEAD.size:
            (n,) = HEAD.unpack_from(self._buf)
            if len(self._buf) < HEAD.size + n:
                break
            request, texts = pickle.loads(bytes(self._buf[HEAD.size:HEAD.size + n]))
            del self._buf[:HEAD.size + n]
            done = self._waiting.pop(request, None)
            if done is not None:
                done(texts)

    def _fail(self) -> None:
        """From now on, callers draw in their own process; those waiting are told to."""
        self.failed = True
        self._stop(kill=True)
        waiting, self._waiting = self._waiting, {}
        for done in waiting.values():
            done(None)

    def close(self) -> None:
        """End the process (its stdin closes; killed if it does not end within ``CLOSE_WAIT_S``). Nothing waiting is
        called back: the charts are going away. A later ``submit`` starts a new one."""
        self._waiting.clear()
        self._stop(kill=False)

    def _stop(self, kill: bool) -> None:
        proc, self.proc = self.proc, None
        self._buf.clear()
        if proc is None:
            return
        if self._loop is not None and proc.stdout is not None and not self._loop.is_closed():
            self._loop.remove_reader(proc.stdout.fileno())
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            if kill:
                proc.kill()
            proc.wait(CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- the process's side


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until stdin closes: (id, [(name, layout)]) → (id, [text] or None when a build raised)."""
    figures: dict[str, Any] = {}
    while (head := _read_exact(stdin, HEAD.size)) is not None:
        body = _read_exact(stdin, HEAD.unpack(head)[0])
        if body is None:
            return
        request, layouts = pickle.loads(body)
        try:
            texts: Texts = []
            for name, layout in layouts:
                if name not in figures:
                    figures[name] = new_figure()
                texts.append(build_ansi(layout, figures[name]))
        except Exception:  # noqa: BLE001 — any failure: the app draws this one itself
            texts = None
        reply = pickle.dumps((request, texts), protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(HEAD.pack(len(reply)) + reply)
        stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c in the terminal is the app's to handle; stdin ends us
    serve(sys.stdin.buffer, sys.stdout.buffer)
