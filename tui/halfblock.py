"""Images as coloured half-block characters, token sequences as text.

Each character cell shows two pixels stacked: ``▀`` with the foreground colour for the top pixel
and the background colour for the bottom one. A cell is about twice as tall as wide, so the pixels
come out square. One channel is drawn in grey, three (or four, alpha ignored) in colour; NaN/Inf
pixels are magenta so corrupted samples stand out.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text

UPPER_HALF = "▀"
BAD_PIXEL = (255, 0, 255)


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_chw(image: Any) -> np.ndarray:
    """(C, H, W) float64 from C×H×W, H×W, or H×W×C (C ≤ 4 last) arrays or tensors."""
    a = _as_array(image).astype(np.float64)
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        if a.shape[0] not in (1, 3, 4) and a.shape[-1] in (1, 3, 4):
            a = a.transpose(2, 0, 1)
        return a
    if a.ndim > 3:  # e.g. a leading batch axis of 1
        return a.reshape(-1, *a.shape[-2:])[:3] if a.shape[-3] >= 3 else a.reshape(-1, *a.shape[-2:])[:1]
    raise ValueError(f"not an image: shape {a.shape}")


def _resample(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Resize one axis: area average when shrinking, nearest neighbour when growing."""
    n = a.shape[axis]
    if size == n:
        return a
    if size < n:
        starts = np.floor(np.arange(size) * n / size).astype(int)
        ends = np.r_[starts[1:], n]
        summed = np.add.reduceat(a, starts, axis=axis)
        shape = [1] * a.ndim
        shape[axis] = size
        return summed / (ends - starts).reshape(shape)
    idx = np.minimum((np.arange(size) * n / size).astype(int), n - 1)
    return np.take(a, idx, axis=axis)


def render_image(image: Any, width: int | None = None, vmin: float | None = None, vmax: float | None = None,
                 max_rows: int | None = None) -> Text:
    """``image`` (C×H×W, H×W or H×W×C) drawn ``width`` cells wide (default: one cell per pixel column).

    ``vmin``/``vmax`` map values to black/white (default: the image's own finite range), so pass the
    dataset's range to compare brightness between samples. ``max_rows`` caps the height in lines.
    """
    chw = to_chw(image)
    c, h, w = chw.shape
    if c == 2 or c > 4:
        chw, c = chw[:1], 1  # no natural colour mapping: show the first channel
    elif c == 4:
        chw, c = chw[:3], 3  # alpha ignored
    bad = ~np.isfinite(chw).all(axis=0)
    finite = chw[np.isfinite(chw)]
    lo = float(finite.min()) if vmin is None and finite.size else (0.0 if vmin is None else float(vmin))
    hi = float(finite.max()) if vmax is None and finite.size else (1.0 if vmax is None else float(vmax))
    cols = max(1, int(width or w))
    rows_px = max(1, int(round(h * cols / w)))
    if max_rows is not None and rows_px > 2 * max_rows:  # too tall: shrink both sides, keep the aspect
        rows_px = 2 * max_rows
        cols = max(1, int(round(w * rows_px / h)))
    scaled = np.where(np.isfinite(chw), chw, lo)
    norm = np.clip((scaled - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(scaled)
    norm = _resample(_resample(norm, 1, rows_px), 2, cols)
    badmap = _resample(_resample(bad[None].astype(np.float64), 1, rows_px), 2, cols)[0] > 0
    rgb = np.round(255 * (np.repeat(norm, 3, axis=0) if c == 1 else norm)).astype(np.uint8).transpose(1, 2, 0)
    rgb[badmap] = BAD_PIXEL
    text = Text(no_wrap=True, overflow="crop")
    styles: dict[tuple, Style] = {}
    for r in range(0, rows_px, 2):
        for col in range(cols):
            top = tuple(int(v) for v in rgb[r, col])
            bottom = tuple(int(v) for v in rgb[r + 1, col]) if r + 1 < rows_px else None
            key = (top, bottom)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=Color.from_rgb(*top),
                                            bgcolor=Color.from_rgb(*bottom) if bottom is not None else None)
            text.append(UPPER_HALF, style)
        if r + 2 < rows_px:
            text.append("\n")
    return text


def robust_range(images: Sequence[Any], low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The ``low``–``high`` percentile of the finite values of ``images`` (one brightness scale for
    the images shown together): an outlier pixel or sample does not set the scale. Falls back to the
    full range when the percentiles coincide (e.g. a mostly constant image)."""
    values = np.concatenate([_as_array(im).astype(np.float64).reshape(-1) for im in images]) if images else np.zeros(0)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return lo, hi


def render_tokens(ids: Sequence[int] | Any, vocab: str | None = None, valid: Sequence[bool] | Any | None = None,
                  pad: str = "·", bad_style: Style | str = "bold reverse") -> Text:
    """Token ids as text: characters of ``vocab`` when given (ids outside it in ``bad_style``, which the
    sample browser takes from app.tcss), else the numbers; positions where ``valid`` is False (padding)
    are dimmed."""
    ids = [int(v) for v in _as_array(ids).reshape(-1)]
    ok = [True] * len(ids) if valid is None else [bool(v) for v in _as_array(valid).reshape(-1)]
    text = Text(no_wrap=False)
    for i, (t, keep) in enumerate(zip(ids, ok)):
        if vocab is not None:
            if not keep:
                text.append(pad, "dim")
            elif 0 <= t < len(vocab):
                text.append(vocab[t], "bold")
            else:
                text.append(f"⟨{t}⟩", bad_style)
        else:
            if i:
                text.append(" ")
            text.append(str(t), "bold" if keep else "dim")
    return text


def render_sample(x: Any, width: int | None = None, vocab: str | None = None, valid: Any = None,
                  vmin: float | None = None, vmax: float | None = None, max_rows: int | None = None,
                  bad_style: Style | str = "bold reverse") -> Text:
    """An input as the sample browser shows it: images as half blocks, integer sequences as tokens,
    other vectors as numbers."""
    a = _as_array(x)
    if a.ndim >= 2 and min(a.shape[-2:]) >= 2:  # 2-D and up is an image, whatever its dtype
        return render_image(a, width, vmin, vmax, max_rows)
    if np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_):
        return render_tokens(a, vocab, valid, bad_style=bad_style)
    flat = a.reshape(-1)
    shown = " ".join(f"{v:.4g}" for v in flat[:64]) + (f" … ({flat.size} values)" if flat.size > 64 else "")
    return Text(shown)
