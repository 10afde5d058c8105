"""Datasets: built-in offline ones, torchvision by name, image folders and user factories.

``load_data(exp)`` returns ``Splits``: train / val (/ test) datasets yielding ``(x, y)`` and a
``DataInfo`` describing them. Splits are deterministic (``data.split_seed``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ConfigError, Experiment, where

if TYPE_CHECKING:
    from .rng import RngState

@dataclass(frozen=True)
class DataInfo:
    kind: str  # image | sequence | tabular
    input_shape: tuple[int, ...]
    num_classes: int | None = None  # classes; for language models the vocabulary size
    class_names: tuple[str, ...] = ()
    vocab: str | None = None  # sequences: character of each token id
    ignore_index: int = -1  # sequence targets: padding positions


@dataclass(frozen=True)
class Splits:
    train: Dataset
    val: Dataset
    info: DataInfo
    test: Dataset | None = None
    # The global RNG state right after loading (``load_seeded``): checks build their models from here, as a
    # training run does after "seed, then load the data". None when the splits were made some other way.
    after_load: "RngState | None" = field(default=None, compare=False, repr=False)

    def items(self) -> list[tuple[str, Dataset]]:
        out = [("train", self.train), ("val", self.val)]
        return out + ([("test", self.test)] if self.test is not None else [])


class TensorPairs(Dataset):
    """In-memory (x, y) tensors. The trainer indexes whole batches at once (no per-sample calls)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        assert len(x) == len(y)
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def random_split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[torch.Tensor]:
    """Shuffle 0..n-1 with ``seed``; cut off ``fractions`` (val, test …); the rest first (train)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(n * f)) for f in fractions]
    out, end = [], n
    for size in sizes:
        out.append(perm[end - size:end])
        end -= size
    return [perm[:end]] + out


def split_tensors(x: torch.Tensor, y: torch.Tensor, exp: Experiment) -> tuple[TensorPairs, TensorPairs, TensorPairs | None]:
    d = exp.data
    parts = random_split_indices(len(x), (d.val_fraction, d.test_fraction), d.split_seed)
    train, val, test = (TensorPairs(x[i], y[i]) for i in parts)
    return train, val, (test if len(test) else None)


def load_seeded(exp: Experiment) -> Splits:
    """The data loaded as a training run loads it, right after seeding (loading may draw from the global RNG:
    ``random_split`` without a generator, a dataset augmenting on first read), with the RNG state after it."""
    from ..trainer import seed_everything
    from .rng import capture
    seed_everything(exp.train.seed)
    splits = load_data(exp)
    return dataclasses.replace(splits, after_load=capture())


def load_data(exp: Experiment) -> Splits:
    d = exp.data
    if d.factory:
        from .factory_data import load_factory
        splits = load_factory(exp)
    elif d.source == "digits":
        from .digits import load_digits
        splits = load_digits(exp)
    elif d.source == "names":
        from .names import load_names
        splits = load_names(exp)
    elif d.source == "imagefolder" or (d.source is None and d.path):
        from .vision import load_imagefolder
        splits = load_imagefolder(exp)
    else:
        from .vision import TORCHVISION_SOURCES, load_torchvision
        if d.source not in TORCHVISION_SOURCES:
            import difflib
            options = ["digits", "names", "imagefolder", *TORCHVISION_SOURCES]
            close = difflib.get_close_matches(d.source or "", options, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (one of {', '.join(options)})."
            raise ConfigError(f"{where(exp, 'data', 'source')}unknown data source '{d.source}'{hint}")
        splits = load_torchvision(exp)
    if d.limit is not None and d.limit < len(splits.train):
        from torch.utils.data import Subset
        train = splits.train
        if isinstance(train, TensorPairs):
            train = TensorPairs(train.x[: d.limit], train.y[: d.limit])
        else:
            train = Subset(train, range(d.limit))
        splits = Splits(train=train, val=splits.val, test=splits.test, info=splits.info)
    require_training_samples(splits.train, exp)
    if d.augmentation != "none":
        from ..augment import augmented
        splits = augmented(splits, exp)
    return splits


def require_training_samples(train: Dataset, exp: Experiment) -> None:
    """An empty train split is bad input (one sentence, exit 2), not an IndexError deep in the first batch."""
    if len(train) == 0:
        what = f"'{exp.data.factory}' returned" if exp.data.factory else f"data source '{exp.data.source}' gave"
        raise ConfigError(f"{where(exp, 'data')}the train split is empty: {what} 0 training samples; "
                          "nothing can be checked or trained.")


def iter_batches(ds: Dataset, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """All of ``ds`` in order, in batches. Draws nothing from the global RNG (a DataLoader without its own
    generator would, and training, which uses that RNG, would stop being reproducible); neither does a dataset
    that augments as it is read: reading labels or a probe batch must not change what training draws next."""
    if isinstance(ds, TensorPairs):
        for i in range(0, len(ds), batch_size):
            yield ds.x[i:i + batch_size], ds.y[i:i + batch_size]
        return
    from .rng import preserved
    batches = iter(DataLoader(ds, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(0)))
    while True:
        with preserved():  # around each fetch only: the caller's own draws between batches are its business
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def head(ds: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples (at least one), batched as the trainer would. Samples that raise are left out
    (the data checks list them): one bad record must not stop every check that only needs a batch."""
    n = max(1, min(n, len(ds)))
    if isinstance(ds, TensorPairs):
        return ds.x[:n], ds.y[:n]
    try:
        return next(iter_batches(Subset(ds, range(n)), n))
    except Exception:
        from torch.utils.data import default_collate
        good, _ = readable_samples(ds, range(min(len(ds), 4 * n + 64)), want=n)
        if not good:
            raise
        x, y = default_collate(good)
        return x, y


def readable_samples(ds: Dataset, indices: Iterable[int], want: int | None = None) -> tuple[list, list[int]]:
    """(the samples of ``indices`` that load, the indices that raised), stopping once ``want`` loaded."""
    good, failed = [], []
    for i in indices:
        try:
            good.append(ds[i])
        except Exception:
            failed.append(i)
        if want is not None and len(good) >= want:
            break
    return good, failed


def targets_of(ds: Dataset) -> torch.Tensor | None:
    """All labels of a dataset without loading inputs where the dataset allows it."""
    if isinstance(ds, TensorPairs):
        return ds.y
    for attr in ("targets", "labels"):
        t = getattr(ds, attr, None)
        if t is not None:
            return torch.as_tensor(t)
    inner = getattr(ds, "dataset", None)
    indices = getattr(ds, "indices", None)
    if inner is not None and indices is not None:
        t = targets_of(inner)
        return None if t is None else t[torch.as_tensor(list(indices))]
    return None

