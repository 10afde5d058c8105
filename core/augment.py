"""Data augmentation presets (``data.augmentation``) on the training split, built from torchvision's transforms v2.

- ``shift-rotate``: small shifts (a tenth of the side) and rotations (±10°) — handwriting, one-channel images;
- ``crop-flip-colour``: a random crop of the padded image, a horizontal flip and colour jitter — natural images;
- ``token-dropout``: each real input token replaced by a random one with probability ``data.token_dropout`` —
  token sequences, where image transforms mean nothing.

torchvision sources and image folders get the preset inside their PIL pipeline (before ToTensor and the
normalisation, so colour jitter sees real colours); any other data (the built-in digits, factories) is wrapped in
``Augmented``, which transforms each sample as it is read. Colour jitter needs values in [0, 1]: on other inputs it
is left out (``notes`` says so). Every random draw comes from torch's global generator, which the run seeds and its
checkpoint restores, so an augmented run is reproducible and resumes exactly.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.utils.data import Dataset

from .config import ConfigError, Experiment, where

if TYPE_CHECKING:
    from .data import DataInfo, Splits

PIPELINE_SOURCES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "imagefolder")  # augmented in their pipeline
IMAGE_PRESETS = ("shift-rotate", "crop-flip-colour")


def preset_for(info: "DataInfo") -> str | None:
    """The preset suited to the data, or None (tabular data has no safe default)."""
    if info.kind == "image":
        return "crop-flip-colour" if info.input_shape and info.input_shape[0] == 3 else "shift-rotate"
    if info.kind == "sequence":
        return "token-dropout"
    return None


def image_ops(preset: str, size: int | None, colour: bool = True) -> list[Any]:
    """The v2 transforms of an image preset (they take PIL images and tensors alike)."""
    from torchvision.transforms import v2

    if preset == "shift-rotate":
        return [v2.RandomAffine(degrees=10, translate=(0.1, 0.1))]
    crop = (v2.RandomCrop(size, padding=max(1, size // 8), padding_mode="reflect") if size
            else v2.RandomAffine(degrees=0, translate=(0.125, 0.125)))  # sizes vary: a shift is the crop
    return [crop, v2.RandomHorizontalFlip(), *([v2.ColorJitter(0.2, 0.2, 0.2)] if colour else [])]


def augmented(splits: "Splits", exp: Experiment) -> "Splits":
    """``splits`` with the training split wrapped in the preset (sources with a pipeline of their own are augmented
    there: returned as they are). A preset that does not fit the data is a ``ConfigError``."""
    import dataclasses

    preset, info = exp.data.augmentation, splits.info
    fits = info.kind == "sequence" if preset == "token-dropout" else info.kind == "image"
    if not fits:
        raise ConfigError(f"{where(exp, 'data', 'augmentation')}'{preset}' does not fit {info.kind} data "
                          f"(use {preset_for(info) or 'none'!r}).")
    if exp.data.factory is None and (exp.data.source in PIPELINE_SOURCES or exp.data.path):
        return splits
    if preset == "token-dropout":
        fn = token_dropout(exp.data.token_dropout, info.num_classes or 1, info.ignore_index)
    else:
        fn = image_fn(preset, info, unit_range(splits.train))
    return dataclasses.replace(splits, train=Augmented(splits.train, fn))


def notes(exp: Experiment, splits: "Splits") -> list[str]:
    """What the preset leaves out on this data (for the ladder's table)."""
    if exp.data.augmentation == "crop-flip-colour" and exp.data.factory is None \
            and (exp.data.source in PIPELINE_SOURCES or exp.data.path):
        return []
    if exp.data.augmentation == "crop-flip-colour" and not unit_range(splits.train):
        return ["colour jitter left out: the inputs are not in [0, 1]"]
    return []


def unit_range(ds: Dataset, samples: int = 16) -> bool:
    """Are the first inputs within [0, 1] (what colour jitter assumes)?"""
    from .data import head

    x, _ = head(ds, samples)
    return bool(x.is_floating_point() and x.min() >= 0 and x.max() <= 1)


def image_fn(preset: str, info: "DataInfo", colour: bool) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    from torchvision.transforms import v2

    side = info.input_shape[-1] if len(info.input_shape) == 3 and info.input_shape[-1] == info.input_shape[-2] else None
    transform = v2.Compose(image_ops(preset, side, colour))
    return lambda x, y: (transform(x), y)


def token_dropout(p: float, vocab: int, ignore: int) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    """Replace each real token (its target is not padding) with a random token, with probability ``p``."""
    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        real = (y != ignore) if y.shape == x.shape else torch.ones_like(x, dtype=torch.bool)
        hit = (torch.rand(x.shape) < p) & real
        return torch.where(hit, torch.randint(0, vocab, x.shape, dtype=x.dtype), x), y
    return fn


class Augmented(Dataset):
    """A training split whose samples are transformed as they are read (``fn(x, y) -> (x, y)``)."""

    def __init__(self, base: Dataset, fn: Callable[[torch.Tensor, torch.Tensor], tuple]) -> None:
        self.base, self.fn = base, fn

    def __len__(self) -> int:
        return len(self.base)

    @property
    def targets(self) -> torch.Tensor | None:
        """The labels, read without the inputs where the base allows (augmentation leaves labels alone)."""
        from .data import targets_of
        return targets_of(self.base)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.base[i]
        return self.fn(torch.as_tensor(x), torch.as_tensor(y))

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, Any]]:
        """A whole batch at once (the DataLoader asks so): in-memory tensors are indexed in one go."""
        from .data import TensorPairs

        if isinstance(self.base, TensorPairs):
            idx = torch.as_tensor(indices)
            return [self.fn(x, y) for x, y in zip(self.base.x[idx], self.base.y[idx])]
        return [self[i] for i in indices]
