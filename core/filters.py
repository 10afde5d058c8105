"""First-layer weights as small images, and a number for "structured or noise".

The first layer is the first module with a weight matrix that the forward pass calls. Convolution filters are
images as they are (C × k × k; a 1-d convolution is 1 × k); a linear layer reading the flattened input becomes
one image per unit, in the input's shape. Embeddings (token ids) have no spatial layout: no images.

Structure: the correlation (cosine) of horizontally and vertically neighbouring weights, pooled over the filters
and channels, against the same statistic with the weights shuffled within each filter-channel (``SHUFFLES``
permutations: the same values, no layout — a permutation test). Trained filters are smooth (edges, blobs,
strokes), so their neighbours agree beyond the shuffled control; freshly initialised ones do not. ``z`` is how many
control standard deviations above the control's mean the real correlation lies; "structured" needs ``z`` ≥ 3
(p ≈ 0.001) and a correlation at least 0.1 above the control's.

Measured (README): a digits MLP's first layer (128 units as 8×8 images) z ≈ 30 after 100 steps, ≈ 0.7 at init;
a digits CNN's 16 filters of 3×3 (only 192 neighbour pairs, so little power) z ≈ 3.1–3.8 after 800–1,500 steps,
≤ 1.2 at init.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

SHUFFLES = 200
MAX_MEASURED = 256  # filters measured (the first ones): the permutation test stays fast for wide first layers
MAX_FILTERS = 64  # filters drawn
MAX_SIDE = 16  # drawn filters are average-pooled down to at most this many pixels a side
# ``filters_u8``: the drawn filters in one byte per weight, small enough for the app's checklist.json (values over
# 20,000 characters are not kept there, and ``filters`` as nested lists is ~90,000 for a digits MLP's 64 filters).
MAX_U8_BYTES, MAX_U8_FILTERS = 10_000, 32
Z_STRUCTURED, R_STRUCTURED = 3.0, 0.1


@dataclass(frozen=True)
class Layer:
    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight.detach().float().cpu()


def first_layer(model: nn.Module, x: torch.Tensor) -> Layer | None:
    """The first module called in ``model(x)`` that holds a weight of two or more dimensions."""
    names = {id(m): n for n, m in model.named_modules()}
    found: list[Layer] = []

    def pre_hook(module: nn.Module, args: Any) -> None:
        w = getattr(module, "weight", None)
        if not found and isinstance(w, torch.Tensor) and w.dim() >= 2:
            found.append(Layer(names.get(id(module), type(module).__name__), module))

    handles = [m.register_forward_pre_hook(pre_hook) for m in model.modules()]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(x)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def filter_images(layer: Layer, input_shape: tuple[int, ...]) -> np.ndarray | None:
    """(N, C, H, W) images of the layer's filters, or None when its weights have no image layout."""
    w, m = layer.weight, layer.module
    images = None
    if isinstance(m, (nn.Embedding, nn.EmbeddingBag)):
        return None
    if w.dim() == 4:
        images = w.numpy()
    elif w.dim() == 3:  # Conv1d: (out, in, k) → 1 × k images
        images = w.numpy()[:, :, None, :]
    elif w.dim() == 2 and isinstance(m, nn.Linear) and len(input_shape) in (2, 3) and w.shape[1] == math.prod(input_shape):
        shape = input_shape if len(input_shape) == 3 else (1, *input_shape)
        images = w.numpy().reshape(w.shape[0], *shape)
    if images is None or images.shape[2] * images.shape[3] < 2:  # a 1 × 1 kernel has no neighbours
        return None
    return images


def neighbour_correlation(images: np.ndarray) -> float:
    """Pooled correlation (cosine) of horizontally and vertically adjacent weights of every filter-channel."""
    f = images
    num, aa, bb = 0.0, 0.0, 0.0
    for a, b in ((f[..., :, :-1], f[..., :, 1:]), (f[..., :-1, :], f[..., 1:, :])):
        num += float((a * b).sum())
        aa += float((a * a).sum())
        bb += float((b * b).sum())
    return num / math.sqrt(aa * bb) if aa > 0 and bb > 0 else 0.0


def structure(images: np.ndarray, seed: int = 0, tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """The neighbour correlation, its shuffled control (mean, std), z, and the call: structured or noise.
    ``tick`` is called before each shuffle (it may raise to stop)."""
    images = images[:MAX_MEASURED].astype(np.float64)
    r = neighbour_correlation(images)
    rng = np.random.default_rng(seed)
    n, c, h, w = images.shape
    flat = images.reshape(n * c, h * w)
    null = []
    for _ in range(SHUFFLES):
        if tick is not None:
            tick()
        shuffled = rng.permuted(flat, axis=1)  # every filter-channel shuffled on its own
        null.append(neighbour_correlation(shuffled.reshape(images.shape)))
    mean, std = float(np.mean(null)), float(np.std(null))
    z = (r - mean) / std if std > 0 else 0.0
    return {"correlation": r, "control_mean": mean, "control_std": std, "z": z,
            "structured": bool(z >= Z_STRUCTURED and r - mean >= R_STRUCTURED),
            "pairs": int(n * c * (h * (w - 1) + (h - 1) * w)), "measured": n, "shuffles": SHUFFLES}


def drawable(images: np.ndarray) -> dict[str, Any]:
    """The first ``MAX_FILTERS`` filters, pooled to at most ``MAX_SIDE`` a side, rounded: what the app draws."""
    shown = images[:MAX_FILTERS]
    n, c, h, w = shown.shape
    k = max(1, math.ceil(max(h, w) / MAX_SIDE))
    if k > 1:
        t = torch.from_numpy(np.ascontiguousarray(shown)).float()
        shown = torch.nn.functional.avg_pool2d(t, k, ceil_mode=True).numpy()
    scale = float(np.abs(shown).max()) or 1.0
    return {"filters": np.round(shown, 4).tolist(), "shape": list(shown.shape), "scale": round(scale, 6),
            "pooled": k, "count": int(images.shape[0]), "filters_u8": as_bytes(shown, scale)}


def as_bytes(shown: np.ndarray, scale: float) -> dict[str, Any]:
    """The first filters (as many as fit ``MAX_U8_BYTES``, at most ``MAX_U8_FILTERS``) quantised to 0…255 over
    [-scale, scale], base64: ``{"shape": [n, c, h, w], "scale", "data"}`` (weight = byte / 255 × 2·scale − scale)."""
    import base64

    per = int(np.prod(shown.shape[1:]))
    n = max(1, min(MAX_U8_FILTERS, len(shown), MAX_U8_BYTES // max(1, per)))
    q = np.clip(np.round((shown[:n] + scale) / (2 * scale) * 255), 0, 255).astype(np.uint8)
    return {"shape": list(q.shape), "scale": round(scale, 6), "data": base64.b64encode(q.tobytes()).decode("ascii")}
