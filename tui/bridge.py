"""Between worker threads and the UI: a queue the workers append to and the UI drains on a timer,
plus the bodies of the jobs the app runs (load, check, train, watch).

Workers never touch widgets: they call ``queue.emit(event)`` (a deque append, ~0.1 µs, never blocks
the trainer) and the UI takes everything at once at ≤10 Hz. Besides the core events the queue carries
a few UI-side notes (``JobEnded``, ``DataLoaded``, ``HistoryLoaded``); they travel in the same queue
so they arrive in order with the events around them. No textual import here: tests drive it plainly.
"""
from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from recipe_tui.core.config import Experiment
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Event, LogLine, event_from_dict

from .run_state import RunState, replay


class EventQueue:
    """Many producers, one consumer. ``deque.append``/``popleft`` are atomic in CPython, so no lock."""

    def __init__(self) -> None:
        self._items: deque[Any] = deque()

    def emit(self, event: Any) -> None:
        self._items.append(event)

    def drain(self, limit: int = 100_000) -> list[Any]:
        """Everything queued so far (up to ``limit``, so one tick can never stall the UI for long)."""
        out = []
        pop = self._items.popleft
        try:
            for _ in range(limit):
                out.append(pop())
        except IndexError:
            pass
        return out

    def __len__(self) -> int:
        return len(self._items)


# ------------------------------------------------------------------------------- UI-side notes


@dataclass(frozen=True)
class JobEnded:
    job_id: int


@dataclass(frozen=True)
class DataSummary:
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...]  # (split, samples)
    histograms: dict[str, list[int]] = field(default_factory=dict)  # split → count per class/token
    note: str = ""  # why there is no histogram


@dataclass(frozen=True)
class DataLoaded:
    summary: DataSummary
    splits: Any  # core.data.Splits, handed to check jobs so they do not load the data again


@dataclass(frozen=True)
class HistoryLoaded:
    state: RunState
    run_dir: str


# ------------------------------------------------------------------------------- job bodies


def run_detachable(fn: Any, stop: threading.Event, grace_s: float) -> Any:
    """Run ``fn()`` in a daemon thread and return its result (or raise its exception), but give up
    ``grace_s`` seconds after ``stop`` is set, leaving it running detached.

    Importing torch or downloading a dataset cannot be interrupted, and a Textual thread worker runs
    in asyncio's executor, which the interpreter waits for at exit: quitting during a long load would
    hang. A daemon thread does not keep the process alive. Only for jobs that merely read, or that
    stop cleanly within the grace period (checks call ``ctx.tick``); never for training, whose
    checkpoint must be written.
    """
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # handed to the worker, which reports it
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="recipe-tui-job")
    thread.start()
    while thread.is_alive() and not stop.wait(0.05):
        pass
    thread.join(grace_s if stop.is_set() else None)
    if "error" in out:
        raise out["error"]
    return out.get("result")


def load_job(exp: Experiment, runs_root: str | Path, emit: Any, stop: threading.Event) -> None:
    """After the first frame: the last run's curves, the check registry (imports torch), then the data."""
    from recipe_tui.core.jobs import latest_run
    from recipe_tui.core.rundir import EVENTS, read_events

    run = latest_run(runs_root, exp.name)
    if run is not None:
        try:
            state = replay(read_events(run / EVENTS))
        except Exception as exc:  # a damaged or newer-format history must not keep the data from loading
            emit(LogLine(f"could not read the last run's events ({run / EVENTS}): {type(exc).__name__}: {exc}",
                         "warning"))
        else:
            if state.active:
                state.status = "interrupted"  # nothing writes it any more: the process that did is gone
            emit(HistoryLoaded(state, str(run)))
    if stop.is_set():
        return
    from recipe_tui.core.checks import registry
    registry()
    import plotext._figure  # noqa: F401  (warms the import so the first chart does not stall the UI)
    from recipe_tui.core.data import load_data
    splits = load_data(exp)
    emit(DataLoaded(summarize_data(splits, exp.task), splits))


def summarize_data(splits: Any, task: str) -> DataSummary:
    """Sizes and label histograms, from labels only (``targets_of``): never iterates the inputs."""
    import torch

    from recipe_tui.core.data import targets_of

    info = splits.info
    sizes = tuple((name, len(ds)) for name, ds in splits.items())
    hists: dict[str, list[int]] = {}
    note = ""
    if task == "regression" or not info.num_classes:
        note = "regression targets: no class histogram"
    else:
        for name, ds in splits.items():
            try:
                y = targets_of(ds)
            except (TypeError, ValueError, RuntimeError):  # e.g. string labels in a .labels attribute
                y = None
            integer_ids = y is not None and not y.is_floating_point() and y.dim() <= (2 if task == "language-model" else 1)
            if not integer_ids:  # absent, or one-hot / soft targets: not class ids to count
                note = "labels are not available without reading every sample (run data-stats)"
                hists = {}
                break
            y = y.reshape(-1).long()
            y = y[(y >= 0) & (y < info.num_classes)]  # sequence padding (-1) is not a class
            hists[name] = torch.bincount(y, minlength=info.num_classes).tolist()
    return DataSummary(kind=info.kind, input_shape=tuple(info.input_shape), num_classes=info.num_classes,
                       class_names=tuple(info.class_names), sizes=sizes, histograms=hists, note=note)


def check_job(exp: Experiment, check_ids: list[str], emit: Any, stop: threading.Event, runs_root: str | Path,
              splits: Any = None) -> None:
    """The same code path as ``recipe-tui check``: results arrive as CheckStarted/CheckResult events."""
    from recipe_tui.core.checks import CheckContext, run_checks

    ctx = CheckContext(exp=exp, control=RunControl(emit=emit, stop=stop), runs_root=str(runs_root))
    if splits is not None:
        ctx._splits = splits  # the app already loaded them once; checks only read them
    run_checks(check_ids, ctx)


def train_job(exp: Experiment, emit: Any, stop: threading.Event, pause: threading.Event, runs_root: str | Path) -> Any:
    from recipe_tui.core.jobs import run_training

    return run_training(exp, RunControl(emit=emit, stop=stop, pause=pause), runs_root=runs_root)


# ------------------------------------------------------------------------------- watch mode


class EventTail:
    """Reads the complete lines appended to an events.jsonl since the last call.

    A line without its newline yet is a write in progress (or torn by a kill): it stays in the file
    until it is complete. A complete line that does not parse is reported once and skipped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0

    def read_new(self) -> list[Event]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset = 0  # the file was replaced: start over
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        end = data.rfind(b"\n") + 1
        self.offset += end
        return list(self._parse(data[:end].splitlines()))

    def _parse(self, lines: Iterable[bytes]) -> Iterable[Event]:
        for line in lines:
            if not line.strip():
                continue
            try:
                yield event_from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1


def watch_job(run_dir: str | Path, emit: Any, stop: threading.Event, poll_s: float = 0.25) -> None:
    """Follow a run another process writes: its history in one piece, then each new event."""
    run_dir = Path(run_dir)
    tail = EventTail(run_dir / "events.jsonl")
    state = replay(tail.read_new())
    if tail.path.exists():  # when the writer last wrote, not when we read it: a dead run must not look live
        state.last_event_time = tail.path.stat().st_mtime
    emit(HistoryLoaded(state, str(run_dir)))
    reported = 0
    while not stop.wait(poll_s):
        for event in tail.read_new():
            emit(event)
        if tail.bad_lines > reported:
            emit(LogLine(f"skipped {tail.bad_lines - reported} unreadable line(s) in {tail.path}", level="warning"))
            reported = tail.bad_lines


def losses_of_last_run(exp: Experiment, runs: Path, splits: Any, tick: Any) -> dict[str, Any] | None:
    """``after_training_findings`` of the newest run's checkpoint, or None when there is none yet.

    The model is built from the recipes file the app opened (``exp``): a run dir only says which of its
    settings were used, never which code to run."""
    from recipe_tui.core.audit import after_training_findings
    from recipe_tui.core.jobs import latest_run, load_trained_model

    run = latest_run(runs, exp.name)
    if run is None or not (run / "checkpoint.pt").is_file():
        return None
    run_exp, model, splits = load_trained_model(run, {exp.name: exp}, splits)
    return after_training_findings(model, splits, run_exp.task, tick=tick)
