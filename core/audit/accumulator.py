"""Per-chunk features of a scan: hashes, statistics, near-duplicate embeddings and label-model features of
a chunk of samples, accumulated into a ``SplitScan``."""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .hashing import hash_rows, shape_key
from .split_scan import ChannelStats, SplitScan

EMB_SIDE = 8  # near-duplicate embedding: images average-pooled to at most 8×8 per channel
EMB_DIM = 64  # … other vectors projected to this many dimensions when wider
FEAT_DIM = 256  # features of the quick label model: at most this many numbers per sample
MAX_CHANNEL_STATS = 256  # tabular data: per-column statistics up to this many columns


def channels_of(shape: tuple[int, ...], kind: str) -> int | None:
    """How many channels per-channel statistics use; None: not meaningful (token sequences)."""
    if kind == "sequence":
        return None
    if len(shape) >= 3:
        return int(shape[0])
    if len(shape) == 1:
        return int(shape[0]) if shape[0] <= MAX_CHANNEL_STATS else 1
    return 1


def _is_image(shape: tuple[int, ...], kind: str) -> bool:
    return kind == "image" or (kind != "sequence" and len(shape) in (2, 3) and min(shape[-2:]) >= 4)


def _projection(d_in: int, d_out: int) -> torch.Tensor:
    # Fixed per input width so every split (and every run: the cache) embeds the same way.
    g = torch.Generator().manual_seed(1000 + d_in)
    return torch.randn(d_in, d_out, generator=g) / d_out ** 0.5


def _pool(img: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    """Average-pool (B, C, H, W) to (B, C, oh, ow); strided sums when the factors are whole (much faster)."""
    h, w = img.shape[-2:]
    if (oh, ow) == (h, w):
        return img
    if h % oh or w % ow:
        return F.adaptive_avg_pool2d(img, (oh, ow))
    kh, kw = h // oh, w // ow
    if kh * kw > 16:
        return F.avg_pool2d(img, (kh, kw))
    out = None
    for i in range(kh):
        for j in range(kw):
            v = img[..., i::kh, j::kw]
            out = v.clone() if out is None else out.add_(v)
    return out.div_(kh * kw)


def _side(n: int, limit: int) -> int:
    """A pooled side ≤ limit for n pixels, preferring whole pooling factors."""
    if n <= limit:
        return n
    for s in range(limit, max(1, limit // 2) - 1, -1):
        if n % s == 0:
            return s
    return limit


class Accumulator:
    """Everything a scan collects about one split, a chunk of samples at a time."""

    def __init__(self, name: str, kind: str, ignore_index: int, vocab_size: int | None) -> None:
        self.name, self.kind, self.ignore_index, self.vocab_size = name, kind, ignore_index, vocab_size
        self.main_shape: tuple[int, ...] | None = None
        self.dtype = ""
        self.shapes: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "hashes", "stats", "emb", "feat")}
        self.ys: list[Any] = []
        self.nonfinite: list[tuple[int, str]] = []
        self.out_of_range: list[tuple[int, str]] = []
        self.channels: ChannelStats | None = None
        self.tokens: np.ndarray | None = None
        self.lengths: list[np.ndarray] = []
        self.stat_names: tuple[str, ...] = ()
        self.emb_dim: int | None = None
        self.feat_dim: int | None = None
        self.pooled: tuple[int, int, int, int] | None = None  # feature and embedding grid of images
        # Everything the scan read, in order: the audit cache's key, so a cached result is never stale.
        self.digest = hashlib.sha256(f"{name}:{kind}:{ignore_index}:{vocab_size}".encode())

    def add(self, x: torch.Tensor, y: Any, positions: np.ndarray) -> None:
        """A chunk of samples of one shape. ``y``: array-like of their labels (or None)."""
        x = x.detach().cpu()
        shape = tuple(int(s) for s in x.shape[1:])
        if self.main_shape is None:
            self.main_shape, self.dtype = shape, str(x.dtype).replace("torch.", "")
            if self.kind == "sequence" and x.is_floating_point():
                self.kind = "tabular"
        key = shape_key(shape)
        self.shapes[key] = self.shapes.get(key, 0) + len(x)
        main = shape == self.main_shape
        self.parts["index"].append(positions.astype(np.int64))
        self.ys.append(y)
        if self.kind == "sequence":
            self.parts["hashes"].append(hash_rows(x))
            stats, emb, feat = self._sequence(x, y, positions), None, self._token_features(x)
        else:
            stats, emb, feat, all_finite = self._numeric(x, positions, main)
            self.parts["hashes"].append(hash_rows(x, all_finite))
        self._digest_chunk(x, y, positions)
        self.parts["stats"].append(stats)
        for key, value in (("emb", emb), ("feat", feat)):
            if value is not None:
                self.parts[key].append(value)

    def _digest_chunk(self, x: torch.Tensor, y: Any, positions: np.ndarray) -> None:
        """The chunk's dtype and shape, positions, per-sample hashes (every value the audit computes from: floats
        as float32, as the statistics and embeddings read them) and labels."""
        d = self.digest
        d.update(f"|{x.dtype}:{tuple(x.shape)}|".encode())
        d.update(np.ascontiguousarray(positions, dtype=np.int64).tobytes())
        d.update(self.parts["hashes"][-1].tobytes())
        if y is None:
            d.update(b"no-labels")
            return
        try:
            a = np.asarray(y)
        except (ValueError, TypeError):  # labels of varying shapes
            a = np.asarray(y, dtype=object)
        if a.dtype == object:
            d.update(repr([np.asarray(v).tolist() for v in y]).encode())
        else:
            d.update(f"{a.dtype}:{a.shape}".encode() + np.ascontiguousarray(a).tobytes())

    # -- images and vectors
    def _numeric(self, x: torch.Tensor, positions: np.ndarray, main: bool
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
        """Per-sample stats, channel stats, embedding and features in a few passes over the chunk."""
        b = x.shape[0]
        shape = tuple(x.shape[1:])
        c = channels_of(shape, self.kind) or 1
        flat = x.reshape(b, -1).to(torch.float32)
        d = flat.shape[1]
        per = flat.view(b, c, d // c) if d % c == 0 else flat.view(b, 1, d)
        c, k = per.shape[1], per.shape[2]
        s = per.sum(2)  # (B, C); NaN/Inf propagate: a cheap test of every sample
        finite = torch.isfinite(s).all(1)
        if not bool(finite.all()):
            # A non-finite sum is either a NaN/Inf inside or an overflow of finite values.
            for r in torch.nonzero(~finite).flatten().tolist():
                row = flat[r]
                if bool(torch.isfinite(row).all()):
                    finite[r] = True
                    s[r] = per[r].double().sum(1).float()
                else:
                    self.nonfinite.append((int(positions[r]), "nan" if bool(torch.isnan(row).any()) else "inf"))
        sq = torch.linalg.vector_norm(per, dim=2).square_()
        lo, hi = per.amin(2), per.amax(2)
        mean = s.double().sum(1) / max(d, 1)
        std = (sq.double().sum(1) / max(d, 1) - mean ** 2).clamp(min=0).sqrt()
        cols = [mean, std, lo.amin(1).double(), hi.amax(1).double()]
        names = ["mean", "std", "min", "max"]
        if len(shape) >= 3 and 1 < c <= 4:  # colour: a per-channel mean tells a tinted image from the rest
            cols += [(s[:, j] / k).double() for j in range(c)]
            names += [f"mean_c{j}" for j in range(c)]
        stats = torch.stack(cols, 1).numpy()
        fin = finite.numpy()
        stats[~fin] = np.nan
        if main:
            self.stat_names = self.stat_names or tuple(names)
            if self.channels is None:
                self.channels = ChannelStats.empty(c)
            if len(self.channels.count) == c:
                self.channels.add_reduced(k, s[finite], sq[finite], lo[finite], hi[finite])
        elif stats.shape[1] != len(self.stat_names):
            stats = stats[:, : len(self.stat_names)]
        emb, feat = self._embed(flat, shape)
        emb[~finite] = float("nan")  # excluded from the near-duplicate search
        feat = torch.nan_to_num(feat, nan=0.0, posinf=0.0, neginf=0.0)
        return stats, self._fixed(emb, "emb_dim", float("nan")), self._fixed(feat, "feat_dim", 0.0), bool(fin.all())

    def _embed(self, flat: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(near-duplicate embedding, label-model features): pooled pixels for images, else (projected) vectors."""
        b = flat.shape[0]
        if _is_image(shape, self.kind):
            c = shape[0] if len(shape) == 3 else int(np.prod(shape[:-2]))
            h, w = shape[-2], shape[-1]
            limit = 16
            while limit > 1 and c * limit * limit > FEAT_DIM:
                limit -= 1
            if self.pooled is None:  # fixed by the first images: later ones of other sizes pool to the same grid
                fh, fw = _side(h, limit), _side(w, limit)
                self.pooled = (fh, fw, _side(fh, EMB_SIDE), _side(fw, EMB_SIDE))
            fh, fw, eh, ew = self.pooled
            feat = _pool(flat.view(b, c, h, w), fh, fw)
            emb = _pool(feat, eh, ew)
            return emb.reshape(b, -1).clone(), feat.reshape(b, -1)
        d = flat.shape[1]
        emb = flat.clone() if d <= EMB_DIM else flat @ _projection(d, EMB_DIM)
        feat = flat if d <= FEAT_DIM else flat @ _projection(d, FEAT_DIM)
        return emb, feat

    def _fixed(self, v: torch.Tensor, attr: str, fill: float) -> np.ndarray:
        """Keep one width per split: a sample of another shape gets a row of ``fill``."""
        if getattr(self, attr) is None:
            setattr(self, attr, v.shape[1])
        if v.shape[1] != getattr(self, attr):
            v = torch.full((v.shape[0], getattr(self, attr)), fill)
        return v.numpy().astype(np.float32, copy=False)

    # -- token sequences
    def _sequence(self, x: torch.Tensor, y: Any, positions: np.ndarray) -> np.ndarray:
        b = x.shape[0]
        ids = x.reshape(b, -1).to(torch.int64)
        valid = torch.ones_like(ids, dtype=torch.bool)
        if y is not None:
            yt = torch.as_tensor(np.asarray(y))
            if yt.shape == ids.shape:  # language model: targets mark the real positions (padding = ignore_index)
                valid = yt != self.ignore_index
        length = valid.sum(1)
        v = self.vocab_size
        # Every input id, padding positions included: nn.Embedding looks them all up, so a padding id outside
        # the vocabulary crashes training even though its target is ignored.
        bad = (ids < 0) | (ids >= v) if v else ids < 0
        if bool(bad.any()):
            self.out_of_range += [(int(positions[r]), self._out_of_range_detail(ids[r], bad[r], valid[r]))
                                  for r in torch.nonzero(bad.any(1)).flatten().tolist()]
        good = ids[valid & ~bad]
        counts = np.bincount(good.numpy(), minlength=v or 0)
        if self.tokens is None:
            self.tokens = counts
        else:
            n = max(len(self.tokens), len(counts))
            self.tokens = np.pad(self.tokens, (0, n - len(self.tokens))) + np.pad(counts, (0, n - len(counts)))
        self.lengths.append(length.numpy())
        masked = torch.where(valid, ids, torch.full_like(ids, -1))
        srt = masked.sort(1).values
        distinct = (srt[:, :1] >= 0).sum(1) + ((srt[:, 1:] != srt[:, :-1]) & (srt[:, 1:] >= 0)).sum(1)
        top = torch.where(valid, ids, torch.full_like(ids, -(2 ** 62))).amax(1).clamp(min=-1)
        self.stat_names = ("length", "distinct", "max_id")
        return torch.stack([length, distinct, top], 1).double().numpy()

    def _out_of_range_detail(self, ids: torch.Tensor, bad: torch.Tensor, valid: torch.Tensor) -> str:
        """Which id, where, and whether it sits at a padding position (its target is the ignore index)."""
        t = int(torch.nonzero(bad).flatten()[0])
        where = "a padding position" if not bool(valid[t]) else "a real position"
        vocab = f"0…{self.vocab_size - 1}" if self.vocab_size else "≥ 0"
        return f"id {int(ids[t])} at position {t} ({where}) is outside the vocabulary {vocab}"

    def _token_features(self, x: torch.Tensor) -> np.ndarray | None:
        """Sequences: the token histogram (bag of tokens) as features for the quick label model."""
        v = self.vocab_size
        if not v or v > 1024:
            return None
        b = x.shape[0]
        ids = x.reshape(b, -1).to(torch.int64)
        ids = torch.where((ids >= 0) & (ids < v), ids, torch.full_like(ids, v))
        hist = torch.zeros(b, v + 1).scatter_add_(1, ids, torch.ones(ids.shape))[:, :v]
        return self._fixed(hist / hist.sum(1, keepdim=True).clamp(min=1), "feat_dim", 0.0)

    def finish(self, length: int, source: str, failed: list[tuple[int, str]]) -> SplitScan:
        cat = lambda k, w: np.concatenate(self.parts[k]) if self.parts[k] else np.zeros((0, w) if w else 0)  # noqa: E731
        y = None
        ys = [v for v in self.ys if v is not None]
        if ys and len(ys) == len(self.ys):
            try:
                y = np.concatenate([np.asarray(v) for v in ys])
            except ValueError:  # labels of varying shapes
                y = None
        hashes = np.concatenate(self.parts["hashes"]) if self.parts["hashes"] else np.zeros(0, dtype="V16")
        self.digest.update(f"|{length}:{source}:{failed!r}".encode())  # samples that failed to load, and why
        return SplitScan(
            name=self.name, length=length, source=source, kind=self.kind, shapes=self.shapes, dtype=self.dtype,
            index=cat("index", 0).astype(np.int64), y=y, hashes=hashes,
            stats=cat("stats", len(self.stat_names) or 1), stat_names=self.stat_names or ("mean",),
            emb=np.concatenate(self.parts["emb"]) if self.parts["emb"] else None,
            feat=np.concatenate(self.parts["feat"]) if self.parts["feat"] else None,
            nonfinite=self.nonfinite, failed=failed, out_of_range=self.out_of_range, channels=self.channels,
            tokens=self.tokens, lengths=np.concatenate(self.lengths) if self.lengths else None,
            digest=self.digest.hexdigest(),
        )
