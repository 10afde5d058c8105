"""After training: the validation samples with the largest loss, and the confusion matrix
(fastai's ``plot_top_losses`` / ``most_confused``), as plain data for the terminal to draw."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .progress import Ticker, TickFn
from ..data import iter_batches
from ..tasks import IGNORE_INDEX, Task, first_tensor, task_of


@dataclass(frozen=True)
class SampleLosses:
    """One row per sample, in dataset order."""

    loss: np.ndarray  # (n,) per-sample loss (language models: mean over non-ignored tokens)
    given: np.ndarray  # (n,) classification: the label; otherwise empty
    predicted: np.ndarray  # (n,) classification: argmax class; otherwise empty
    confidence: np.ndarray  # (n,) classification: p(predicted); otherwise empty
    prob_given: np.ndarray  # (n,) classification: p(given); otherwise empty
    token_pairs: np.ndarray | None = None  # language models: (m, 2) (target, predicted) token pairs


def per_sample_losses(model: nn.Module, ds: Dataset, task: str | Task, device: torch.device | str | None = None,
                      batch_size: int = 512, tick: TickFn | None = None) -> SampleLosses:
    """Evaluate ``model`` (in eval mode, restored afterwards) on every sample of ``ds``."""
    task = task_of(task)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses, given, pred, conf, pgiven, pairs = [], [], [], [], [], []
    ticker = Ticker(tick, "per-sample losses", len(ds))
    done = 0
    try:
        with torch.no_grad():
            for x, y in iter_batches(ds, batch_size):
                x, y = x.to(device), y.to(device)
                out = first_tensor(model(x)).float()
                losses.append(task.per_sample_loss(out, y))
                if task.example_labels:
                    lp_given = -losses[-1]
                    top, arg = F.log_softmax(out, dim=-1).max(1)
                    given.append(y), pred.append(arg), conf.append(top.exp()), pgiven.append(lp_given.exp())
                elif task.sequence:
                    keep = y != IGNORE_INDEX
                    pairs.append(torch.stack([y[keep], task.predict(out)[keep]], 1))
                done += len(y)
                ticker(done)
    finally:
        model.train(was_training)
    cat = lambda v: torch.cat(v).cpu().numpy() if v else np.zeros(0)  # noqa: E731
    return SampleLosses(loss=cat(losses).astype(np.float64), given=cat(given).astype(np.int64),
                        predicted=cat(pred).astype(np.int64), confidence=cat(conf).astype(np.float64),
                        prob_given=cat(pgiven).astype(np.float64),
                        token_pairs=cat(pairs).astype(np.int64) if pairs else None)


def top_losses(losses: SampleLosses, k: int = 25, split: str = "val") -> list[dict[str, Any]]:
    """The ``k`` samples with the largest loss, largest first: ``{"split","index","loss", …}``."""
    order = np.argsort(-losses.loss, kind="stable")[:k]
    rows = []
    for i in order:
        row: dict[str, Any] = {"split": split, "index": int(i), "loss": round(float(losses.loss[i]), 6)}
        if len(losses.given):
            row.update(given=int(losses.given[i]), predicted=int(losses.predicted[i]),
                       confidence=round(float(losses.confidence[i]), 6), prob_given=round(float(losses.prob_given[i]), 6))
        rows.append(row)
    return rows


def confusion_matrix(given: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """C[i][j]: samples of class i predicted as j."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    ok = (given >= 0) & (given < num_classes) & (predicted >= 0) & (predicted < num_classes)
    np.add.at(cm, (given[ok], predicted[ok]), 1)
    return cm


def most_confused(cm: np.ndarray, class_names: tuple[str, ...] | list[str] = (), min_count: int = 1,
                  k: int = 10) -> list[dict[str, Any]]:
    """Off-diagonal cells of the confusion matrix, largest first: ``{"given","predicted","count"}``."""
    names = list(class_names) if len(class_names) == len(cm) else [str(i) for i in range(len(cm))]
    off = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i, j] >= min_count]
    off.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [{"given": names[i], "predicted": names[j], "count": c} for c, i, j in off[:k]]


def after_training_findings(model: nn.Module, splits: Any, task: str | Task, k: int = 100, split: str = "val",
                            device: torch.device | str | None = None, tick: TickFn | None = None) -> dict[str, Any]:
    """What the sample browser shows under "loss": top losses, the confusion matrix and the most confused pairs."""
    ds = dict(splits.items())[split]
    info = splits.info
    task = task_of(task)
    losses = per_sample_losses(model, ds, task, device=device, tick=tick)
    out: dict[str, Any] = {"split": split, "top_losses": top_losses(losses, k, split),
                           "mean_loss": round(float(losses.loss.mean()), 6) if len(losses.loss) else None}
    pairs = None  # (given, predicted) per example, or per token for language models
    if task.example_labels:
        pairs = (losses.given, losses.predicted)
    elif losses.token_pairs is not None:
        pairs = (losses.token_pairs[:, 0], losses.token_pairs[:, 1])
    if pairs is not None and info.num_classes:
        cm = confusion_matrix(*pairs, info.num_classes)
        names = tuple(info.vocab) if task.sequence and info.vocab else info.class_names
        out.update(confusion=cm.tolist(), most_confused=most_confused(cm, names),
                   accuracy=round(float(np.trace(cm) / max(1, cm.sum())), 6))
    return out
