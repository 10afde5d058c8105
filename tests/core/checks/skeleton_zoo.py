"""Small buggy models, modelled on real published bugs, each beside its fixed version; and data factories.

Used as recipe factories (``model = { factory = "skeleton_zoo:…" }``) by the stage-2 check tests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recipe_tui.core.data import DataInfo, TensorPairs

DIGITS_IN = 64  # digits images are (1, 8, 8)
VOCAB = 27  # names: '.' + a–z


# ------------------------------------------------------------------------------------------ data factories


def images(n: int = 96, channels: int = 3, side: int = 32, classes: int = 10, seed: int = 0) -> dict:
    """Random images whose label is written into the mean of the first channel (learnable, cheap)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.rand(n, channels, side, side, generator=g)
    x[:, 0] += (y.float() / classes).view(-1, 1, 1)
    train, val = TensorPairs(x[: n * 3 // 4], y[: n * 3 // 4]), TensorPairs(x[n * 3 // 4:], y[n * 3 // 4:])
    return {"train": train, "val": val}


def imbalanced(n: int = 600, seed: int = 0) -> dict:
    """Three classes at 90 % / 7 % / 3 %, 16 features carrying the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(n, dtype=torch.long)
    y[int(0.9 * n):int(0.97 * n)] = 1
    y[int(0.97 * n):] = 2
    y = y[torch.randperm(n, generator=g)]
    x = torch.randn(n, 16, generator=g) + F.one_hot(y, 16).float() * 2
    return {"train": TensorPairs(x[: n * 4 // 5], y[: n * 4 // 5]), "val": TensorPairs(x[n * 4 // 5:], y[n * 4 // 5:])}


def regression(n: int = 400, offset: float = 5.0, target_dims: int = 1, seed: int = 0) -> dict:
    """y = x·w + offset + noise; ``target_dims`` = 2 gives y of shape (n, 1) (a column)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, generator=g) + offset + 0.1 * torch.randn(n, generator=g)
    if target_dims == 2:
        y = y.unsqueeze(1)
    return {"train": TensorPairs(x[: n * 3 // 4], y[: n * 3 // 4]), "val": TensorPairs(x[n * 3 // 4:], y[n * 3 // 4:])}


def unshifted_lm(n: int = 200, length: int = 12, seed: int = 0) -> dict:
    """A language-model dataset whose targets are the inputs themselves (forgot the shift by one)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, VOCAB, (n, length), generator=g)
    info = DataInfo(kind="sequence", input_shape=(length,), num_classes=VOCAB, class_names=tuple(".abcdefghijklmnopqrstuvwxyz"),
                    vocab=".abcdefghijklmnopqrstuvwxyz", ignore_index=-1)
    return {"train": TensorPairs(x[:150], x[:150].clone()), "val": TensorPairs(x[150:], x[150:].clone()), "info": info}


# ------------------------------------------------------------------------------------------ image classifiers


class MLP(nn.Module):
    """A plain digits MLP; ``softmax=True`` is the bug of applying softmax before F.cross_entropy
    (cross-entropy applies log-softmax again: the loss cannot go below ln(1 + (C−1)/e))."""

    def __init__(self, softmax: bool = False, in_features: int = DIGITS_IN, classes: int = 10, width: int = 64,
                 final_scale: float = 1.0, sigmoid: bool = False, relu: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU())
        self.head = nn.Linear(width, classes)
        # sigmoid: the multi-label habit carried into softmax CE; relu: an activation left after the last layer
        self.softmax, self.sigmoid, self.relu = softmax, sigmoid, relu
        if final_scale != 1.0:  # an over-confident init: "init well" violated
            with torch.no_grad():
                self.head.weight.mul_(final_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        if self.sigmoid:
            return torch.sigmoid(out)
        if self.relu:
            return F.relu(out)
        return F.softmax(out, dim=1) if self.softmax else out


class MaskedInput(nn.Module):
    """Ignores its input: a mask buffer registered as zeros and never filled (the fix: ones)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.register_buffer("mask", torch.ones(DIGITS_IN) if fixed else torch.zeros(DIGITS_IN))
        self.net = nn.Sequential(nn.Linear(DIGITS_IN, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1) * self.mask)


class AlwaysDropout(nn.Module):
    """F.dropout(x, p, training=True) is applied whatever the mode (the fix passes self.training)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed
        self.fc1, self.fc2 = nn.Linear(DIGITS_IN, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x.flatten(1)))
        h = F.dropout(h, 0.5, training=self.training if self.fixed else True)
        return self.fc2(h)


class HandBatchNorm(nn.Module):
    """A hand-written BatchNorm calling F.batch_norm(..., training=True) in every mode: eval passes use
    batch statistics and overwrite the running ones (the fix passes self.training)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed
        self.fc1, self.fc2 = nn.Linear(DIGITS_IN, 64), nn.Linear(64, 10)
        self.register_buffer("running_mean", torch.zeros(64))
        self.register_buffer("running_var", torch.ones(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x.flatten(1))
        h = F.batch_norm(h, self.running_mean, self.running_var, training=self.training if self.fixed else True)
        return self.fc2(F.relu(h))


class DetachedBranch(nn.Module):
    """Two branches concatenated; the second one's output is .detach()ed on the way (so it never learns)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed
        self.branch_a = nn.Sequential(nn.Linear(DIGITS_IN, 32), nn.ReLU())
        self.branch_b = nn.Sequential(nn.Linear(DIGITS_IN, 32), nn.Tanh())
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        b = self.branch_b(x)
        return self.head(torch.cat([self.branch_a(x), b if self.fixed else b.detach()], dim=1))


class NoisyUnseeded(nn.Module):
    """Input-noise augmentation drawn from a numpy Generator created without a seed (fresh OS entropy on
    every construction): two runs with the same seed differ. The fix draws from torch's seeded RNG."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed
        self.rng = np.random.default_rng()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(DIGITS_IN, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn_like(x) if self.fixed else torch.from_numpy(self.rng.normal(size=x.shape)).to(x.dtype)
            x = x + 0.05 * noise
        return self.net(x)


class ConvHead(nn.Module):
    """A fully convolutional classifier (1×1 conv head, global pooling): no final nn.Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.conv(x))).mean((2, 3))


class RegressionNet(nn.Module):
    """``flat=True`` returns shape (B,) while the targets are (B, 1): MSE then broadcasts to (B, B)."""

    def __init__(self, flat: bool = False):
        super().__init__()
        self.flat = flat
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.flat else out


# ------------------------------------------------------------------------------------------ sequence classifiers


class BiLSTMClassifier(nn.Module):
    """fairseq issue 239: the final states of a bidirectional LSTM, h_n of shape (2, B, H), combined with
    ``torch.cat([h[0], h[1]], dim=0).view(B, 2H)``, which glues the forward state of one example to
    the forward state of the next. The fix concatenates along the feature dimension."""

    def __init__(self, fixed: bool = False, hidden: int = 16):
        super().__init__()
        self.fixed = fixed
        self.lstm = nn.LSTM(8, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(len(x), 8, 8)  # an 8×8 digit as a sequence of 8 rows
        _, (h, _) = self.lstm(rows)
        if self.fixed:
            both = torch.cat([h[0], h[1]], dim=1)
        else:
            both = torch.cat([h[0], h[1]], dim=0).view(len(x), -1)
        return self.head(both)


class ViewNotTranspose(nn.Module):
    """A sequence-first LSTM fed with ``h.view(T, B, E)`` where ``h.transpose(0, 1)`` was meant: the
    reshaped tensor interleaves time steps of different examples."""

    def __init__(self, fixed: bool = False, width: int = 12):
        super().__init__()
        self.fixed = fixed
        self.proj = nn.Linear(8, width)
        self.lstm = nn.LSTM(width, width)  # sequence-first (T, B, E)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x.reshape(len(x), 8, 8))  # (B, T, E)
        b, t, e = h.shape
        seq = h.transpose(0, 1) if self.fixed else h.view(t, b, e)
        out, _ = self.lstm(seq)
        return self.head(out[-1])


# ------------------------------------------------------------------------------------------ language models


class CharConv(nn.Module):
    """A convolutional language model. The bug: ``padding=k//2`` on both sides, so the output at t sees
    t+1 (the next token it must predict). The fix pads (k−1) on the left only. ``shift=k`` pads k on the
    left and drops the last k−1 outputs, so the output at t sees only < t (shifted one too far)."""

    def __init__(self, mode: str = "buggy", width: int = 20, kernel: int = 3):
        super().__init__()
        self.mode, self.k = mode, kernel
        self.embed = nn.Embedding(VOCAB, 24)
        self.conv = nn.Conv1d(24, width, kernel, padding=kernel // 2 if mode == "buggy" else 0)
        self.head = nn.Conv1d(width, VOCAB, 1)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        e = self.embed(idx).transpose(1, 2)  # (B, E, T)
        if self.mode == "fixed":
            e = F.pad(e, (self.k - 1, 0))
        elif self.mode == "overshift":
            e = F.pad(e, (self.k, 0))[:, :, :-1]
        h = F.relu(self.conv(e))
        return self.head(h).transpose(1, 2)  # (B, T, V)


class TinyGPT(nn.Module):
    """nn.TransformerEncoder over token + position embeddings; ``causal=False`` forgets the mask."""

    def __init__(self, causal: bool = True, width: int = 32, block: int = 16, batch_first: bool = True):
        super().__init__()
        self.causal = causal
        self.tok, self.pos = nn.Embedding(VOCAB, width), nn.Embedding(block, width)
        # batch_first=False with (B, T, E) inputs is the nn.MultiheadAttention default biting: attention
        # then runs across the batch instead of across time.
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.1, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        n = t if self.encoder.layers[0].self_attn.batch_first else idx.shape[0]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=idx.device) if self.causal else None
        return self.head(self.encoder(h, mask=mask, is_causal=self.causal))


# ------------------------------------------------------------------------------------------ factories


def make(kind: str, **kwargs):
    from zoo_reports import MODELS as MORE  # issue 10's additions, each citing its public report

    models = {"mlp": MLP, "masked": MaskedInput, "dropout": AlwaysDropout, "handbn": HandBatchNorm,
              "detached": DetachedBranch, "noisy": NoisyUnseeded, "convhead": ConvHead, "regression": RegressionNet,
              "bilstm": BiLSTMClassifier, "view": ViewNotTranspose, "charconv": CharConv, "gpt": TinyGPT, **MORE}
    return models[kind](**kwargs)


def resnet18(classes: int = 10):
    import torchvision
    return torchvision.models.resnet18(weights=None, num_classes=classes)


# ------------------------------------------------------------------------------------------ test helpers

HERE = str(Path(__file__).resolve().parent)
DIGITS = {"source": "digits"}
NAMES = {"source": "names", "seq_len": 16, "val_fraction": 0.1}


def zoo(kind: str, **kwargs: Any) -> dict:
    """A ``model`` table using the factory above."""
    return {"factory": "skeleton_zoo:make", "kwargs": {"kind": kind, **kwargs}}


def data(factory: str, **kwargs: Any) -> dict:
    return {"factory": f"skeleton_zoo:{factory}", "kwargs": kwargs}


def experiment(model: dict, data: dict = DIGITS, task: str = "classification", checks: dict | None = None,
               train: dict | None = None):
    from recipe_tui.core.config import ChecksConfig, DataConfig, Experiment, ModelConfig, TrainConfig
    return Experiment(name="zoo", task=task, data=DataConfig(**data), model=ModelConfig(**model),
                      train=TrainConfig(**{"device": "cpu", **(train or {})}), checks=ChecksConfig(**(checks or {})),
                      base_dir=HERE)


def context(exp, fix: bool = False):
    from recipe_tui.core.checks import CheckContext
    return CheckContext(exp=exp, fix=fix, device_name="cpu")


def run(check_id: str, exp_or_ctx, fix: bool = False):
    """Run one check; returns its CheckResult (an exception inside is an ``error`` result)."""
    from recipe_tui.core.checks import CheckContext, run_check
    ctx = exp_or_ctx if isinstance(exp_or_ctx, CheckContext) else context(exp_or_ctx, fix)
    return run_check(check_id, ctx)
