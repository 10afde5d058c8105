"""Built-in models, torchvision models by name, and user model factories."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import BUILTIN_MODELS, ConfigError, Experiment, where
from .data import DataInfo, Splits
from .factory import import_factory
from .tasks import task_of

BUILTINS = BUILTIN_MODELS


def build_model(exp: Experiment, info: DataInfo) -> nn.Module:
    m = exp.model
    out = _out_features(exp, info)
    if m.factory:
        make = import_factory(m.factory, exp, "model", "factory")
        model = make(**m.kwargs)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{where(exp, 'model', 'factory')}'{m.factory}' returned {type(model).__name__}, not an nn.Module.")
        return model
    in_features = math.prod(info.input_shape)
    if m.name == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(in_features, out))
    if m.name == "mlp":
        return MLP(in_features, out, m.width, m.depth, m.dropout, m.batchnorm)
    if m.name == "cnn":
        return SmallCNN(info.input_shape[0], out, m.width, m.dropout, m.batchnorm, m.dropout2d)
    if m.name in ("char-mlp", "char-transformer"):
        if info.kind != "sequence" or not info.num_classes:
            raise ConfigError(f"{where(exp, 'model', 'name')}{m.name} needs token sequences (e.g. data.source = \"names\").")
        if m.name == "char-mlp":
            return CharMLP(info.num_classes, m.context, m.width, **m.kwargs)
        return CharTransformer(info.num_classes, info.input_shape[0], m.width, m.depth, m.heads, m.dropout)
    return _torchvision_model(exp, info, out)


def build_initialized_model(exp: Experiment, splits: Splits) -> nn.Module:
    """``build_model`` plus the recipe's "init well" when ``model.init_bias`` is set."""
    model = build_model(exp, splits.info)
    if exp.model.init_bias:
        from .init_bias import apply_init_bias
        apply_init_bias(model, splits, exp.task)
    return model


def _out_features(exp: Experiment, info: DataInfo) -> int:
    if task_of(exp.task).classes:
        return info.num_classes or 1
    return int(exp.model.kwargs.get("out_features", 1)) if not exp.model.factory else 1


def _torchvision_model(exp: Experiment, info: DataInfo, out: int) -> nn.Module:
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)
    if exp.model.name not in names:
        import difflib
        close = difflib.get_close_matches(exp.model.name or "", [*BUILTINS, *names], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (built-ins: {', '.join(BUILTINS)}, or a torchvision.models name)."
        raise ConfigError(f"{where(exp, 'model', 'name')}unknown model '{exp.model.name}'{hint}")
    model = tvm.get_model(exp.model.name, weights=None, num_classes=out, **exp.model.kwargs)
    if info.kind == "image" and info.input_shape[0] != 3:
        model = nn.Sequential(RepeatChannels(3), model)  # torchvision models expect RGB
    return model


class RepeatChannels(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.channels, *x.shape[2:]) if x.shape[1] == 1 else x


class MLP(nn.Module):
    def __init__(self, in_features: int, out: int, width: int, depth: int, dropout: float = 0.0, batchnorm: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers.append(nn.Linear(d, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
            d = width
        layers.append(nn.Linear(d, out))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Two 3×3 conv blocks, a pool and a linear head: a "tiny convnet" baseline."""

    def __init__(self, in_channels: int, out: int, width: int = 128, dropout: float = 0.0, batchnorm: bool = False,
                 dropout2d: float = 0.0):
        super().__init__()
        c1, c2 = max(8, width // 4), max(16, width // 2)

        def block(i: int, o: int) -> list[nn.Module]:  # dropout2d drops whole channels (the recipe: for convnets)
            return [nn.Conv2d(i, o, 3, padding=1), *([nn.BatchNorm2d(o)] if batchnorm else []), nn.ReLU(),
                    *([nn.Dropout2d(dropout2d)] if dropout2d else [])]

        self.features = nn.Sequential(*block(in_channels, c1), *block(c1, c2), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), *([nn.Dropout(dropout)] if dropout else []), nn.Linear(c2 * 16, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CharMLP(nn.Module):
    """Bengio-style: each position sees the embeddings of its ``context`` last tokens (itself included)."""

    def __init__(self, vocab: int, context: int = 3, width: int = 128, embed: int = 16):
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab, embed)
        self.hidden = nn.Linear(context * embed, width)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.shape
        padded = F.pad(idx, (self.context - 1, 0), value=0)  # left-pad with '.' so position t sees only ≤ t
        e = self.embed(padded)  # (B, T+k-1, E)
        windows = e.unfold(1, self.context, 1)  # (B, T, E, k)
        h = torch.tanh(self.hidden(windows.transpose(2, 3).reshape(b, t, -1)))
        return self.head(h)


class CharTransformer(nn.Module):
    """A small GPT: token + position embeddings, pre-norm causal self-attention blocks."""

    def __init__(self, vocab: int, block_size: int, width: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(block_size, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block_size), persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        h = self.blocks(h, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(h))
