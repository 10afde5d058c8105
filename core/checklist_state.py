"""Checklist state of one experiment, kept across sessions: manual ticks and each item's last result.

Stored as ``<runs>/<recipe>/checklist.json`` beside the run dirs (``jobs.latest_run`` ignores it: it
is a file, not a dir with a config.json). Saved atomically (temp file + rename) so a crash mid-save
never leaves half a file; an unreadable file is moved aside, never silently overwritten.
UI-free: the TUI and any script can read it.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import CheckResult

STATE_FILE = "checklist.json"
FORMAT_VERSION = 1
# Checks may put big evidence in metrics (captured batches): the file keeps the verdict, not the payload.
MAX_VALUE_CHARS = 20_000


def state_path(runs_root: str | Path, recipe: str) -> Path:
    from .config import check_name
    from .paths import inside
    return inside(runs_root, check_name(recipe), STATE_FILE)


@dataclass
class ChecklistState:
    path: Path
    ticks: set[str] = field(default_factory=set)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id → public result + "time"
    warning: str = ""  # set when the stored file could not be read (the caller shows it)

    @classmethod
    def load(cls, runs_root: str | Path, recipe: str) -> "ChecklistState":
        path = state_path(runs_root, recipe)
        state = cls(path)
        if not path.is_file():
            return state
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            state.ticks = {str(t) for t in doc.get("ticks", [])}
            state.results = {str(k): dict(v) for k, v in doc.get("results", {}).items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            aside = path.with_name(path.name + ".bad")
            os.replace(path, aside)
            state.ticks, state.results = set(), {}
            state.warning = f"{path} was unreadable ({type(exc).__name__}); moved to {aside.name}, starting fresh."
        return state

    # -- ticks ----------------------------------------------------------------------------------
    def is_ticked(self, item_id: str) -> bool:
        return item_id in self.ticks

    def set_tick(self, item_id: str, ticked: bool) -> None:
        (self.ticks.add if ticked else self.ticks.discard)(item_id)

    def toggle_tick(self, item_id: str) -> bool:
        """Flip the tick; returns the new value."""
        self.set_tick(item_id, not self.is_ticked(item_id))
        return self.is_ticked(item_id)

    # -- results --------------------------------------------------------------------------------
    def record(self, item_id: str, res: CheckResult, when: float | None = None) -> None:
        doc = res.public()
        doc["metrics"] = {k: _storable(v) for k, v in doc.get("metrics", {}).items()}
        doc["time"] = time.time() if when is None else when
        self.results[item_id] = doc

    def result(self, item_id: str) -> CheckResult | None:
        doc = self.results.get(item_id)
        if doc is None:
            return None
        return CheckResult(id=str(doc.get("id", item_id)), status=str(doc.get("status", "skip")),
                           summary=str(doc.get("summary", "")), metrics=dict(doc.get("metrics", {})),
                           hint=str(doc.get("hint", "")))

    def result_time(self, item_id: str) -> float | None:
        doc = self.results.get(item_id)
        return None if doc is None else doc.get("time")

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "ticks": sorted(self.ticks), "results": self.results}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, self.path)


def _storable(value: Any) -> Any:
    """A JSON-safe version of one metric value: tensors/arrays become lists, NaN/inf strings, huge values a note."""
    value = _plain(value)
    text = json.dumps(value, allow_nan=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        return f"<{len(text):,} characters, not kept>"
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # torch tensors and numpy arrays, without importing either
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
