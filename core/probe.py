"""Prediction dynamics: what the model predicts for a fixed handful of validation examples, at every evaluation.

Classifiers: the class probabilities of the first ``n`` validation examples. Language models: ``n`` sequences
sampled from the model (names for ``names-lm``), each from the first token of a validation sequence, with a
generator seeded the same way at every evaluation, so that what changes between evaluations is the model.
Regression: targets and predictions. Nothing here draws from the global RNG: training stays reproducible.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from .data import head
from .events import Predictions
from .tasks import Task, first_tensor

if TYPE_CHECKING:
    from .data import DataInfo

MAX_CLASSES = 20  # more classes than this: the top ones only
TOP = 5
SAMPLE_SEED = 0


class PredictionProbe:
    def __init__(self, task: Task, val_data: Dataset, n: int, info: "DataInfo | None" = None) -> None:
        self.task, self.info = task, info
        self.x, self.y = head(val_data, n)
        self.n = len(self.x)

    def __call__(self, model: nn.Module, step: int, prepare: Callable[[torch.Tensor, torch.Tensor], tuple],
                 device: torch.device) -> Predictions:
        """Call in eval mode under ``no_grad``; ``prepare`` is the trainer's batch cast."""
        x, y = prepare(self.x.to(device), self.y.to(device))
        if self.task.sequence:
            return Predictions(step=step, kind="text", examples=self._sample_text(model, x))
        out = first_tensor(model(x)).float()
        if self.task.classes:
            return Predictions(step=step, kind="classes", examples=self._classes(out, y))
        return Predictions(step=step, kind="values", examples=[
            {"index": i, "target": _short(y[i]), "prediction": _short(out[i])} for i in range(len(out))])

    def _classes(self, out: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
        probs = F.softmax(out, dim=-1).cpu()
        rows = []
        for i, p in enumerate(probs):
            row: dict[str, Any] = {"index": i, "label": int(y[i]), "predicted": int(p.argmax())}
            if len(p) <= MAX_CLASSES:
                row["probs"] = [round(float(v), 4) for v in p]
            else:
                top = p.topk(TOP)
                row["top"] = {str(int(c)): round(float(v), 4) for v, c in zip(top.values, top.indices)}
                row["p_label"] = round(float(p[int(y[i])]), 4) if 0 <= int(y[i]) < len(p) else None
            rows.append(row)
        return rows

    def _sample_text(self, model: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
        """Sample up to the sequence length; when every prompt is the same token (names' '.', which starts and
        ends every name), a sample ends where it produces that token again."""
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        length = x.shape[1]
        seq = x[:, :1]
        delimiter = int(seq[0, 0]) if bool((seq == seq[0, 0]).all()) else None
        done = torch.zeros(len(seq), dtype=torch.bool)
        for _ in range(length - 1):
            logits = first_tensor(model(seq))[:, -1].float().cpu()
            nxt = self.task.sample(logits, generator)
            seq = torch.cat([seq, nxt.to(seq.device, seq.dtype)[:, None]], dim=1)
            if delimiter is not None:
                done |= nxt == delimiter
                if bool(done.all()):
                    break
        return [self._decoded(row.tolist(), delimiter) for row in seq.cpu()]

    def _decoded(self, ids: list[int], delimiter: int | None) -> dict[str, Any]:
        body = ids[1:]
        if delimiter is not None and delimiter in body:
            body = body[:body.index(delimiter)]
        vocab = self.info.vocab if self.info is not None else None
        text = "".join(vocab[i] if 0 <= i < len(vocab) else "·" for i in body) if vocab else " ".join(map(str, body))
        return {"text": text, "tokens": ids}


def _short(t: torch.Tensor, limit: int = 8) -> list[float]:
    return [round(float(v), 5) for v in t.reshape(-1)[:limit]]
