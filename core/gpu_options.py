"""How a run uses its device: host→device copies, pinned memory, channels_last, torch.compile and
DistributedDataParallel — the recipe's GPU options (``train.pin_memory``, ``train.channels_last``,
``train.compile``), each a no-op on the CPU so that CPU runs stay exactly what they were.

The CUDA paths here were written against PyTorch's documented APIs but have not run on a GPU in this
project's test suite (the development machines have none); ``benchmarks/gpu_check.sh`` exercises them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from .config import TrainConfig

if TYPE_CHECKING:
    from .distributed import Group


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass(frozen=True)
class Placement:
    """The options that apply on ``device`` (each False unless the device is a CUDA GPU and the recipe asks)."""

    device: torch.device
    pin_memory: bool = False  # page-locked host batches, copied with non_blocking=True
    channels_last: bool = False  # NHWC memory format for convnets: tensor cores' preferred layout
    compile: bool = False  # torch.compile the training module

    @classmethod
    def for_run(cls, model: nn.Module, device: torch.device, cfg: TrainConfig) -> "Placement":
        cuda = device.type == "cuda"
        return cls(device, pin_memory=cuda and cfg.pin_memory, channels_last=cuda and cfg.channels_last and has_conv2d(model),
                   compile=cuda and cfg.compile)

    def model(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def wrap(self, model: nn.Module, group: "Group") -> nn.Module:
        """What the training step calls: DDP over the group's ranks (it averages gradients during backward and
        starts from rank 0's weights), then torch.compile when asked."""
        net = model
        if group.distributed:
            from torch.nn.parallel import DistributedDataParallel
            net = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(net) if self.compile else net

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A host batch on the device; pinned first so the copy is asynchronous (as nanoGPT does)."""
        if self.device.type == "cpu":
            return x, y
        if self.pin_memory and not x.is_pinned():
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4 and x.is_floating_point():
            return x.contiguous(memory_format=torch.channels_last)
        return x


def ignored_options(cfg: TrainConfig, device: torch.device) -> list[str]:
    """Log lines for options the recipe turned on that do nothing on this device."""
    if device.type == "cuda" or not cfg.compile:
        return []
    return [f"train.compile is for CUDA GPUs: ignored on {device.type}."]
