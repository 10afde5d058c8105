"""The global random state that data loading and augmentation draw from (torch's CPU generator, numpy's and
Python's global ones): captured, restored, or kept unchanged around code that only reads the data.

Accelerator generators are left alone: reading their state starts a CUDA context on every device.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch


@dataclass(frozen=True)
class RngState:
    torch_cpu: torch.Tensor
    numpy: Any
    python: Any


def capture() -> RngState:
    return RngState(torch.get_rng_state(), np.random.get_state(), random.getstate())


def restore(state: RngState) -> None:
    torch.set_rng_state(state.torch_cpu)
    np.random.set_state(state.numpy)
    random.setstate(state.python)


@contextmanager
def preserved() -> Iterator[None]:
    """Whatever the body draws (a dataset that augments as it is read), the global state afterwards is as before."""
    state = capture()
    try:
        yield
    finally:
        restore(state)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``preserved``, with the body drawing from generators seeded with ``seed``: the same draws whoever calls it."""
    with preserved():
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        yield
