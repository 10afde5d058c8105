"""Leave it training (``train.steps = 0``): the run goes on until it is stopped.

The recipe: "leave it training … long after validation loss seems to level off". So an open-ended run keeps, beside
its last checkpoint, the checkpoint of its lowest validation loss (``best.pt``, rewritten at each new best), and says
once in the log when validation loss has levelled off — no new best by more than ``LEVEL_GAIN`` for
``LEVEL_EVALS`` evaluations — and that training goes on. Its state travels in the checkpoint, so a resumed run
neither forgets its best nor overwrites ``best.pt`` with a worse one.
"""
from __future__ import annotations

import math
from typing import Any

from .events import Eval, LogLine

BEST = "best.pt"
LEVEL_EVALS = 5  # evaluations without a real improvement before validation loss counts as levelled off
LEVEL_GAIN = 0.01  # a real improvement: 1 % below the best so far


class OpenEnded:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.best = math.inf
        self.best_step = -1
        self.level = math.inf  # the best loss that counted as a real improvement
        self.flat = 0  # evaluations since that one
        self.said = False  # the levelled-off line was logged for this plateau

    def observe(self, ev: Eval) -> tuple[bool, str]:
        """(is this evaluation the best so far — write ``best.pt``, a line for the log or "")."""
        if not self.enabled or not math.isfinite(ev.loss):
            return False, ""
        better = ev.loss < self.best
        if better:
            self.best, self.best_step = ev.loss, ev.step
        if ev.loss < self.level * (1 - LEVEL_GAIN):
            self.level, self.flat, self.said = ev.loss, 0, False
            return better, ""
        self.flat += 1
        if self.flat < LEVEL_EVALS or self.said:
            return better, ""
        self.said = True
        return better, (f"validation loss has levelled off at step {ev.step:,}: no evaluation in the last {self.flat} "
                        f"more than {LEVEL_GAIN:.0%} below {self.level:.4g} (best {self.best:.4g} at step "
                        f"{self.best_step:,}, kept in {BEST}); training goes on (train.steps = 0): the recipe says "
                        "leave it training — s stops it")

    def after_eval(self, trainer: Any, ev: Eval) -> None:
        """The trainer's hook: ``best.pt`` at each new best validation loss, the levelled-off line once a plateau."""
        best, note = self.observe(ev)
        if best:
            trainer.checkpoint(best=True)
        if note:
            trainer.emit(LogLine(note, level="info"))

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "level": self.level, "flat": self.flat,
                "said": self.said}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", math.inf))
        self.best_step = int(state.get("best_step", -1))
        self.level = float(state.get("level", math.inf))
        self.flat = int(state.get("flat", 0))
        self.said = bool(state.get("said", False))
