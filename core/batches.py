"""Training batches in a deterministic order, for the trainer and the checks that must see what it sees."""
from __future__ import annotations

import signal
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from .data import TensorPairs
from .distributed import rank_seed, shard
from .gpu_options import Placement

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchStream:
    """Training batches in a deterministic order: epoch e is ``randperm(n)`` seeded with seed + e.

    Step s always gets the same batch, so a resumed run sees exactly the data of an uninterrupted one.
    In-memory ``TensorPairs`` are indexed a whole batch at a time; other datasets go through a DataLoader.
    With ``world_size`` ranks, step s's batch is still that global batch, and rank r gets its ``shard``.
    """

    def __init__(self, ds: Dataset, batch_size: int, seed: int, device: torch.device, num_workers: int = 0,
                 rank: int = 0, world_size: int = 1, place: Placement | None = None):
        self.ds, self.seed, self.device, self.num_workers = ds, seed, device, num_workers
        self.rank, self.world_size = rank, world_size
        self.place = place or Placement(device)
        self.batch_size = min(batch_size, len(ds))
        self.per_epoch = len(ds) // self.batch_size  # drop_last: no BatchNorm batch of one

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.ds), generator=torch.Generator().manual_seed(self.seed + epoch))

    def batches(self, start_step: int = 0) -> Iterator[Batch]:
        if isinstance(self.ds, TensorPairs) and self.world_size == 1 and self.device.type == "cpu":
            return self._in_memory(start_step)
        return self._general(start_step)

    def _in_memory(self, step: int) -> Iterator[Batch]:
        """The common case on one CPU process, with nothing per batch but the two index operations: this runs
        every training step, and the trainer is held to within 2 % of a hand-written loop (benchmarks/parity.py)."""
        x, y, size = self.ds.x, self.ds.y, self.batch_size
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            perm = self.order(epoch)
            for i in range(pos, self.per_epoch):
                idx = perm[i * size:(i + 1) * size]
                yield x[idx], y[idx]
            step += self.per_epoch - pos

    def _general(self, step: int) -> Iterator[Batch]:
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            perm = self.order(epoch)
            index_batches = [shard(perm[i * self.batch_size:(i + 1) * self.batch_size], self.rank, self.world_size)
                             for i in range(pos, self.per_epoch)]
            if isinstance(self.ds, TensorPairs):
                for idx in index_batches:
                    yield self.place.batch(self.ds.x[idx], self.ds.y[idx])
            else:
                # Its own generator: a DataLoader without one draws its worker seed from the global RNG, and a
                # resumed run would then see different dropout masks than an uninterrupted one.
                loader = DataLoader(self.ds, batch_sampler=[b.tolist() for b in index_batches],
                                    num_workers=self.num_workers, pin_memory=self.place.pin_memory,
                                    worker_init_fn=_ignore_stop_signals if self.num_workers else None,
                                    generator=torch.Generator().manual_seed(rank_seed(self.seed + epoch, self.rank)))
                for xb, yb in loader:
                    yield self.place.batch(xb, yb)
            step += len(index_batches)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave stopping to the training process: a ctrl+c or a torchrun SIGTERM sent to the whole
    process group would otherwise end them under a batch the trainer still fetches before it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
