"""Stage 2, "dumb baselines": on the entire test (else val) split, what a model gets without learning much —
the majority class and a linear model (classification), the mean and a linear model (regression), unigram
and bigram predictors (language models) — beside the last training run's numbers."""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ..data import TensorPairs, iter_batches
from .common import eval_split, fmt, num, stats
from .context import CheckContext
from .verdict import Verdict

MAX_FEATURES = 1024  # images are pooled down to at most this many features
MAX_FIT = 5000  # training examples used to fit the linear model
MAX_BIGRAM_VOCAB = 4096  # larger vocabularies get the unigram baseline only
HINT = "Every model you train must beat these; evaluate on the entire test set, not a few batches."


def _batches(ds: Dataset, limit: int | None = None, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if limit is not None and len(ds) > limit:  # a seeded sample: deterministic and bounded
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:limit]
        if isinstance(ds, TensorPairs):
            ds = TensorPairs(ds.x[idx], ds.y[idx])
        else:
            ds = Subset(ds, idx.tolist())
    yield from iter_batches(ds, batch_size)


class Featurizer:
    """Flat float features for a linear model: images pooled to ≤ MAX_FEATURES, token ids as bags of tokens."""

    def __init__(self, vocab: int = 0) -> None:
        self.vocab = vocab

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.long().reshape(len(x), -1)
            size = max(self.vocab, 1)
            out = torch.zeros(len(x), size, dtype=torch.float64)
            return out.scatter_add_(1, x.clamp(min=0) % size, torch.ones_like(x, dtype=torch.float64))
        x = x.double()
        if x.dim() == 4 and x[0].numel() > MAX_FEATURES:
            side = max(1, int(math.sqrt(MAX_FEATURES / x.shape[1])))
            x = F.adaptive_avg_pool2d(x, (min(side, x.shape[2]), min(side, x.shape[3])))
        return x.reshape(len(x), -1)


def _collect(ctx: CheckContext, ds: Dataset, feat: Featurizer, label: str,
             limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    total = min(len(ds), limit or len(ds))
    for x, y in _batches(ds, limit):
        ctx.tick(label, sum(len(v) for v in ys), total)
        xs.append(feat(x))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def _fit_softmax(ctx: CheckContext, x: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, full batch L-BFGS with a little L2: deterministic and quick."""
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=100, history_size=10, line_search_fn="strong_wolfe")
    calls = [0]

    def closure() -> torch.Tensor:
        ctx.tick("baselines: fitting the linear model", min(calls[0], 99), 100)
        calls[0] += 1
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 1e-4 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _last_run(ctx: CheckContext) -> dict[str, Any]:
    """The final validation numbers of the newest training run of this recipe, to compare against."""
    from ..jobs import latest_run
    from ..rundir import read_events

    try:
        path = latest_run(ctx.runs_root, ctx.exp.name)
        if path is None:
            return {}
        final = [e for e in read_events(path / "events.jsonl") if e.type == "finished"]
        if not final:
            return {}
        out = {"model_run": str(path)}
        for k, v in final[-1].final.items():
            if isinstance(v, (int, float)):
                out[f"model_{k}"] = num(v)
        return out
    except Exception:  # a comparison only: an unreadable run dir must not fail the check
        return {}


def check(ctx: CheckContext) -> Verdict:
    split, ds = eval_split(ctx)
    metrics: dict[str, Any] = {"split": split, "examples": len(ds)}
    if ctx.task.sequence:
        metrics.update(lm_baselines(ctx, ds))
        summary = (f"on the entire {split} set ({metrics['tokens']} tokens): unigram loss {fmt(metrics['unigram_loss'])} "
                   f"accuracy {metrics['unigram_accuracy']:.1%}")
        if "bigram_loss" in metrics:
            summary += (f"; bigram (linear on the current token) loss {fmt(metrics['bigram_loss'])} accuracy "
                        f"{metrics['bigram_accuracy']:.1%}")
    else:
        summary = linear_baselines(ctx, split, ds, metrics)
    run = _last_run(ctx)
    metrics.update(run)
    if "model_accuracy" in run or "model_val_loss" in run:
        parts = []
        if "model_val_loss" in run:
            parts.append(f"val loss {fmt(float(run['model_val_loss']))}")
        if "model_accuracy" in run:
            parts.append(f"val accuracy {float(run['model_accuracy']):.1%}")
        summary += f"; your last run: {', '.join(parts)}"
    return Verdict("pass", summary + ".", metrics, HINT)


def linear_baselines(ctx: CheckContext, split: str, ds: Dataset, metrics: dict[str, Any]) -> str:
    """A constant predictor and a linear model on (pooled) input features; fills ``metrics``, returns the summary."""
    splits = ctx.splits()
    tokens = not torch.as_tensor(splits.train[0][0]).is_floating_point()
    feat = Featurizer(2048 if tokens else 0)  # bag of tokens; larger ids wrap around (hashing)
    xtr, ytr = _collect(ctx, splits.train, feat, "baselines: training data", MAX_FIT)
    xev, yev = _collect(ctx, ds, feat, f"baselines: {split} set")
    mu, sd = xtr.mean(0), xtr.std(0)
    sd[sd < 1e-6] = 1.0  # a feature constant in train (e.g. a blank border pixel) stays centred, not blown up
    xtr, xev = (xtr - mu) / sd, (xev - mu) / sd
    metrics["features"] = xtr.shape[1]
    metrics["fit_examples"] = len(xtr)
    if ctx.task.classes:
        metrics.update(classification_baselines(ctx, xtr, ytr.long(), xev, yev.long()))
        return (f"on the entire {split} set ({len(ds)} examples): majority class accuracy "
                f"{metrics['majority_accuracy']:.1%} (loss {fmt(metrics['majority_loss'])}), linear model accuracy "
                f"{metrics['linear_accuracy']:.1%} (loss {fmt(metrics['linear_loss'])})")
    metrics.update(regression_baselines(xtr, ytr, xev, yev))
    return (f"on the entire {split} set ({len(ds)} examples): mean predictor MSE {fmt(metrics['mean_mse'])}, "
            f"linear model MSE {fmt(metrics['linear_mse'])} (R² {fmt(metrics['linear_r2'])})")


def classification_baselines(ctx: CheckContext, xtr: torch.Tensor, ytr: torch.Tensor, xev: torch.Tensor,
                             yev: torch.Tensor) -> dict[str, Any]:
    st = stats(ctx)
    classes = max(len(st.counts), int(ytr.max()) + 1, int(yev.max()) + 1)
    log_prior = torch.full((classes,), -30.0, dtype=torch.float64)
    log_prior[: len(st.counts)] = st.log_prior()
    majority = int(st.counts.argmax())
    out = {"majority_class": majority, "majority_accuracy": num((yev == majority).double().mean()),
           "majority_loss": num(-log_prior[yev].mean())}
    w, b = _fit_softmax(ctx, xtr, ytr, classes)
    logits = xev @ w + b
    out.update(linear_accuracy=num((logits.argmax(1) == yev).double().mean()),
               linear_loss=num(F.cross_entropy(logits, yev)),
               linear_train_accuracy=num(((xtr @ w + b).argmax(1) == ytr).double().mean()))
    return out


def regression_baselines(xtr: torch.Tensor, ytr: torch.Tensor, xev: torch.Tensor, yev: torch.Tensor) -> dict[str, Any]:
    ytr, yev = ytr.double().reshape(len(ytr), -1), yev.double().reshape(len(yev), -1)
    mean = ytr.mean(0)
    mean_mse = float(((yev - mean) ** 2).mean())
    a = torch.cat([xtr, torch.ones(len(xtr), 1, dtype=torch.float64)], 1)
    lam = 1e-3 * float((a * a).sum()) / a.shape[1] / max(1, len(a))
    w = torch.linalg.solve(a.T @ a + lam * len(a) * torch.eye(a.shape[1], dtype=torch.float64), a.T @ ytr)
    pred = torch.cat([xev, torch.ones(len(xev), 1, dtype=torch.float64)], 1) @ w
    mse = float(((yev - pred) ** 2).mean())
    return {"mean_mse": num(mean_mse), "linear_mse": num(mse), "linear_r2": num(1 - mse / max(mean_mse, 1e-300))}


def lm_baselines(ctx: CheckContext, ds: Dataset) -> dict[str, Any]:
    """Unigram (the token prior) and bigram (a linear model on the one-hot current token, fitted by counting)."""
    info = ctx.splits().info
    st = stats(ctx)
    vocab = len(st.counts)
    ignore = info.ignore_index
    # A bigram table is vocab² numbers: fine for characters, not for a 50k-token vocabulary.
    tokens_x = not torch.as_tensor(ctx.splits().train[0][0]).is_floating_point() and vocab <= MAX_BIGRAM_VOCAB
    pair = torch.zeros(vocab, vocab, dtype=torch.float64) if tokens_x else torch.zeros(1, 1, dtype=torch.float64)
    if tokens_x:
        for x, y in _batches(ctx.splits().train, 20000):
            ctx.tick("baselines: counting bigrams")
            keep = (y != ignore) & (y >= 0) & (y < vocab) & (x >= 0) & (x < vocab)
            pair.view(-1).index_add_(0, (x[keep] * vocab + y[keep]).long(), torch.ones(int(keep.sum()), dtype=torch.float64))
    log_uni = st.log_prior()
    log_bi = ((pair + 0.1) / (pair + 0.1).sum(1, keepdim=True)).log()
    n = 0
    uni_loss = bi_loss = 0.0
    uni_right = bi_right = 0
    top = int(st.counts.argmax())
    for x, y in _batches(ds):
        ctx.tick("baselines: evaluating")
        keep = (y != ignore) & (y >= 0) & (y < vocab)
        yk = y[keep].long()
        n += len(yk)
        uni_loss -= float(log_uni[yk].sum())
        uni_right += int((yk == top).sum())
        if tokens_x:
            xk = x[keep].long().clamp(0, vocab - 1)
            bi_loss -= float(log_bi[xk, yk].sum())
            bi_right += int((log_bi[xk].argmax(1) == yk).sum())
    out = {"tokens": n, "unigram_loss": num(uni_loss / max(1, n)), "unigram_accuracy": num(uni_right / max(1, n))}
    if tokens_x:
        out.update(bigram_loss=num(bi_loss / max(1, n)), bigram_accuracy=num(bi_right / max(1, n)))
    return out
