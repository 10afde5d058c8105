"""One pass over a split: per-sample hashes, statistics, embeddings and features.

Everything the stage-1 checks need comes out of this single pass, so the data is read once per job
(``pipeline.audit_scans`` keeps it in ``ctx.cache``). In-memory data (``TensorPairs``, ``TensorDataset``,
subsets of them, torchvision's stored arrays) is processed in vectorised chunks; any other dataset
is iterated item by item, and items that raise are recorded, not fatal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .hashing import _shape_key, hash_rows
from .progress import Ticker, TickFn

CHUNK = 4096  # rows per vectorised step: bounds memory, gives progress and stop a chance to run
EMB_SIDE = 8  # near-duplicate embedding: images average-pooled to at most 8×8 per channel
EMB_DIM = 64  # … other vectors projected to this many dimensions when wider
FEAT_DIM = 256  # features of the quick label model: at most this many numbers per sample
MAX_CHANNEL_STATS = 256  # tabular data: per-column statistics up to this many columns


@dataclass
class ChannelStats:
    """Running per-channel count / sum / sum of squares / min / max over finite samples."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> "ChannelStats":
        z = np.zeros(channels)
        return cls(z.copy(), z.copy(), z.copy(), np.full(channels, np.inf), np.full(channels, -np.inf))

    def add(self, x: torch.Tensor) -> None:
        """``x``: (B, C, K) float: K values of each channel in each of B samples."""
        if len(x):
            self.add_reduced(x.shape[2], x.sum(2), torch.linalg.vector_norm(x, dim=2) ** 2, x.amin(2), x.amax(2))

    def add_reduced(self, k: int, s: torch.Tensor, sq: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Per-(sample, channel) sums, sums of squares, minima and maxima of ``k`` values each, (B, C)."""
        if not len(s):
            return
        self.count += s.shape[0] * k
        self.sum += s.double().sum(0).numpy()
        self.sumsq += sq.double().sum(0).numpy()
        self.min = np.minimum(self.min, lo.amin(0).double().numpy())
        self.max = np.maximum(self.max, hi.amax(0).double().numpy())

    def summary(self) -> dict[str, list[float]]:
        n = np.maximum(self.count, 1)
        mean = self.sum / n
        std = np.sqrt(np.maximum(self.sumsq / n - mean ** 2, 0.0))
        ok = self.count > 0
        r = lambda a: [round(float(v), 6) if k else None for v, k in zip(a, ok)]  # noqa: E731
        return {"mean": r(mean), "std": r(std), "min": r(self.min), "max": r(self.max)}


@dataclass
class SplitScan:
    """What one pass over a split found. Rows are the samples that loaded; ``index`` maps row → position."""

    name: str
    length: int  # len(ds)
    source: str  # memory (in-memory tensors) | stored (torchvision's raw arrays, before transforms) | loaded (item by item)
    kind: str  # image | sequence | tabular
    shapes: dict[str, int]  # "1x8x8" → number of samples
    dtype: str
    index: np.ndarray  # (n,) int64
    y: np.ndarray | None  # (n,) or (n, T) labels; None when the dataset has none or they vary in shape
    hashes: np.ndarray  # (n,) V16: SHA-256 (first 16 bytes) of each sample's canonical bytes
    stats: np.ndarray  # (n, S) per-sample statistics, NaN rows for non-finite samples
    stat_names: tuple[str, ...]
    emb: np.ndarray | None  # (n, d) float32 near-duplicate embedding (None for token sequences)
    feat: np.ndarray | None  # (n, f) float32 features for the quick label model
    nonfinite: list[tuple[int, str]] = field(default_factory=list)  # (position, "nan" | "inf")
    failed: list[tuple[int, str]] = field(default_factory=list)  # (position, "Error: message")
    out_of_range: list[int] = field(default_factory=list)  # sequences: positions holding token ids outside the vocabulary
    channels: ChannelStats | None = None
    model_input: ChannelStats | None = None  # stored data: channel stats of what the model sees (a sample, transforms applied)
    tokens: np.ndarray | None = None  # sequences: how often each token id occurs among the inputs
    lengths: np.ndarray | None = None  # sequences: tokens per sample

    @property
    def finite(self) -> np.ndarray:
        """Row mask of samples whose statistics are defined (no NaN/Inf)."""
        return np.isfinite(self.stats).all(axis=1) if self.stats.size else np.ones(len(self.index), bool)


# ----------------------------------------------------------------------------- in-memory fast path


def in_memory_arrays(ds: Any) -> tuple[torch.Tensor, torch.Tensor | None, str] | None:
    """``(x, y, source)`` when the dataset holds its samples as arrays; None when it must be iterated.

    torchvision datasets expose their stored data (``.data``, before transforms): using it is fast and
    immune to random augmentation; stats of what the model sees are sampled separately.
    """
    from torch.utils.data import Subset, TensorDataset

    from ..data import TensorPairs

    if isinstance(ds, TensorPairs):
        return ds.x, ds.y, "memory"
    if isinstance(ds, TensorDataset) and len(ds.tensors) in (1, 2):
        return ds.tensors[0], (ds.tensors[1] if len(ds.tensors) == 2 else None), "memory"
    if isinstance(ds, Subset):
        inner = in_memory_arrays(ds.dataset)
        if inner is None:
            return None
        idx = torch.as_tensor(list(ds.indices), dtype=torch.long)
        x, y, source = inner
        return x[idx], (None if y is None else y[idx]), source
    if type(ds).__module__.startswith("torchvision.datasets"):
        data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)
        if isinstance(data, (np.ndarray, torch.Tensor)) and targets is not None and len(data) == len(ds):
            x = torch.as_tensor(np.asarray(data))
            if x.dtype != torch.uint8:
                return None
            if x.dim() == 3:  # MNIST-style (N, H, W)
                x = x[:, None]
            elif x.dim() == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):  # CIFAR-style NHWC
                x = x.permute(0, 3, 1, 2)
            return x, torch.as_tensor(np.asarray(targets)), "stored"
    return None


# ----------------------------------------------------------------------------- per-chunk features


def _channels_of(shape: tuple[int, ...], kind: str) -> int | None:
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


class _Accumulator:
    def __init__(self, name: str, kind: str, ignore_index: int, vocab_size: int | None) -> None:
        self.name, self.kind, self.ignore_index, self.vocab_size = name, kind, ignore_index, vocab_size
        self.main_shape: tuple[int, ...] | None = None
        self.dtype = ""
        self.shapes: dict[str, int] = {}
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "hashes", "stats", "emb", "feat")}
        self.ys: list[Any] = []
        self.nonfinite: list[tuple[int, str]] = []
        self.out_of_range: list[int] = []
        self.channels: ChannelStats | None = None
        self.tokens: np.ndarray | None = None
        self.lengths: list[np.ndarray] = []
        self.stat_names: tuple[str, ...] = ()
        self.emb_dim: int | None = None
        self.feat_dim: int | None = None
        self.pooled: tuple[int, int, int, int] | None = None  # feature and embedding grid of images

    def add(self, x: torch.Tensor, y: Any, positions: np.ndarray) -> None:
        """A chunk of samples of one shape. ``y``: array-like of their labels (or None)."""
        x = x.detach().cpu()
        shape = tuple(int(s) for s in x.shape[1:])
        if self.main_shape is None:
            self.main_shape, self.dtype = shape, str(x.dtype).replace("torch.", "")
            if self.kind == "sequence" and x.is_floating_point():
                self.kind = "tabular"
        key = _shape_key(shape)
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
        self.parts["stats"].append(stats)
        for key, value in (("emb", emb), ("feat", feat)):
            if value is not None:
                self.parts[key].append(value)

    # -- images and vectors
    def _numeric(self, x: torch.Tensor, positions: np.ndarray, main: bool
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
        """Per-sample stats, channel stats, embedding and features in a few passes over the chunk."""
        b = x.shape[0]
        shape = tuple(x.shape[1:])
        c = _channels_of(shape, self.kind) or 1
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
        bad = valid & ((ids < 0) | (ids >= v)) if v else valid & (ids < 0)
        if bool(bad.any()):
            self.out_of_range += [int(positions[r]) for r in torch.nonzero(bad.any(1)).flatten().tolist()]
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
        return SplitScan(
            name=self.name, length=length, source=source, kind=self.kind, shapes=self.shapes, dtype=self.dtype,
            index=cat("index", 0).astype(np.int64), y=y, hashes=hashes,
            stats=cat("stats", len(self.stat_names) or 1), stat_names=self.stat_names or ("mean",),
            emb=np.concatenate(self.parts["emb"]) if self.parts["emb"] else None,
            feat=np.concatenate(self.parts["feat"]) if self.parts["feat"] else None,
            nonfinite=self.nonfinite, failed=failed, out_of_range=self.out_of_range, channels=self.channels,
            tokens=self.tokens, lengths=np.concatenate(self.lengths) if self.lengths else None,
        )


# ----------------------------------------------------------------------------- a split, all splits


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if hasattr(x, "getbands"):  # a PIL image (no ToTensor transform): H×W(×C) → C×H×W
        a = np.asarray(x)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1) if a.ndim == 3 else a[None]))
    try:
        return torch.as_tensor(x)
    except (TypeError, RuntimeError, ValueError):
        return torch.as_tensor(np.asarray(x))


def scan_split(name: str, ds: Any, kind: str = "image", *, ignore_index: int = -1, vocab_size: int | None = None,
               tick: TickFn | None = None, sample_model_input: int = 512) -> SplitScan:
    """Scan one split. ``tick(task, done, total)`` is called in every loop (it may raise to stop)."""
    acc = _Accumulator(name, kind, ignore_index, vocab_size)
    n = len(ds)
    ticker = Ticker(tick, f"scan {name}", n)
    arrays = in_memory_arrays(ds)
    failed: list[tuple[int, str]] = []
    if arrays is not None:
        x, y, source = arrays
        for i in range(0, n, CHUNK):
            j = min(n, i + CHUNK)
            acc.add(x[i:j], None if y is None else y[i:j].cpu().numpy(), np.arange(i, j))
            ticker(j)
    else:
        source = "loaded"
        buf_x: list[torch.Tensor] = []
        buf_y: list[Any] = []
        buf_i: list[int] = []

        def flush() -> None:
            if buf_x:
                has_y = all(v is not None for v in buf_y)
                yy = np.stack([np.asarray(v) for v in buf_y]) if has_y and _same_shapes(buf_y) else (
                    buf_y if has_y else None)
                acc.add(torch.stack(buf_x), yy, np.asarray(buf_i))
                buf_x.clear(), buf_y.clear(), buf_i.clear()

        for i in range(n):
            try:
                item = ds[i]
                if isinstance(item, (tuple, list)) and len(item) >= 2:
                    xi, yi = _as_tensor(item[0]), item[1]
                    yi = yi.numpy() if isinstance(yi, torch.Tensor) else yi
                else:
                    xi, yi = _as_tensor(item), None
            except Exception as exc:  # the user's data raising is a finding, not a crash
                failed.append((i, f"{type(exc).__name__}: {exc}"))
                ticker(i + 1)
                continue
            if buf_x and tuple(xi.shape) != tuple(buf_x[0].shape):
                flush()
            buf_x.append(xi), buf_y.append(yi), buf_i.append(i)
            if len(buf_x) >= 512:
                flush()
            ticker(i + 1)
        flush()
    scan = acc.finish(n, source, failed)
    if source == "stored" and sample_model_input:
        scan.model_input = sample_channel_stats(ds, kind, sample_model_input, tick)
    return scan


def _same_shapes(values: list[Any]) -> bool:
    shapes = {np.shape(v) for v in values}
    return len(shapes) == 1


def sample_channel_stats(ds: Any, kind: str, k: int, tick: TickFn | None = None) -> ChannelStats | None:
    """Per-channel stats of up to ``k`` evenly spaced samples as ``ds[i]`` returns them (transforms applied)."""
    n = len(ds)
    if not n:
        return None
    stats = None
    for i in np.linspace(0, n - 1, min(k, n)).round().astype(int):
        if tick is not None:
            tick("", 0, 0)
        try:
            x = _as_tensor(ds[int(i)][0]).to(torch.float32)
        except Exception:
            continue
        c = _channels_of(tuple(x.shape), kind) or 1
        if stats is None:
            stats = ChannelStats.empty(c)
        if x.numel() % c or len(stats.count) != c or not bool(torch.isfinite(x).all()):
            continue
        stats.add(x.reshape(1, c, -1))
    return stats


def scan_splits(splits: Any, tick: TickFn | None = None) -> dict[str, SplitScan]:
    """Scan every split of a ``Splits``; keys are split names in order (train, val[, test])."""
    info = splits.info
    vocab = len(info.vocab) if info.vocab else (info.num_classes if info.kind == "sequence" else None)
    out = {}
    for name, ds in splits.items():
        out[name] = scan_split(name, ds, info.kind, ignore_index=info.ignore_index, vocab_size=vocab, tick=tick)
    # Tabular columns live on different scales: standardise the embedding with pooled statistics.
    embs = [s.emb for s in out.values() if s.emb is not None and s.kind == "tabular"]
    if embs:
        allv = np.concatenate(embs)
        mu, sd = np.nanmean(allv, 0), np.nanstd(allv, 0)
        sd[~(sd > 0)] = 1.0
        for s in out.values():
            if s.emb is not None:
                s.emb = ((s.emb - mu) / sd).astype(np.float32)
    return out
