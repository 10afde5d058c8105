"""A run's summary: status, steps, best and final losses and metric, duration, tag — ``summary.json`` in the run dir.

An observer of the run's events (``RunSummary.__call__``), updated in memory on every event and written atomically
when the run starts, at each evaluation and checkpoint, and when it ends; so listing runs never has to read a
million-line events.jsonl. A run dir without one (written before this file existed) is summarised by replaying its
events through the same observer (``summary_from_events``).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .events import Checkpoint, Eval, Event, Failed, Finished, RunStarted, Step

SUMMARY = "summary.json"
VERSION = 1
STALE_S = 3600.0  # a "running" run whose writer cannot be asked (another host) and that wrote nothing for this long


class RunSummary:
    def __init__(self, path: Path | None = None, state: dict[str, Any] | None = None) -> None:
        """``path``: the run dir to write ``summary.json`` into (None: only accumulate); ``state``: a previous
        summary to continue (a resumed run)."""
        self.path = path
        self.d: dict[str, Any] = state or {
            "version": VERSION, "status": "running", "recipe": "", "tag": {}, "started": None, "updated": None,
            "seconds": 0.0, "steps": 0, "total_steps": 0, "params": 0,
            "train_loss": {"first": None, "final": None, "best": None},
            "val_loss": {"final": None, "best": None, "best_step": None},
            "metric": {"name": None, "final": None, "best": None},
            "alarms": [], "early_stop": {}, "reason": "",
        }
        self._segment: float | None = None  # when this process's part of the run began
        self._seconds0 = float(self.d.get("seconds") or 0.0)
        self._last_time: float | None = None  # replaying: the latest time an event carried

    def __call__(self, event: Event) -> None:
        d = self.d
        when = getattr(event, "time", None)
        if when is not None:
            self._last_time = when
        if isinstance(event, Step):
            d["steps"] = event.step
            _track(d["train_loss"], event.loss)
            if d["train_loss"]["first"] is None:
                d["train_loss"]["first"] = event.loss
            return  # the hot path: no write
        if isinstance(event, RunStarted):
            self._started(event)
        elif isinstance(event, Eval) and event.split == "val":
            self._eval(event)
        elif isinstance(event, Finished):
            d.update(status=event.status, steps=event.step, alarms=list(event.alarms), early_stop=dict(event.early_stop))
        elif isinstance(event, Failed):
            d.update(status="failed", steps=event.step, reason=event.reason)
        elif not isinstance(event, Checkpoint):
            return
        self._touch(when)
        self.write()

    def _started(self, e: RunStarted) -> None:
        d = self.d
        d.update(status="running", recipe=e.recipe, total_steps=e.steps, params=e.params, steps=e.start_step, reason="")
        if self.path is not None:  # the writing process, so that a listing can tell a live run from a killed one
            d.update(pid=os.getpid(), host=socket.gethostname())
        if e.tag or not d.get("tag"):
            d["tag"] = dict(e.tag)
        if d["started"] is None:
            d["started"] = e.time
        self._segment, self._seconds0 = e.time, float(d.get("seconds") or 0.0)

    def _eval(self, e: Eval) -> None:
        val = self.d["val_loss"]
        if _track(val, e.loss):
            val["best_step"] = e.step
        metric = self.d["metric"]
        for name, value in e.metrics.items():
            metric["name"] = name
            metric["final"] = value
            if isinstance(value, (int, float)) and math.isfinite(value) and (metric["best"] is None or value > metric["best"]):
                metric["best"] = value  # the task metrics (accuracy) are higher-is-better
            break

    def _touch(self, when: float | None) -> None:
        now = when if when is not None else (time.time() if self.path is not None else self._last_time)
        if now is None:
            return
        self.d["updated"] = now
        if self._segment is not None:
            self.d["seconds"] = round(self._seconds0 + max(0.0, now - self._segment), 3)

    def write(self) -> None:
        if self.path is None:
            return
        tmp = self.path / (SUMMARY + ".tmp")
        tmp.write_text(json.dumps(self.d, default=_json_safe))
        os.replace(tmp, self.path / SUMMARY)


def _track(slot: dict[str, Any], value: float) -> bool:
    """Set ``final``; lower ``best``. True when ``value`` is the new best."""
    slot["final"] = value
    if isinstance(value, (int, float)) and math.isfinite(value) and (slot["best"] is None or value < slot["best"]):
        slot["best"] = value
        return True
    return False


def _json_safe(o: Any) -> Any:
    return o.item() if hasattr(o, "item") else str(o)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when absent or unreadable (e.g. written by an older version)."""
    try:
        d = json.loads((run_dir / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("version") == VERSION else None


def summary_from_events(events: Iterable[Event]) -> dict[str, Any]:
    """What ``RunSummary`` would have written, from a run's events (for runs without summary.json)."""
    s = RunSummary()
    for e in events:
        s(e)
    return s.d


def writer_here(s: Mapping[str, Any]) -> bool:
    """Is the process that writes this run alive on this host? Its pid, started no later than the run (a pid the
    system gave to another process since is not it), and not a zombie waiting for its parent."""
    pid, host = s.get("pid"), s.get("host")
    if not pid or host != socket.gethostname():
        return False
    import psutil

    try:
        proc = psutil.Process(int(pid))
        started, status = proc.create_time(), proc.status()
    except (psutil.Error, ValueError, TypeError):
        return False
    return status != psutil.STATUS_ZOMBIE and started <= (s.get("started") or time.time()) + 1.0


def writer_alive(s: Mapping[str, Any], run_dir: Path) -> bool:
    """Is the process that writes this run still at it? Asked directly on this host (``writer_here``); for a run
    written elsewhere, whether its events.jsonl changed within ``STALE_S``."""
    if s.get("pid") and s.get("host") == socket.gethostname():
        return writer_here(s)
    try:
        return time.time() - os.path.getmtime(run_dir / "events.jsonl") < STALE_S
    except OSError:
        return False
