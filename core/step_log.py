"""The trainer's log steps: the ``Step`` events, the wiggle alarm, and a non-finite loss noticed at once.

A log step only notes its numbers (the interval's detached losses, lr, gradient norm, rate); the events are
made and emitted together, at most every ``FLUSH_S`` and before anything else the trainer emits (an
evaluation, a checkpoint, a pause, the end). Measured on a tiny model (digits-mlp, ~0.45 ms a step), making
the Step and feeding the wiggle alarm at every log step cost ~40 µs each time: the code runs cold between
training steps and evicts theirs. Done in batches it runs warm, and the training steps in between keep theirs.
Nothing is lost or reordered; the events come at most ``FLUSH_S`` later. Under torchrun the interval's loss
is averaged over ranks, a collective every rank must reach at the same step: there each log step flushes.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .distributed import Group
from .events import Emit, Step
from .wiggle import WiggleWatch

FLUSH_S = 0.2  # the UI drains its queue 5 times a second: events this much later are hardly later on screen


class _Noted(NamedTuple):
    step: int
    previous: int  # the step of the log before (a failure says "between steps previous+1 and step")
    losses: list[torch.Tensor]
    lr: float
    grad_norm: torch.Tensor | None
    rate: float


class StepLog:
    def __init__(self, emit: Emit, wiggle: WiggleWatch, group: Group) -> None:
        self.emit, self.wiggle, self.group = emit, wiggle, group
        self.last: dict[str, float | None] = {"loss": None, "lr": None, "grad_norm": None}  # grad norm: the last read
        self._noted: list[_Noted] = []
        self._flush_at = 0.0  # the first log step is emitted at once (the loss at init)

    def note(self, step: int, previous: int, losses: list[torch.Tensor], lr: float, grad_norm: torch.Tensor | None,
             rate: float, now: float) -> tuple[float, int] | None:
        """A log step; returns (the non-finite loss, the step of the last good log) when the run must fail."""
        self._noted.append(_Noted(step, previous, losses, lr, grad_norm, rate))
        if self.group.distributed or now >= self._flush_at or not math.isfinite(losses[-1].item()):
            self._flush_at = now + FLUSH_S
            return self.flush()
        return None

    def flush(self) -> tuple[float, int] | None:
        """Emit what was noted, in order; stops at a non-finite loss (the last noted: ``note`` checks each)."""
        noted, self._noted = self._noted, []
        for n in noted:
            values = self._values(n.losses)
            if not math.isfinite(values[-1]):
                return values[-1], n.previous
            self._emit(n, values)
        return None

    def _values(self, losses: list[torch.Tensor]) -> list[float]:
        """The losses of the steps since the last log, as floats (the log step's last): one transfer on an
        accelerator, plain reads on the CPU (cheaper there). Under DDP each is the global batch's loss: the mean over
        ranks of each rank's weighted shard loss (one collective, on log steps only)."""
        if self.group.distributed:
            return self.group.mean(torch.stack(losses).float()).tolist()
        if len(losses) == 1 or losses[0].device.type == "cpu":
            return [t.item() for t in losses]
        return torch.stack(losses).tolist()

    def _emit(self, n: _Noted, values: list[float]) -> None:
        grad_norm = None if n.grad_norm is None else float(n.grad_norm)
        self.last = {"loss": values[-1], "lr": n.lr, "grad_norm": self.last["grad_norm"] if grad_norm is None else grad_norm}
        finite = [v for v in values if math.isfinite(v)]
        event = Step(step=n.step, loss=values[-1], lr=n.lr, grad_norm=grad_norm, steps_per_s=n.rate,
                     loss_max=max(finite) if finite else None)
        self.emit(event)
        alarm = self.wiggle.observe(event)
        if alarm is not None:
            self.emit(alarm)
