"""Data-parallel training under torchrun: which process this is, its process group, and the few collectives
the trainer needs.

torchrun (``python -m torch.distributed.run``) starts one process per device and tells each its place through
the environment (RANK, LOCAL_RANK, WORLD_SIZE). ``Group`` is that place plus its collectives; a single process
gets ``Group.single()``, whose collectives return their input, so the trainer keeps one code path and a
single-process run is exactly what it was before.

Two process groups: the default one (``gloo`` on CPU; ``cuda:nccl`` for CUDA tensors where CUDA exists) carries
gradients and metrics; a small ``gloo`` group carries control (stop/pause flags, run-dir path, checkpoint
state) on the CPU, so asking "has anyone been told to stop?" never waits for the GPU.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Mapping

import torch

from .config import ConfigError

TIMEOUT_ENV = "RECIPE_TUI_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600  # a collective waiting this long means a rank died or hangs: fail instead of waiting forever
_GOLDEN = 0x9E3779B97F4A7C15  # spreads per-rank seeds far apart (Fibonacci hashing)


@dataclass(frozen=True)
class DistEnv:
    """What torchrun told this process: its global rank, its rank on this machine and how many there are."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "DistEnv":
        env = os.environ if environ is None else environ
        if not under_torchrun(env):
            return cls()
        return cls(int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])), int(env["WORLD_SIZE"]))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def under_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """torchrun (or any launcher following its convention) started this process."""
    env = os.environ if environ is None else environ
    return "RANK" in env and "WORLD_SIZE" in env


def shard(indices: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s part of a global batch: contiguous, sizes differing by at most one; the parts of all
    ranks are disjoint and together are ``indices`` in order."""
    return torch.tensor_split(indices, world_size)[rank]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's own randomness (dropout, augmentation): rank 0 keeps ``seed``, so a run with one
    process draws exactly what a plain run draws; the others get seeds far from it and from each other."""
    return seed if rank == 0 else (seed + rank * _GOLDEN) % 2**63


def timeout_s(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    value = env.get(TIMEOUT_ENV, "")
    if not value:
        return DEFAULT_TIMEOUT_S
    if not value.isdigit() or not 10 <= int(value) <= 7 * 86_400:
        raise ConfigError(f"{TIMEOUT_ENV}={value!r}: expected whole seconds from 10 to 604,800.")
    return int(value)


class Group:
    """This process's place in the run and the collectives the trainer uses (identity in a single process)."""

    def __init__(self, env: DistEnv, ctrl: Any = None) -> None:
        self.env, self._ctrl = env, ctrl
        self._pending: tuple[Any, torch.Tensor] | None = None  # the flags posted last step, still in flight
        self._agreed = (False, False)  # the last answer: what holds while nothing is in flight

    @classmethod
    def single(cls) -> "Group":
        return cls(DistEnv())

    @classmethod
    def start(cls, env: DistEnv) -> "Group":
        """Join torchrun's rendezvous. gloo on CPU; CUDA tensors use nccl where CUDA exists (not run here)."""
        import torch.distributed as dist

        timeout = timedelta(seconds=timeout_s())
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=timeout)
        try:
            ctrl = dist.new_group(backend="gloo", timeout=timeout)
        except BaseException:
            dist.destroy_process_group()
            raise
        return cls(env, ctrl)

    @property
    def distributed(self) -> bool:
        return self._ctrl is not None

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size if self.distributed else 1

    @property
    def is_main(self) -> bool:
        return self.env.rank == 0

    def device(self, name: str) -> torch.device:
        """The device of this rank for ``train.device``: one GPU per process, ``cuda:LOCAL_RANK``."""
        from .trainer import resolve_device

        if not self.distributed:
            return resolve_device(name)
        if name == "mps" or name.startswith("cuda:"):
            raise ConfigError(f"train.device = '{name}' cannot be used by a torchrun group: each process takes "
                              "cuda:LOCAL_RANK (train.device = 'cuda' or 'auto'), or 'cpu'; choose GPUs with "
                              "CUDA_VISIBLE_DEVICES.")
        if name == "cpu" or not torch.cuda.is_available():
            if name == "cuda":
                raise ConfigError("train.device = 'cuda' but this machine has no CUDA device.")
            return torch.device("cpu")
        if self.env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"local rank {self.env.local_rank} has no GPU: this machine has "
                              f"{torch.cuda.device_count()}; start at most that many processes per node.")
        device = torch.device("cuda", self.env.local_rank)
        torch.cuda.set_device(device)
        return device

    # -- collectives (identity in a single process) ---------------------------------------------
    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks, in place, on the tensor's own device (nccl for CUDA, gloo for CPU)."""
        if self.distributed:
            import torch.distributed as dist
            dist.all_reduce(t)
        return t

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        return self.sum(t) / self.world_size if self.distributed else t

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled over the CPU control group)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._ctrl)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self._ctrl)
        return out

    def agree(self, stop: bool, pause: bool) -> tuple[bool, bool]:
        """(stop, pause) for this step, the same on every rank: any rank asked → all act, at the same step.

        The flags posted the previous step are read and this step's are posted without waiting (one step
        late), so the check costs no round trip on the training path; in a single process it is immediate.
        """
        if not self.distributed:
            return stop, pause
        import torch.distributed as dist
        agreed = self._drain()
        flags = torch.tensor([float(stop), float(pause)])
        self._pending = (dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self._ctrl, async_op=True), flags)
        return agreed

    def agree_now(self, stop: bool, pause: bool) -> tuple[bool, bool]:
        """Like ``agree`` but waits for the answer (while paused: no step to hide the round trip behind)."""
        if not self.distributed:
            return stop, pause
        import torch.distributed as dist
        self._drain()
        flags = torch.tensor([float(stop), float(pause)])
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self._ctrl)
        self._agreed = (bool(flags[0]), bool(flags[1]))
        return self._agreed

    def _drain(self) -> tuple[bool, bool]:
        if self._pending is not None:
            work, flags = self._pending
            self._pending = None
            work.wait()
            self._agreed = (bool(flags[0]), bool(flags[1]))
        return self._agreed

    def close(self, drain: bool = True) -> None:
        """Leave the group (every exit path: ``session`` calls it in ``finally``). ``drain=False`` (an abort) does
        not wait for the flags still in flight, which a peer that is gone would only answer at the timeout."""
        if not self.distributed:
            return
        import torch.distributed as dist
        try:
            if drain:
                self._drain()
        except Exception:
            pass  # a peer that died mid-flight: nothing to agree on any more, leave anyway
        self._ctrl = None
        if dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def session(env: DistEnv | None = None) -> Iterator[Group]:
    """The group of this process for the length of a run: joined on entry, destroyed on every exit path."""
    env = DistEnv.from_env() if env is None else env
    if not env.distributed:
        yield Group.single()
        return
    group = Group.start(env)
    try:
        yield group
    except (KeyboardInterrupt, SystemExit):
        group.close(drain=False)
        raise
    finally:
        group.close()  # after an abort: already closed, a no-op
