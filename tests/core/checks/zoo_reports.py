"""More of the zoo (issue 10): data and models modelled on public reports, each a bug beside its fix or a correct
design that a check used to flag. Each docstring cites the report it is modelled on.

Data factories are used as ``data = { factory = "zoo_reports:…" }``; models through ``skeleton_zoo:make``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset, random_split

from recipe_tui.core.data import DataInfo, TensorPairs

VOCAB = ".abcdefghijklmnopqrstuvwxyz"


def data(factory: str, **kwargs: Any) -> dict:
    """A ``data`` table using a factory of this module."""
    return {"factory": f"zoo_reports:{factory}", "kwargs": kwargs}


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from recipe_tui.core.data.digits import digits_arrays
    pixels, labels = digits_arrays()
    return torch.from_numpy(pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8), torch.from_numpy(labels)


def _fixed_split(n: int, val_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


# ------------------------------------------------------------------------------------------ class 2: data loading and the RNG


def random_split_digits(val_fraction: float = 0.2) -> dict:
    """Correct code: ``torch.utils.data.random_split`` without a generator draws the split from torch's global RNG,
    so the split is fixed by the global seed when the data is loaded right after seeding (pytorch/pytorch#30364
    "random_split is not fixed by seed": it is, if nothing draws from the RNG in between; #32467 added the
    generator argument). A check that loads the data at another point of the RNG stream sees another split."""
    x, y = _digits()
    full = TensorDataset(x, y)
    n_val = int(round(len(full) * val_fraction))
    train, val = random_split(full, [len(full) - n_val, n_val])
    return {"train": train, "val": val}


def unseeded_split_digits(val_fraction: float = 0.2) -> dict:
    """The bug: the split comes from ``np.random.default_rng()`` without a seed (fresh OS entropy), so every run
    trains on a different split whatever ``train.seed`` says (e.g. BenchPOTS#21, sklearn's train_test_split
    without random_state: "This leads to new splits whenever a dataset preprocessing is done")."""
    x, y = _digits()
    perm = torch.from_numpy(np.random.default_rng().permutation(len(x)))
    n_val = int(round(len(x) * val_fraction))
    full = TensorDataset(x, y)
    return {"train": Subset(full, perm[n_val:].tolist()), "val": Subset(full, perm[:n_val].tolist())}


class NoisyDigits(Dataset):
    """Augments every sample as it is read, drawing from torch's global RNG — as torchvision's random transforms do
    since 0.8 (pytorch/vision#2520; pytorch/pytorch#42331 "The random seed for torchvision transforms is not fixed")."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, scale: float = 0.1) -> None:
        self.x, self.y, self.scale = x, y, scale

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + self.scale * torch.randn(self.x[i].shape), self.y[i]


def augmenting_digits() -> dict:
    """Training data that augments with torch's RNG on every read (the first one included); clean validation."""
    x, y = _digits()
    tr, va = _fixed_split(len(x))
    return {"train": NoisyDigits(x[tr], y[tr]), "val": TensorPairs(x[va], y[va])}


# ------------------------------------------------------------------------------------------ classes 5–7: data the audit judges


def standardized_digits(val_std_factor: float = 1.0) -> dict:
    """Standardised digits. ``val_std_factor`` ≠ 1 is the bug of momask-codes#109 (the std used for the validation
    split is changed a second time, so validation is standardised with other statistics than train): with 2.5 the
    validation mean stays near 0 (a shift well under 0.5 train std) but its std is 0.4 × train's."""
    x, y = _digits()
    tr, va = _fixed_split(len(x))
    mean, std = x[tr].mean(), x[tr].std()
    return {"train": TensorPairs((x[tr] - mean) / std, y[tr]),
            "val": TensorPairs((x[va] - mean) / (std * val_std_factor), y[va])}


def padded_names(pad_id: int = 0, n: int = 600, length: int = 16) -> dict:
    """First names padded to ``length``; targets at padding positions are −1 (ignored). ``pad_id = 27`` (the
    vocabulary size) is the bug of lucidrains/audiolm-pytorch#18 ("pad_id not in nn.Embedding vocab") and of
    huggingface/transformers#1062 (a pad token added without resizing the embeddings): the id sits only where the
    target is ignored, yet nn.Embedding looks it up and raises "index out of range". ``pad_id = 0`` is the fix."""
    from recipe_tui.core.data.names import FILE, encode_names
    x, y = encode_names(FILE.read_text().split()[:n], length)
    x = torch.where(y == -1, torch.full_like(x, pad_id), x)
    info = DataInfo(kind="sequence", input_shape=(length,), num_classes=len(VOCAB), class_names=tuple(VOCAB),
                    vocab=VOCAB, ignore_index=-1)
    cut = n * 4 // 5
    return {"train": TensorPairs(x[:cut], y[:cut]), "val": TensorPairs(x[cut:], y[cut:]), "info": info}


def random_labels(n: int = 600, classes: int = 5, seed: int = 0) -> dict:
    """Labels drawn independently of the inputs: no model can learn them, so a quick model's "label issues" are its
    own noise (cleanlab discussion #592: the model "should certainly be better than a dummy predictor which ...
    always predicts the class that is most common")."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 16, generator=g), torch.randint(0, classes, (n,), generator=g)
    return {"train": TensorPairs(x[: n * 4 // 5], y[: n * 4 // 5]), "val": TensorPairs(x[n * 4 // 5:], y[n * 4 // 5:])}


# ------------------------------------------------------------------------------------------ class 3: zero-initialised gates


class ReZeroMLP(nn.Module):
    """ReZero (Bachlechner et al., arXiv:2003.04887): h ← h + α·F(h) with α initialised to 0, so F's parameters get
    an exactly zero gradient on the first step and train once α has moved (lucidrains/performer-pytorch#28
    reported "use_rezero=True is non-functional" from the same first-step view). ``gate="buffer"`` is the real bug:
    α registered as a buffer never trains, so the residual branches never learn."""

    def __init__(self, gate: str = "parameter", width: int = 32, depth: int = 2):
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
                                    for _ in range(depth))
        if gate == "parameter":
            self.alpha = nn.Parameter(torch.zeros(depth))
        else:
            self.register_buffer("alpha", torch.zeros(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        for i, block in enumerate(self.blocks):
            h = h + self.alpha[i] * block(h)
        return self.head(h)


def zero_init_resnet18(classes: int = 10):
    """torchvision's resnet18(zero_init_residual=True): the last BatchNorm γ of every residual block starts at 0
    ("Accurate, Large Minibatch SGD", Goyal et al., arXiv:1706.02677; torchvision/models/resnet.py), so the
    convolutions inside each block get a zero gradient on the first step."""
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=classes, zero_init_residual=True)


# ------------------------------------------------------------------------------------------ class 4: kernels by dtype


class KernelAttentionGPT(nn.Module):
    """A causal language model whose attention dispatches on dtype, as fused-kernel wrappers do: a fused path for
    the dtypes the kernel supports (here SDPA with the float32 −inf mask of ``generate_square_subsequent_mask``),
    and a fallback for the rest that takes a boolean mask and is handed ``mask.bool()`` — True where the float
    mask is −inf, which SDPA reads as "attend" (the polarity trap of pytorch/pytorch#170400; backends treating one
    mask differently: Ascend/pytorch#88). Trained in float32 it is causal; run in float64 it sees the future.
    ``fused=()`` sends float32 through the fallback too: then the model really is non-causal."""

    def __init__(self, fused: tuple[str, ...] = ("float16", "bfloat16", "float32"), width: int = 32, block: int = 16):
        super().__init__()
        self.fused = {getattr(torch, name) for name in fused}
        self.tok, self.pos = nn.Embedding(len(VOCAB), width), nn.Embedding(block, width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.head = nn.Linear(width, len(VOCAB))

    def attend(self, h: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        q, k, v = (z.view(b, t, 2, c // 2).transpose(1, 2) for z in self.qkv(h).split(c, dim=2))
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=h.device)  # float32: 0 or −inf
        if q.dtype in self.fused:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.bool())
        return self.proj(out.transpose(1, 2).reshape(b, t, c))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        h = h + self.attend(h)
        return self.head(h + self.mlp(h))


class KernelNormMLP(nn.Module):
    """The same trap for batch-independence: a normalisation that dispatches on dtype, a fused per-example kernel
    for the dtypes it supports and, for the rest, a fallback that normalises over the wrong axis — the batch
    (backends that disagree with the reference, as in Ascend/pytorch#88). In float32, what training runs, the
    examples stay apart. ``fused=()`` sends float32 through the fallback too: then it really mixes the batch."""

    def __init__(self, fused: tuple[str, ...] = ("float16", "bfloat16", "float32"), width: int = 32):
        super().__init__()
        self.fused = {getattr(torch, name) for name in fused}
        self.fc1, self.fc2 = nn.Linear(64, width), nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x.flatten(1))
        if h.dtype in self.fused:
            h = F.layer_norm(h, h.shape[-1:])
        else:
            h = (h - h.mean(0)) / (h.std(0) + 1e-5)
        return self.fc2(F.relu(h))


# ------------------------------------------------------------------------------------------ class 8: slow but correct


class TutorialNet(nn.Module):
    """The CNN of PyTorch's "Training a Classifier" tutorial (two 5×5 convs, three linear layers) with dropout
    between the linear layers: correct, but with p = 0.7 it needs more than 500 steps to memorise 16 examples,
    and its train-mode loss is noisy (PyTorch forum, "Loss of single batch optimization", 2021: with dropout, look
    at the loss in eval mode; and it may need more training time)."""

    def __init__(self, p: float = 0.7, channels: int = 3, side: int = 16, classes: int = 10):
        super().__init__()
        self.conv1, self.conv2, self.pool = nn.Conv2d(channels, 6, 5), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2, 2)
        s = ((side - 4) // 2 - 4) // 2
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * s * s, 120), nn.Linear(120, 84), nn.Linear(84, classes)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv2(self.pool(F.relu(self.conv1(x))))))
        x = self.drop(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc3(self.drop(F.relu(self.fc2(x))))


MODELS = {"rezero": ReZeroMLP, "kernel-gpt": KernelAttentionGPT, "kernel-norm": KernelNormMLP,
          "tutorial-net": TutorialNet}
