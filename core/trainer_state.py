"""The trainer's checkpoint: what it holds and how a run continues from one, bit-exact (under torchrun too)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from .distributed import Group, rank_seed
from .events import Checkpoint, LogLine
from .open_ended import BEST
from .train_setup import seed_everything

if TYPE_CHECKING:
    from .events import Emit
    from .open_ended import OpenEnded
    from .stopping import EarlyStop
    from .wiggle import WiggleWatch


class CheckpointState:
    """Mixed into ``Trainer`` (which sets these attributes)."""

    step: int
    evaluated_step: int
    saved_step: int | None
    threads: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    wiggle: "WiggleWatch"
    early: "EarlyStop"
    forever: "OpenEnded"
    group: Group
    device: torch.device
    cfg: Any
    save: Callable[..., Any] | None
    emit: "Emit"

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint. Under torchrun every rank calls it (it gathers each rank's RNG state); the model and
        optimizer are rank 0's, which DDP keeps identical on every rank."""
        state = {"step": self.step, "evaluated_step": self.evaluated_step,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "wiggle": self.wiggle.state_dict(), "early_stop": self.early.state_dict(),
                 "threads": self.threads, "open_ended": self.forever.state_dict()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.group.distributed:
            state["rank_rng"] = self.group.gather(self._rank_rng())
        return state

    def _rank_rng(self) -> list[torch.Tensor]:
        states = [torch.get_rng_state()]
        if self.device.type == "cuda":
            states.append(torch.cuda.get_rng_state(self.device))
        return states

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint. Under torchrun only rank 0 reads it (``state`` is None elsewhere) and
        sends it to the others, so a resume works without a shared filesystem."""
        if self.group.distributed:
            state = self.group.broadcast(state)
        assert state is not None
        self.step = self.saved_step = int(state["step"])
        self.evaluated_step = int(state.get("evaluated_step", -1))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.wiggle.load_state_dict(state.get("wiggle", {}))
        self.early.load_state_dict(state.get("early_stop", {}))
        self.threads = int(state.get("threads", 0))
        self.forever.load_state_dict(state.get("open_ended", {}))
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        if self.group.distributed:
            self._load_rank_rng(state.get("rank_rng"))

    def _load_rank_rng(self, saved: list[list[torch.Tensor]] | None) -> None:
        """Each rank's own RNG when the checkpoint has one per rank of this group (same N: bit-exact); with another
        N, rank 0 continues the saved stream and the others start fresh streams of their own."""
        if saved is not None and len(saved) == self.group.world_size:
            mine = saved[self.group.rank]
            torch.set_rng_state(mine[0].cpu())
            if len(mine) > 1 and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine[1].cpu(), self.device)
        elif self.group.rank > 0:
            seed_everything(rank_seed(self.cfg.seed + self.step, self.group.rank))

    def checkpoint(self, best: bool = False) -> None:
        """The last checkpoint; ``best``: the open-ended run's best so far (``best.pt``, not what a resume reads)."""
        if self.save is None and not self.group.distributed:
            return
        state = self.state_dict()  # under torchrun every rank takes part in gathering it; rank 0 saves it
        if self.save is None:
            return
        try:
            path = self.save(state, BEST) if best else self.save(state)
        except OSError as exc:  # disk full, read-only: say so and train on; the previous checkpoint is intact
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            self.emit(LogLine(f"checkpoint at step {self.step} not written: {exc.strerror or exc}; the previous "
                              f"checkpoint ({kept}) is intact", level="warning"))
            return
        if best:
            return  # not the checkpoint a resume reads: no Checkpoint event (summary.json has the best step)
        self.saved_step = self.step
        self.emit(Checkpoint(step=self.step, path=str(path)))
