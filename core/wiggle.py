"""The wiggle alarm: "does the loss wiggle too much? lower the learning rate" (the recipe, stage 3).

A small observer fed the trainer's logged ``Step`` events (never every step). Two signs of a learning rate too high:

- **spike**: the largest loss since the previous log (``Step.loss_max``) is above ``SPIKE_FACTOR`` × the median
  of the last ``WINDOW`` logged losses, and above it by more than ``SPIKE_FLOOR`` × the first logged loss (the
  loss at init: a 0.001 → 0.05 batch late in training is noise at a loss that small, not a spike);
- **wiggle**: over the last ``WINDOW`` logged losses, the noise (std of successive differences / √2, which a
  steady trend does not inflate) is above ``WIGGLE_RATIO`` × their median and above ``WIGGLE_FLOOR`` × the first
  logged loss, for ``PERSIST`` logs in a row ("stays high").

Tuned on digits (MLP, CNN) and names (transformer) over lr 3e-4 … 0.5 and two seeds: silent on every run at
lr ≤ 1e-2 (worst spike margin 0.37 of the threshold; wiggle streaks ≤ 3 logs against 8), firing at lr ≥ 0.05
and on lr 0.5, whose loss jumps from 2.3 to ~2,000 in the first steps and then sits at chance.
Each kind fires once per run.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any

from .events import LogLine, Step

WINDOW = 20
SPIKE_FACTOR, SPIKE_FLOOR = 3.0, 0.25
WIGGLE_RATIO, WIGGLE_FLOOR, PERSIST = 0.5, 0.05, 8
HINT = "the loss wiggles: try a lower learning rate"


class WiggleWatch:
    """Feed it every logged ``Step``; it returns a warning ``LogLine`` the first time each kind of alarm fires."""

    def __init__(self) -> None:
        self.scale: float | None = None  # the first logged loss (the loss at init on a fresh run)
        self.history: deque[float] = deque(maxlen=WINDOW)
        self.streak = 0
        self.alarms: list[dict[str, Any]] = []

    def observe(self, step: Step) -> LogLine | None:
        loss = step.loss
        if not math.isfinite(loss):
            return None
        if self.scale is None:
            self.scale = abs(loss)
        alarm = self._spike(step) if self.history else None
        self.history.append(loss)
        alarm = alarm or self._wiggle(step.step)
        if alarm is None:
            return None
        self.alarms.append(alarm)
        return LogLine(alarm["message"], level="warning")

    def _fired(self, kind: str) -> bool:
        return bool(self.alarms) and any(a["kind"] == kind for a in self.alarms)

    def _spike(self, step: Step) -> dict[str, Any] | None:
        peak = step.loss_max if step.loss_max is not None else step.loss
        median = _median(self.history)
        if self._fired("spike") or not (peak > SPIKE_FACTOR * median and peak - median > SPIKE_FLOOR * self.scale):
            return None
        return {"kind": "spike", "step": step.step, "loss_max": peak, "median": median, "lr": step.lr,
                "message": f"{HINT} (a spike: loss {peak:.4g} between logs up to step {step.step}, "
                           f"{peak / max(median, 1e-12):.1f}× the running median {median:.4g}; lr {step.lr:.3g})."}

    def _wiggle(self, at_step: int) -> dict[str, Any] | None:
        if len(self.history) < WINDOW or self._fired("wiggle"):
            return None
        values = list(self.history)
        noise = _pstdev([b - a for a, b in zip(values, values[1:])]) / math.sqrt(2)
        level = _median(values)
        ratio = noise / max(level, 1e-12)
        high = ratio > WIGGLE_RATIO and noise > WIGGLE_FLOOR * self.scale
        self.streak = self.streak + 1 if high else 0
        if self.streak < PERSIST:
            return None
        return {"kind": "wiggle", "step": at_step, "noise": noise, "level": level, "ratio": ratio,
                "message": f"{HINT} (its step-to-step noise {noise:.3g} is {ratio:.2f}× its level {level:.3g} "
                           f"over the last {WINDOW} logs, for {PERSIST} logs in a row, up to step {at_step})."}

    # -- checkpoints: a resumed run keeps its reference loss and what already fired ----------------------
    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "history": list(self.history), "streak": self.streak,
                "alarms": [dict(a) for a in self.alarms]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = state.get("scale")
        self.history = deque(state.get("history", []), maxlen=WINDOW)
        self.streak = int(state.get("streak", 0))
        self.alarms = [dict(a) for a in state.get("alarms", [])]


# statistics.median / pstdev are exact but ~10× slower; these run on every logged step of every run.
def _median(values: "deque[float] | list[float]") -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _pstdev(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
