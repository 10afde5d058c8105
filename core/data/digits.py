"""The UCI optical handwritten digits (1,797 8×8 images), shipped with the package."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..config import Experiment
from . import DataInfo, Splits, split_tensors

FILE = Path(__file__).resolve().parent / "files" / "digits.csv.gz"


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (1797, 64) with values 0..16, y int64 (1797,))."""
    with gzip.open(FILE, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    return table[:, :-1].astype(np.uint8), table[:, -1]


def load_digits(exp: Experiment) -> Splits:
    pixels, labels = digits_arrays()
    x = torch.from_numpy(pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(labels)
    train, val, test = split_tensors(x, y, exp)
    info = DataInfo(kind="image", input_shape=(1, 8, 8), num_classes=10, class_names=tuple(str(i) for i in range(10)))
    return Splits(train=train, val=val, test=test, info=info)
