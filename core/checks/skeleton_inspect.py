"""Stage 2 checks that look rather than train: the batch the net sees, dumb baselines, eval mode, output range."""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ..data import TensorPairs, iter_batches
from ..events import CheckResult
from . import check, result
from .context import CheckContext
from .skeleton_common import eval_split, first_batch, fmt, is_lm, names_list, num, output_of, stats, train_batches
from .skeleton_training import looks_like_probabilities

SAMPLES = 8  # examples put in batch-view's metrics for the TUI
IMAGE_SIDE = 32  # larger images are downsampled to this for the TUI payload
MAX_FEATURES = 1024  # baselines: images are pooled down to at most this many features
MAX_FIT = 5000  # baselines: training examples used to fit the linear model
MAX_BIGRAM_VOCAB = 4096  # baselines: larger vocabularies get the unigram baseline only


# ---------------------------------------------------------------------------------------------- batch-view


def _rounded(t: torch.Tensor, digits: int = 3) -> Any:
    return torch.round(t.double() * 10**digits).div(10**digits).tolist()


def _sample_payload(x: torch.Tensor, y: torch.Tensor, kind: str, info: Any) -> list[dict[str, Any]]:
    def decode(ids: list[int]) -> str:
        if info.vocab:
            return "".join(info.vocab[i] if 0 <= i < len(info.vocab) else "·" for i in ids)
        return " ".join(map(str, ids))

    items = []
    for i in range(min(SAMPLES, len(x))):
        xi, yi = x[i].detach().cpu(), y[i].detach().cpu()
        item: dict[str, Any] = {}
        if kind == "image" and xi.dim() == 3 and xi.is_floating_point():
            if xi.shape[1] > IMAGE_SIDE or xi.shape[2] > IMAGE_SIDE:
                xi = F.adaptive_avg_pool2d(xi.float().unsqueeze(0), (min(IMAGE_SIDE, xi.shape[1]), min(IMAGE_SIDE, xi.shape[2])))[0]
            item["x"] = _rounded(xi)
        elif not xi.is_floating_point():
            ids = [int(v) for v in xi.reshape(-1)[:256]]
            item["x"] = ids
            item["text"] = decode(ids)
        else:
            item["x"] = _rounded(xi.reshape(-1)[:64])
        if yi.dim() == 0:
            item["y"] = int(yi) if not yi.is_floating_point() else num(yi)
            if info.class_names and not yi.is_floating_point() and 0 <= int(yi) < len(info.class_names):
                item["label"] = info.class_names[int(yi)]
        elif not yi.is_floating_point():
            ids = [int(v) for v in yi.reshape(-1)[:256]]
            item["y"] = ids
            item["target_text"] = decode([v for v in ids if v != info.ignore_index])
        else:
            item["y"] = _rounded(yi.reshape(-1)[:64])
        items.append(item)
    return items


@check("batch-view", "Visualise just before the net")
def batch_view(ctx: CheckContext) -> CheckResult:
    info = ctx.splits().info
    x, y = next(train_batches(ctx, ctx.exp.train.batch_size))  # the trainer's own first batch
    model = ctx.new_model()
    model.train()
    captured: dict[str, Any] = {}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.setdefault("x", args[0] if args else next(iter(kwargs.values()), None))

    handle = model.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    xin = captured.get("x")
    if not isinstance(xin, torch.Tensor):
        return result("batch-view", "skip", f"the model's input is {type(xin).__name__}, not a tensor.")
    xin, y = xin.detach().cpu(), y.detach().cpu()
    metrics: dict[str, Any] = {"kind": info.kind, "batch": len(xin), "x_shape": list(xin.shape),
                               "x_dtype": str(xin.dtype).replace("torch.", ""), "y_shape": list(y.shape),
                               "y_dtype": str(y.dtype).replace("torch.", "")}
    problems: list[tuple[str, str, str]] = []  # (status, what, hint)
    if xin.is_floating_point():
        xf = xin.double()
        finite = torch.isfinite(xf)
        metrics["non_finite"] = int((~finite).sum())
        xv = xf[finite] if not bool(finite.all()) else xf
        if xv.numel():
            metrics.update(x_min=num(xv.min()), x_max=num(xv.max()), x_mean=num(xv.mean()), x_std=num(xv.std()))
        if xin.dim() >= 2:
            per = xf.transpose(0, 1).reshape(xf.shape[1], -1) if xin.dim() >= 3 else xf.T
            metrics["channel_mean"] = [num(v, 4) for v in per.mean(1)[:64]]
            metrics["channel_std"] = [num(v, 4) for v in per.std(1)[:64]]
        if metrics["non_finite"]:
            problems.append(("fail", f"{metrics['non_finite']} non-finite values (NaN/Inf) in the batch",
                             "Find where NaN/Inf enter: a division by a zero std in normalisation, a corrupt file (data-stats)."))
        elif xv.numel() and float(xv.std()) == 0:
            problems.append(("fail", f"every value in the batch is {fmt(float(xv[0]))}",
                             "The pipeline produces a constant: check loading and normalisation."))
        elif xv.numel() and float(xv.abs().max()) > 50:
            problems.append(("warn", f"values reach {fmt(float(xv.abs().max()))}: the inputs look unnormalised",
                             "Normalise the inputs (e.g. pixels/255, then subtract the mean and divide by the std per channel)."))
    else:
        metrics.update(x_min=int(xin.min()), x_max=int(xin.max()), distinct=int(xin.unique().numel()))
        if info.num_classes and is_lm(ctx) and int(xin.max()) >= info.num_classes:
            problems.append(("fail", f"token id {int(xin.max())} is outside the vocabulary of {info.num_classes}",
                             "Check the tokenizer/vocabulary size the model is built with."))
    if len(xin) >= 2 and all(torch.equal(xin[0], xin[i]) for i in range(1, len(xin))):
        problems.append(("fail", f"all {len(xin)} examples in the batch are identical",
                         "The dataset returns the same example whatever the index: check __getitem__."))
    task = ctx.exp.task
    if task == "classification" and not y.is_floating_point():
        counts = torch.bincount(y.reshape(-1).clamp(min=0), minlength=info.num_classes or 0)
        metrics["label_counts"] = [int(c) for c in counts[:100]]
        if info.num_classes and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
            problems.append(("fail", f"labels range over {int(y.min())}..{int(y.max())} but there are {info.num_classes} classes",
                             "Labels must be 0..C−1: remap them."))
        elif len(y) >= 16 and (info.num_classes or 0) > 1 and int((counts > 0).sum()) == 1:
            problems.append(("warn", f"all {len(y)} labels in the batch are '{int(y[0])}'",
                             "Are the labels right, or is the data sorted by class and not shuffled?"))
    if task == "language-model" and not xin.is_floating_point() and xin.shape == y.shape and xin.dim() == 2:
        keep = y != info.ignore_index
        metrics["padding_fraction"] = num(1 - float(keep.double().mean()), 4)
        same = float(((y == xin) & keep).sum()) / max(1, int(keep.sum()))
        shifted = float(((y[:, :-1] == xin[:, 1:]) & keep[:, :-1]).sum()) / max(1, int(keep[:, :-1].sum()))
        metrics.update(targets_equal_inputs=num(same, 4), targets_are_next_inputs=num(shifted, 4))
        if same > 0.95 and shifted < 0.5:
            problems.append(("fail", f"the targets equal the inputs at {same:.0%} of positions",
                             "The model would learn to copy its input: targets must be the inputs shifted by one (y[t] = x[t+1])."))
    metrics["samples"] = _sample_payload(xin, y, info.kind, info)
    if info.class_names:
        metrics["class_names"] = list(info.class_names[:100])
    desc = f"batch of {len(xin)}: x {metrics['x_dtype']} {tuple(xin.shape)}"
    if "x_mean" in metrics:
        desc += (f" in [{fmt(float(metrics['x_min']))}, {fmt(float(metrics['x_max']))}], mean {fmt(float(metrics['x_mean']))} "
                 f"std {fmt(float(metrics['x_std']))}")
    elif "distinct" in metrics:
        desc += f" ids {metrics['x_min']}..{metrics['x_max']}"
    desc += f"; y {metrics['y_dtype']} {tuple(y.shape)}"
    if problems:
        status = "fail" if any(p[0] == "fail" for p in problems) else "warn"
        return result("batch-view", status, f"{desc}: " + "; ".join(p[1] for p in problems) + ".", metrics,
                      " ".join(p[2] for p in problems))
    return result("batch-view", "pass", desc + ".", metrics,
                  "Look at the samples: this is exactly what enters y_hat = model(x) in training.")


# ---------------------------------------------------------------------------------------------- baselines


def _batches(ds: Dataset, limit: int | None = None, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if limit is not None and len(ds) > limit:  # a seeded sample: deterministic and bounded
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:limit]
        if isinstance(ds, TensorPairs):
            ds = TensorPairs(ds.x[idx], ds.y[idx])
        else:
            ds = Subset(ds, idx.tolist())
    yield from iter_batches(ds, batch_size)


class _Featurizer:
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


def _collect(ctx: CheckContext, ds: Dataset, feat: _Featurizer, task: str, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    total = min(len(ds), limit or len(ds))
    for x, y in _batches(ds, limit):
        ctx.tick(task, sum(len(v) for v in ys), total)
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


@check("baselines", "Dumb baselines")
def baselines(ctx: CheckContext) -> CheckResult:
    split, ds = eval_split(ctx)
    splits = ctx.splits()
    task = ctx.exp.task
    metrics: dict[str, Any] = {"split": split, "examples": len(ds)}
    if task == "language-model":
        metrics.update(_lm_baselines(ctx, ds))
        summary = (f"on the entire {split} set ({metrics['tokens']} tokens): unigram loss {fmt(metrics['unigram_loss'])} "
                   f"accuracy {metrics['unigram_accuracy']:.1%}")
        if "bigram_loss" in metrics:
            summary += f"; bigram (linear on the current token) loss {fmt(metrics['bigram_loss'])} accuracy {metrics['bigram_accuracy']:.1%}"
    else:
        tokens = not torch.as_tensor(splits.train[0][0]).is_floating_point()
        feat = _Featurizer(2048 if tokens else 0)  # bag of tokens; larger ids wrap around (hashing)
        xtr, ytr = _collect(ctx, splits.train, feat, "baselines: training data", MAX_FIT)
        xev, yev = _collect(ctx, ds, feat, f"baselines: {split} set")
        mu, sd = xtr.mean(0), xtr.std(0)
        sd[sd < 1e-6] = 1.0  # a feature constant in train (e.g. a blank border pixel) stays centred, not blown up
        xtr, xev = (xtr - mu) / sd, (xev - mu) / sd
        metrics["features"] = xtr.shape[1]
        metrics["fit_examples"] = len(xtr)
        if task == "classification":
            metrics.update(_classification_baselines(ctx, xtr, ytr.long(), xev, yev.long()))
            summary = (f"on the entire {split} set ({len(ds)} examples): majority class accuracy {metrics['majority_accuracy']:.1%} "
                       f"(loss {fmt(metrics['majority_loss'])}), linear model accuracy {metrics['linear_accuracy']:.1%} "
                       f"(loss {fmt(metrics['linear_loss'])})")
        else:
            metrics.update(_regression_baselines(xtr, ytr, xev, yev))
            summary = (f"on the entire {split} set ({len(ds)} examples): mean predictor MSE {fmt(metrics['mean_mse'])}, "
                       f"linear model MSE {fmt(metrics['linear_mse'])} (R² {fmt(metrics['linear_r2'])})")
    run = _last_run(ctx)
    metrics.update(run)
    if "model_accuracy" in run or "model_val_loss" in run:
        parts = []
        if "model_val_loss" in run:
            parts.append(f"val loss {fmt(float(run['model_val_loss']))}")
        if "model_accuracy" in run:
            parts.append(f"val accuracy {float(run['model_accuracy']):.1%}")
        summary += f"; your last run: {', '.join(parts)}"
    return result("baselines", "pass", summary + ".", metrics,
                  "Every model you train must beat these; evaluate on the entire test set, not a few batches.")


def _classification_baselines(ctx: CheckContext, xtr: torch.Tensor, ytr: torch.Tensor, xev: torch.Tensor,
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


def _regression_baselines(xtr: torch.Tensor, ytr: torch.Tensor, xev: torch.Tensor, yev: torch.Tensor) -> dict[str, Any]:
    ytr, yev = ytr.double().reshape(len(ytr), -1), yev.double().reshape(len(yev), -1)
    mean = ytr.mean(0)
    mean_mse = float(((yev - mean) ** 2).mean())
    a = torch.cat([xtr, torch.ones(len(xtr), 1, dtype=torch.float64)], 1)
    lam = 1e-3 * float((a * a).sum()) / a.shape[1] / max(1, len(a))
    w = torch.linalg.solve(a.T @ a + lam * len(a) * torch.eye(a.shape[1], dtype=torch.float64), a.T @ ytr)
    pred = torch.cat([xev, torch.ones(len(xev), 1, dtype=torch.float64)], 1) @ w
    mse = float(((yev - pred) ** 2).mean())
    return {"mean_mse": num(mean_mse), "linear_mse": num(mse), "linear_r2": num(1 - mse / max(mean_mse, 1e-300))}


def _lm_baselines(ctx: CheckContext, ds: Dataset) -> dict[str, Any]:
    """Unigram (the token prior) and bigram (a linear model on the one-hot current token, fitted by counting)."""
    info = ctx.splits().info
    st = stats(ctx)
    vocab = len(st.counts)
    ignore = info.ignore_index
    out: dict[str, Any] = {}
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
    out.update(tokens=n, unigram_loss=num(uni_loss / max(1, n)), unigram_accuracy=num(uni_right / max(1, n)))
    if tokens_x:
        out.update(bigram_loss=num(bi_loss / max(1, n)), bigram_accuracy=num(bi_right / max(1, n)))
    return out


# ---------------------------------------------------------------------------------------------- eval-mode


@check("eval-mode", "Eval mode is deterministic")
def eval_mode(ctx: CheckContext) -> CheckResult:
    model = ctx.new_model()
    x, _ = first_batch(ctx, ctx.exp.checks.batch_size)
    with torch.no_grad():
        model.train()
        output_of(model, x)  # one training forward, so that BatchNorm's running statistics are not at their init
        model.eval()
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ctx.tick("eval-mode", 0, 2)
        a = output_of(model, x).detach().clone()
        ctx.tick("eval-mode", 1, 2)
        b = output_of(model, x).detach().clone()
    after = model.state_dict()
    changed = [k for k, v in before.items() if k in after and not torch.equal(v, after[k].detach())]
    still_training = [n or type(m).__name__ for n, m in model.named_modules() if m.training]
    diff = float((a.double() - b.double()).abs().max()) if a.shape == b.shape else float("inf")
    scale = float(a.double().abs().max()) if a.numel() else 0.0
    differ = not (diff <= 1e-6 * scale + 1e-12) if math.isfinite(diff) else not torch.equal(a, b)
    metrics: dict[str, Any] = {"max_abs_diff": num(diff), "output_scale": num(scale), "changed_state": changed[:50],
                               "modules_left_in_train_mode": still_training[:50]}
    problems, hints = [], []
    if not bool(torch.isfinite(a).all()):
        problems.append("the eval-mode outputs contain NaN/Inf")
        hints.append("Look for log(0), division by zero or a BatchNorm running variance that became NaN.")
    elif differ:
        problems.append(f"two eval-mode forward passes of the same batch differ by up to {fmt(diff)} "
                        f"(outputs up to {fmt(scale)})")
        hints.append("Something random is active in eval mode: F.dropout(x, training=True) or p=… without "
                     "training=self.training, noise added unconditionally, or a Dropout kept in a plain list instead of "
                     "an nn.ModuleList (model.eval() never reaches it).")
    if changed:
        problems.append(f"an eval pass changed the model's state: {names_list(changed)}")
        hints.append("Eval must not update BatchNorm statistics: F.batch_norm(..., training=True) or a module that "
                     "forces self.training; use the module's own training flag.")
    if still_training:
        problems.append(f"modules in train mode after model.eval() and a forward: {names_list(still_training)}")
        hints.append("A forward pass sets .train() on a submodule; remove that.")
    if problems:
        return result("eval-mode", "fail", "; ".join(problems) + ".", metrics, " ".join(hints))
    return result("eval-mode", "pass", f"two eval-mode passes of {len(x)} examples agree exactly and leave the model's "
                  f"{len(before)} state tensors unchanged.", metrics,
                  "In eval mode dropout is off and BatchNorm uses its running statistics.")


# ---------------------------------------------------------------------------------------------- output-range


@check("output-range", "Outputs are logits")
def output_range(ctx: CheckContext) -> CheckResult:
    task = ctx.exp.task
    info = ctx.splits().info
    model = ctx.new_model()
    x, y = first_batch(ctx, ctx.exp.checks.batch_size)
    model.eval()
    with torch.no_grad():
        out = output_of(model, x).detach().double()
    metrics: dict[str, Any] = {"output_shape": list(out.shape), "min": num(out.min()), "max": num(out.max())}
    notes: list[str] = []
    problems: list[tuple[str, str, str]] = []
    if not bool(torch.isfinite(out).all()):
        problems.append(("fail", "the outputs at init contain NaN/Inf", "Look for log(0) or division by zero in the forward pass."))
    elif task in ("classification", "language-model"):
        classes = int(info.num_classes or 0)
        want = (len(y), classes) if task == "classification" else (*y.shape, classes)
        if classes and tuple(out.shape) != tuple(want):
            if out.shape[-1] < classes or tuple(out.shape[:-1]) != tuple(want[:-1]):
                problems.append(("fail", f"the output has shape {tuple(out.shape)}, the loss needs {tuple(want)}",
                                 "Make the last layer produce one logit per class (per position for language models)."))
            else:
                problems.append(("warn", f"the model has {out.shape[-1]} outputs for {classes} classes",
                                 "The extra outputs only absorb probability mass: build the last layer with num_classes outputs."))
        if looks_like_probabilities(out):
            metrics["looks_like"] = "probabilities"
            problems.append(("warn", "the outputs are non-negative and sum to 1 over the classes: they look like "
                             "probabilities, but cross-entropy expects logits",
                             "Remove the softmax at the end of the model (F.cross_entropy applies log-softmax itself); a "
                             "softmax before it caps how low the loss can go (see overfit-batch)."))
        elif float(out.min()) >= 0 and out.shape[-1] > 1:
            bounded = float(out.max()) <= 1
            metrics["looks_like"] = "in [0, 1]" if bounded else "non-negative"
            problems.append(("warn", f"all outputs are {'in [0, 1]' if bounded else '≥ 0'}: a "
                             f"{'sigmoid or ReLU' if bounded else 'ReLU'} after the last layer? cross-entropy expects "
                             "unbounded logits",
                             "Remove the final activation: the last layer's raw output goes into the loss (a final ReLU "
                             "can also die and leave every output at 0)."))
        elif float(out.max()) <= 1e-6 and (out.logsumexp(-1)).abs().max() < 1e-4:
            metrics["looks_like"] = "log-probabilities"
            notes.append("outputs are log-probabilities (log_softmax): harmless before cross-entropy, which is idempotent on them")
    else:  # regression: the loss squeezes a trailing 1 and must not broadcast
        o = out.squeeze(-1) if out.dim() == y.dim() + 1 and out.shape[-1] == 1 else out
        if tuple(o.shape) != tuple(y.shape):
            problems.append(("fail", f"the output has shape {tuple(out.shape)} and the targets {tuple(y.shape)}: the MSE loss "
                             "broadcasts them into a matrix", "Make the output shape match the targets (e.g. out.squeeze(-1) or y.unsqueeze(-1))."))
    bn = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    n_train, bs = len(ctx.splits().train), ctx.exp.train.batch_size
    metrics.update(batchnorm_layers=len(bn), train_size=n_train, batch_size=bs, last_batch=n_train % bs)
    if bn:
        if n_train == 1 or bs == 1:
            problems.append(("warn", "BatchNorm layers will see batches of one example",
                             "BatchNorm cannot normalise a batch of one (its variance is 0): use a larger batch or GroupNorm/LayerNorm."))
        elif n_train % bs == 1:
            notes.append(f"{n_train} training examples % batch size {bs} = 1: a last batch of one would break BatchNorm, but "
                         "the trainer drops the last incomplete batch (a different example each epoch), so it never sees it; "
                         "a DataLoader of your own needs drop_last=True")
    if problems:
        status = "fail" if any(p[0] == "fail" for p in problems) else "warn"
        return result("output-range", status, "; ".join(p[1] for p in problems) + (f" ({'; '.join(notes)})" if notes else "") + ".",
                      metrics, " ".join(p[2] for p in problems))
    summary = f"outputs {tuple(out.shape)} range over [{fmt(float(out.min()))}, {fmt(float(out.max()))}]"
    summary += ": unbounded logits, as the loss expects" if task != "regression" else ", shaped like the targets"
    return result("output-range", "pass", summary + (f"; {'; '.join(notes)}" if notes else "") + ".", metrics,
                  "The loss gets what it expects.")
