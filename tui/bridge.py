"""Between worker threads and the UI, without Textual: the event queue, and the bodies of the jobs
the app runs (load, check, train, browse, watch) as plain functions of what they are given.

Workers never touch widgets: they call ``emit(event)`` (a deque append that never blocks the trainer).
The first event after the UI drained the queue calls ``wake`` once (the screen posts itself a Textual
message); the UI then takes everything at once. No textual import here: tests drive it plainly.
"""
from __future__ import annotations

import json
import os
import threading
from collections import deque
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from recipe_tui.core.config import Experiment
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Checkpoint, Event, Progress, Step, event_from_dict

from .run_state import RunState, replay

QUEUE_LIMIT = 50_000  # events waiting for the screen (~10 MB of Step events) before routine ones are folded
ROUTINE = (Step, Progress)


class EventQueue:
    """Many producers, one consumer. ``deque.append``/``popleft`` are atomic in CPython, so no lock.

    ``wake`` is called by the first ``emit`` after a ``drain`` started, i.e. when the queue goes from
    drained to non-empty: at most once per drain however many events arrive, and never while idle.
    The flag is cleared *before* the queue is emptied, so an event appended during a drain either is
    taken by it or wakes the consumer again: no event is left behind without a wake-up.

    Bounded: once ``limit`` events wait (the screen fell behind a flood, e.g. a tiny model logging every
    step), routine events (``Step``, ``Progress``) are counted in ``folded`` instead of queued. They are only
    the screen's copy: the run dir's events.jsonl is written by the job itself and gets every one. Anything
    else (an eval, a warning, the end of the run) is always queued.
    """

    def __init__(self, wake: Callable[[], object] | None = None, limit: int = QUEUE_LIMIT) -> None:
        self._items: deque[Any] = deque()
        self.wake: Callable[[], object] = wake if wake is not None else (lambda: None)
        self._woken = False
        self.limit = limit
        self.folded = 0  # routine events not queued because the queue was full (read and reset by the consumer)
        self.high_water = 0  # the longest the queue has been (tests and benchmarks read it)

    def emit(self, event: Any) -> None:
        n = len(self._items)
        if n >= self.limit and isinstance(event, ROUTINE):
            self.folded += 1
            return
        self._items.append(event)
        if n >= self.high_water:
            self.high_water = n + 1
        if not self._woken:
            self._woken = True
            self.wake()

    def drain(self, limit: int = 100_000) -> list[Any]:
        """Everything queued so far (up to ``limit``, so one drain can never stall the UI for long;
        the caller drains again while ``len`` is not zero)."""
        self._woken = False
        out = []
        pop = self._items.popleft
        try:
            for _ in range(limit):
                out.append(pop())
        except IndexError:
            pass
        return out

    def take_folded(self) -> int:
        """How many routine events were not queued since the last call."""
        n, self.folded = self.folded, 0
        return n

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class DataSummary:
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: tuple[str, ...]
    sizes: tuple[tuple[str, int], ...]  # (split, samples)
    histograms: dict[str, list[int]] = field(default_factory=dict)  # split → count per class/token
    note: str = ""  # why there is no histogram


# ------------------------------------------------------------------------------- job bodies


def wait_for_data(data: Future, stop: threading.Event) -> bool:
    """Jobs started while the data loads wait for it: two loads at once would download into the same
    folder (cifar10's first run) and hold the data twice. False when the job was stopped meanwhile.
    ``data`` holds the splits, or None when the load failed (the job then loads and reports itself)."""
    while not wait_futures([data], timeout=0.05).done:
        if stop.is_set():
            return False
    return True


class UnreadableHistory(Exception):
    """The last run's events.jsonl could not be read; the message says which file and why."""


def load_history(exp: Experiment, runs_root: str | Path) -> tuple[RunState, str] | None:
    """The last run's curves, or None when there is no run yet. An unfinished run is ``interrupted``:
    the process that wrote it is gone."""
    from recipe_tui.core.jobs import latest_run

    run = latest_run(runs_root, exp.name)
    if run is None:
        return None
    return load_run(run, "the last run's"), str(run)


def load_run(run: str | Path, whose: str = "the run's") -> RunState:
    """A recorded run's curves (the last run on opening, the runs view's overlays and past runs). An unfinished run
    is ``interrupted``: the process that wrote it is gone (a live one is followed, not loaded)."""
    from recipe_tui.core.rundir import EVENTS, read_events

    path = Path(run) / EVENTS
    try:
        state = replay(read_events(path))
    except Exception as exc:  # damaged, or written by a newer version
        raise UnreadableHistory(f"could not read {whose} events ({path}): {type(exc).__name__}: {exc}") from exc
    if state.active:
        state.status = "interrupted"
    return state


def load_splits(exp: Experiment) -> tuple[Any, DataSummary]:
    """After the first frame: the check registry (imports torch), then the data and its summary."""
    from recipe_tui.core.checks import registry
    registry()
    from recipe_tui.core.data import load_seeded
    splits = load_seeded(exp)  # seeded first, as training loads it: a random_split must give the same split
    return splits, summarize_data(splits, exp.task)


def summarize_data(splits: Any, task: str) -> DataSummary:
    """Sizes and label histograms, from labels only (``targets_of``): never iterates the inputs."""
    import torch

    from recipe_tui.core.data import targets_of
    from recipe_tui.core.tasks import task_of

    info = splits.info
    kind = task_of(task)
    sizes = tuple((name, len(ds)) for name, ds in splits.items())
    hists: dict[str, list[int]] = {}
    note = ""
    if not kind.classes or not info.num_classes:
        note = "regression targets: no class histogram"
    else:
        for name, ds in splits.items():
            try:
                y = targets_of(ds)
            except (TypeError, ValueError, RuntimeError):  # e.g. string labels in a .labels attribute
                y = None
            integer_ids = y is not None and not y.is_floating_point() and y.dim() <= (2 if kind.sequence else 1)
            if not integer_ids:  # absent, or one-hot / soft targets: not class ids to count
                note = "labels are not available without reading every sample (run data-stats)"
                hists = {}
                break
            y = y.reshape(-1).long()
            y = y[(y >= 0) & (y < info.num_classes)]  # sequence padding (-1) is not a class
            hists[name] = torch.bincount(y, minlength=info.num_classes).tolist()
    return DataSummary(kind=info.kind, input_shape=tuple(info.input_shape), num_classes=info.num_classes,
                       class_names=tuple(info.class_names), sizes=sizes, histograms=hists, note=note)


def check_job(exp: Experiment, check_ids: list[str], control: RunControl, runs_root: str | Path,
              splits: Any = None) -> None:
    """The same code path as ``recipe-tui check``: results arrive as CheckStarted/CheckResult events."""
    from recipe_tui.core.checks import CheckContext, run_checks

    ctx = CheckContext(exp=exp, control=control, runs_root=str(runs_root))
    if splits is not None:  # the app loaded the data once, the way training does; checks only read it
        ctx.use_data(splits)
    run_checks(check_ids, ctx)


def check_process(exp: Experiment, check_ids: list[str], control: RunControl, runs_root: str | Path,
                  grace_s: float = 2.0) -> int:
    """Run checks in a process of their own (``tui/side_checks.py``), as the app does beside training: the
    child's random numbers, threads, priority (nice) and GIL are its own, so the training run in this process
    is not touched. Its events come back through ``control.emit``, its other output as warnings; ``stop``
    ends it (stdin closed, then killed after ``grace_s``). Returns the child's exit code."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recipe_tui.tui.side_checks"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"experiment": exp.to_dict(), "checks": check_ids, "runs": str(runs_root)}) + "\n")
    proc.stdin.flush()  # kept open: the child stops when it closes (here on stop, or when this process dies)

    def end_on_stop() -> None:
        while proc.poll() is None:
            if control.stop.wait(0.1):
                proc.stdin.close()
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                return

    threading.Thread(target=end_on_stop, daemon=True, name="recipe-tui-side-stop").start()
    for line in proc.stdout:
        event = _event_line(line)
        if event is not None:
            control.emit(event)
        elif line.strip():
            control.log(line.rstrip(), "warning")  # a warning or a traceback the child printed
    code = proc.wait()
    if not proc.stdin.closed:
        proc.stdin.close()
    return code


def _event_line(line: str) -> Event | None:
    try:
        d = json.loads(line)
        return event_from_dict(d) if isinstance(d, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def train_job(exp: Experiment, control: RunControl, runs_root: str | Path) -> Any:
    from recipe_tui.core.jobs import run_training

    return run_training(exp, control, runs_root=runs_root)


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


class RunFollower:
    """Follows a run dir that another process writes: its recorded history in one piece, then the events appended
    since, each through ``control.emit``. Lines that do not parse or hold a field of the wrong type are skipped and
    counted in the log; a run dir that disappears is said so (and again when it comes back)."""

    def __init__(self, run_dir: str | Path, control: RunControl) -> None:
        self.run_dir = Path(run_dir)
        self.control = control
        self.tail = EventTail(self.run_dir / "events.jsonl")
        self._reported = 0
        self._gone = False
        self.checkpoint: int | None = None  # the step of the last checkpoint seen

    def history(self) -> RunState:
        """Everything recorded so far, folded into one state (a long run is not pushed through the queue)."""
        events = self.tail.read_new()
        self._note_checkpoint(events)
        state = replay(events)
        if self.tail.path.exists():  # when the writer last wrote, not when we read it: a dead run must not look live
            state.last_event_time = self.tail.path.stat().st_mtime
        self._note_bad_lines()
        return state

    def poll(self) -> list[Event]:
        """Emit (and return) the events appended since the last call."""
        if self.run_dir.is_dir() == self._gone:
            self._gone = not self._gone
            self.control.log(f"the run dir {self.run_dir} was deleted: nothing more to follow" if self._gone
                             else f"the run dir {self.run_dir} is back", "warning")
        events = self.tail.read_new()
        for event in events:
            self.control.emit(event)
        self._note_checkpoint(events)
        self._note_bad_lines()
        return events

    def _note_checkpoint(self, events: list[Event]) -> None:
        steps = [e.step for e in events if isinstance(e, Checkpoint)]
        if steps:
            self.checkpoint = steps[-1]

    def _note_bad_lines(self) -> None:
        if self.tail.bad_lines > self._reported:
            self.control.log(f"skipped {self.tail.bad_lines - self._reported} unreadable line(s) in {self.tail.path}",
                             "warning")
            self._reported = self.tail.bad_lines


def watch_job(run_dir: str | Path, control: RunControl, on_history: Callable[[RunState], object],
              poll_s: float = 0.25) -> None:
    """``recipe-tui watch``: follow a run another process writes (``RunFollower``) until ``control.stop`` is set."""
    follower = RunFollower(run_dir, control)
    on_history(follower.history())
    while not control.stop.wait(poll_s):
        follower.poll()


def watch_target(path: str | Path) -> tuple[Path, str]:
    """(the run dir ``recipe-tui watch PATH`` follows, a note on how it was chosen). A run dir (it holds
    events.jsonl or config.json) is itself; a recipe's folder of runs gives its newest run; anything else is a
    ``ConfigError`` with one sentence."""
    from recipe_tui.core.config import ConfigError

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: no such run directory (watch takes runs/<recipe>/<timestamp>).")
    if is_run_dir(path):
        return path, ""
    runs = sorted((p for p in path.iterdir() if p.is_dir() and is_run_dir(p)), key=lambda p: p.name)
    if runs:
        return runs[-1], f"{path} holds {len(runs)} run(s); watching the newest, {runs[-1]}"
    recipes = sorted(p.name for p in path.iterdir() if p.is_dir() and any(is_run_dir(r) for r in p.iterdir()
                                                                          if r.is_dir()))
    if recipes:
        raise ConfigError(f"{path} holds the runs of {', '.join(recipes[:5])}: watch one of them, e.g. "
                          f"recipe-tui watch {path / recipes[0]}.")
    raise ConfigError(f"{path} is not a run directory (no events.jsonl or config.json) and holds no runs: "
                      "watch takes runs/<recipe>/<timestamp> or runs/<recipe>.")


def is_run_dir(path: Path) -> bool:
    return (path / "events.jsonl").is_file() or (path / "config.json").is_file()
