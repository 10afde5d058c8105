"""Early stopping on validation loss (``train.early_stop`` evaluations of patience; 0 = off)."""
from __future__ import annotations

import math
from typing import Any

from .events import Eval


class EarlyStop:
    def __init__(self, patience: int, delta: float = 0.0) -> None:
        self.patience, self.delta = patience, delta
        self.best = math.inf
        self.best_step = -1
        self.bad = 0  # evaluations since the best one
        self.stopped_at = -1

    def update(self, ev: Eval) -> bool:
        """Record a validation result; True when training should stop here."""
        if not self.patience:
            return False
        if math.isfinite(ev.loss) and ev.loss < self.best - self.delta:
            self.best, self.best_step, self.bad = ev.loss, ev.step, 0
            return False
        self.bad += 1
        if self.bad >= self.patience:
            self.stopped_at = ev.step
            return True
        return False

    def message(self) -> str:
        return (f"early stop at step {self.stopped_at:,}: validation loss has not improved for {self.bad} "
                f"evaluations (best {self.best:.4g} at step {self.best_step:,}; train.early_stop = {self.patience})")

    def summary(self) -> dict[str, Any]:
        return {"step": self.stopped_at, "best_step": self.best_step, "best_val_loss": self.best,
                "patience": self.patience}

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "bad": self.bad, "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", math.inf))
        self.best_step = int(state.get("best_step", -1))
        self.bad = int(state.get("bad", 0))
        self.stopped_at = int(state.get("stopped_at", -1))
