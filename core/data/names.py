"""First names of the 1990 US Census, for next-character prediction (makemore-style)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Experiment
from . import DataInfo, Splits, split_tensors

FILE = Path(__file__).resolve().parent / "files" / "names.txt"
VOCAB = ".abcdefghijklmnopqrstuvwxyz"  # '.' (id 0) starts and ends every name
IGNORE = -1  # target of padding positions (cross_entropy ignore_index)


def encode_names(names: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x[t] is a token, y[t] = x[t+1]; positions past the closing '.' have target IGNORE."""
    stoi = {c: i for i, c in enumerate(VOCAB)}
    x = torch.zeros(len(names), seq_len, dtype=torch.int64)
    y = torch.full((len(names), seq_len), IGNORE, dtype=torch.int64)
    for row, name in enumerate(names):
        ids = [0] + [stoi[c] for c in name[: seq_len - 1]] + [0]
        n = len(ids) - 1
        x[row, :n] = torch.tensor(ids[:-1])
        y[row, :n] = torch.tensor(ids[1:])
    return x, y


def decode(ids: torch.Tensor | list[int]) -> str:
    return "".join(VOCAB[i] if 0 <= i < len(VOCAB) else "·" for i in list(ids))


def load_names(exp: Experiment) -> Splits:
    names = FILE.read_text().split()
    x, y = encode_names(names, exp.data.seq_len)
    train, val, test = split_tensors(x, y, exp)
    info = DataInfo(kind="sequence", input_shape=(exp.data.seq_len,), num_classes=len(VOCAB),
                    class_names=tuple(VOCAB), vocab=VOCAB, ignore_index=IGNORE)
    return Splits(train=train, val=val, test=test, info=info)
