"""Events the core emits: frozen dataclasses, one JSON object per line in events.jsonl.

The worker only ever calls ``emit(event)``; the run dir, the CLI and the TUI consume the same
objects, so a run written by another process can be replayed by ``recipe-tui watch``.
"""
from __future__ import annotations

import dataclasses
import json
import time
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type}
        d.update(dataclasses.asdict(self))
        return d

    def to_json(self) -> str:
        # One shared encoder over a shallow dict: 4 µs an event instead of 20 (json.dumps with options builds an
        # encoder per call; asdict deep-copies), which a tiny model logging every step notices.
        return _ENCODER.encode({"type": self.type, **self.__dict__})


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


@dataclass(frozen=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_dir: str
    recipe: str
    device: str
    steps: int
    start_step: int = 0
    params: int = 0
    time: float = field(default_factory=time.time)
    world_size: int = 1  # processes training together (torchrun / DDP)
    # Where the run came from, for comparing runs (README, "Run tags"): {"kind": "capacity", "group": …, "label": …};
    # empty for a plain ``train``. Older readers ignore the key.
    tag: dict[str, Any] = field(default_factory=dict)
    threads: int = 0  # torch's CPU intra-op threads for this run (train.threads, or auto's choice); 0: not reported


@dataclass(frozen=True)
class Step(Event):
    """A logged training step (only every ``log_every`` steps: .item() syncs the device)."""

    type: ClassVar[str] = "step"
    step: int
    loss: float
    lr: float
    grad_norm: float | None = None
    steps_per_s: float | None = None
    loss_max: float | None = None  # the largest finite loss of the steps since the previous Step: spikes between logs


@dataclass(frozen=True)
class Eval(Event):
    type: ClassVar[str] = "eval"
    step: int
    split: str
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LogLine(Event):
    type: ClassVar[str] = "log"
    message: str
    level: str = "info"  # info | warning | error
    detail: str = ""  # e.g. a traceback, shown folded
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Progress(Event):
    """Progress of a slow non-training task (a data scan, a check)."""

    type: ClassVar[str] = "progress"
    task: str
    done: int
    total: int


@dataclass(frozen=True)
class Predictions(Event):
    """What the model predicts for a fixed set of validation examples at one evaluation ("prediction dynamics").

    ``kind``: ``classes`` (each example ``{index, label, predicted, probs}``; ``probs`` has every class, or the
    ``top`` classes as ``{class: p}`` when there are many), ``text`` (language models: ``{text, tokens}``
    sampled from the model with a fixed generator, so successive evaluations are comparable), ``values``
    (regression: ``{index, target, prediction}``, at most 8 numbers each).
    """

    type: ClassVar[str] = "predictions"
    step: int
    kind: str
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CheckRow(Event):
    """One row of a check's table, emitted as soon as it is known (a capacity point, an lr-find repeat, and in
    later stages a rung, a trial, a member): the app shows rows live; the finished table is in the result's
    ``metrics[table]``."""

    type: ClassVar[str] = "check_row"
    id: str  # the check id
    table: str  # the metrics key the row belongs to, e.g. "points"
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckStarted(Event):
    type: ClassVar[str] = "check_started"
    id: str


@dataclass(frozen=True)
class CheckResult(Event):
    """The verdict of one checklist item; the public result shape of ``check --json``."""

    type: ClassVar[str] = "check_result"
    id: str
    status: str  # pass | warn | fail | error | skip
    summary: str
    metrics: dict[str, Any] = field(default_factory=dict)
    hint: str = ""

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k != "type"}


@dataclass(frozen=True)
class Finished(Event):
    type: ClassVar[str] = "finished"
    status: str  # completed | stopped
    step: int
    final: dict[str, float] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    # Warnings about the run as a whole, e.g. {"kind": "wiggle", "step": …, "message": …, numbers…} (core/wiggle.py):
    # a run with alarms completed but deserves a look (the app marks the train item warn).
    alarms: list[dict[str, Any]] = field(default_factory=list)
    # Set when train.early_stop ended the run: {"step", "best_step", "best_val_loss", "patience"}.
    early_stop: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed(Event):
    type: ClassVar[str] = "failed"
    step: int
    reason: str
    last_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    detail: str = ""
    time: float = field(default_factory=time.time)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, Step, Eval, LogLine, Checkpoint, Progress, Predictions, CheckRow, CheckStarted, CheckResult,
                Finished, Failed)
}

Emit = Callable[[Event], None]


def event_from_dict(d: dict[str, Any]) -> Event:
    """Inverse of ``Event.to_dict``; unknown keys (from newer writers) are ignored. A field of the wrong type
    (``"loss": "abc"``) raises ``TypeError`` here, like a missing one, instead of deep in whatever reads it."""
    cls = EVENT_TYPES[d["type"]]
    checks = _field_checks(cls)
    values = {k: v for k, v in d.items() if k in checks}
    for name, value in values.items():
        if not checks[name](value):
            raise TypeError(f"{d['type']}.{name} has the wrong type ({type(value).__name__})")
    return cls(**values)


_CHECKS: dict[type, dict[str, Callable[[Any], bool]]] = {}
_NUMBER = (int, float)


def _field_checks(cls: type[Event]) -> dict[str, Callable[[Any], bool]]:
    """Field name → whether a JSON value fits the field's annotation."""
    if cls not in _CHECKS:
        hints = typing.get_type_hints(cls)
        _CHECKS[cls] = {f.name: _fits(hints[f.name]) for f in dataclasses.fields(cls)}
    return _CHECKS[cls]


def _fits(hint: Any) -> Callable[[Any], bool]:
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        inner = _fits(next(a for a in args if a is not type(None)))
        return lambda v: v is None or inner(v)
    origin = typing.get_origin(hint) or hint
    if origin is dict and len(args) == 2 and args[1] is float:  # metrics: numbers only
        return lambda v: isinstance(v, dict) and all(isinstance(x, _NUMBER) for x in v.values())
    kinds = {float: _NUMBER, int: (int,), str: (str,), dict: (dict,), list: (list,)}.get(origin, (object,))
    return lambda v: isinstance(v, kinds)


def null_emit(event: Event) -> None:
    """An ``emit`` that drops everything, for library use without a UI or run dir."""
