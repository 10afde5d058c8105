"""The rungs of the regularization ladder (``[recipe.NAME.regularize]``): which changes apply to this experiment,
with which values, and why the others are skipped.

The recipe's order: data augmentation, dropout (dropout2d for convnets; careful with BatchNorm), weight decay, a
smaller batch (with BatchNorm), early stopping on validation loss. Built-in models take every change; a factory or
torchvision model gets what the recipe controls outside its code (augmentation of tensors, weight decay, batch
size, early stopping).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch.nn as nn

from .config import BUILTIN_MODELS, Experiment

if TYPE_CHECKING:
    from .data import DataInfo

BATCHNORM_NOTE = ("the model has BatchNorm: dropout before a BatchNorm layer shifts the variance it sees between "
                  "training and evaluation (the recipe: careful with BatchNorm)")


@dataclass(frozen=True)
class Rung:
    name: str  # baseline | augment | dropout | weight-decay | batch-size | early-stop
    label: str  # what the table shows: "dropout 0.3"
    change: dict[str, Any] = field(default_factory=dict)  # --set keys this rung sets on top of the kept ones
    note: str = ""
    skipped: str = ""  # why the rung does not apply here (then it is not trained)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def ladder(exp: Experiment, info: "DataInfo", model: nn.Module) -> list[Rung]:
    """The recipe itself, then every rung of ``regularize.rungs`` in order (skipped ones included, with why)."""
    bn = has_batchnorm(model)
    out = [Rung("baseline", "the recipe")]
    for name in exp.regularize.rungs:
        out += _RUNGS[name](exp, info, bn)
    return out


def _augment(exp: Experiment, info: "DataInfo", bn: bool) -> list[Rung]:
    from .augment import preset_for

    preset = exp.regularize.augmentation if exp.regularize.augmentation != "auto" else preset_for(info)
    if preset is None:
        return [Rung("augment", "augmentation", skipped=f"no augmentation preset for {info.kind} data (the recipe: "
                     "get more data, or write augmentation that keeps the label)")]
    if exp.data.augmentation == preset:
        return [Rung("augment", f"augmentation {preset}", skipped="the recipe already uses it")]
    return [Rung("augment", f"augmentation {preset}", {"data.augmentation": preset})]


def _dropout(exp: Experiment, info: "DataInfo", bn: bool) -> list[Rung]:
    m = exp.model
    if m.factory is not None or m.name not in BUILTIN_MODELS:
        why = ("a factory model: dropout lives in its code (nn.Dropout; nn.Dropout2d for convnets)" if m.factory
               else f"torchvision's {m.name}: where its builder has a dropout argument, set it in model.kwargs")
        return [Rung("dropout", "dropout", skipped=why)]
    if m.name in ("linear", "char-mlp"):
        return [Rung("dropout", "dropout", skipped=f"the built-in {m.name} has no dropout option")]
    key = "model.dropout2d" if m.name == "cnn" else "model.dropout"
    current = m.dropout2d if m.name == "cnn" else m.dropout
    word = key.split(".")[1]
    return [Rung("dropout", f"{word} {v:g}", {key: v}, note=BATCHNORM_NOTE if bn else "",
                 skipped="the recipe's value" if v == current else "")
            for v in exp.regularize.dropout]


def _weight_decay(exp: Experiment, info: "DataInfo", bn: bool) -> list[Rung]:
    note = "Adam's weight_decay is an L2 penalty in the gradient; adamw decouples it" if exp.train.optimizer == "adam" \
        else ""
    return [Rung("weight-decay", f"weight decay {v:g}", {"train.weight_decay": v}, note=note,
                 skipped="the recipe's value" if v == exp.train.weight_decay else "")
            for v in exp.regularize.weight_decay]


def _batch_size(exp: Experiment, info: "DataInfo", bn: bool) -> list[Rung]:
    if not bn:
        return [Rung("batch-size", "smaller batch", skipped="no BatchNorm: a smaller batch regularizes through "
                     "BatchNorm's noisier batch statistics")]
    sizes = exp.regularize.batch_sizes or [max(2, exp.train.batch_size // 2)]
    return [Rung("batch-size", f"batch size {b}", {"train.batch_size": b},
                 note="the same steps see fewer samples" if b < exp.train.batch_size else "",
                 skipped="the recipe's value" if b == exp.train.batch_size else "") for b in sizes]


def _early_stop(exp: Experiment, info: "DataInfo", bn: bool) -> list[Rung]:
    patience = exp.regularize.early_stop
    label = f"early stop (patience {patience})"
    if exp.train.early_stop:
        return [Rung("early-stop", label, skipped=f"the recipe already stops early (train.early_stop = "
                     f"{exp.train.early_stop})")]
    return [Rung("early-stop", label, {"train.early_stop": patience},
                 note=f"evaluations every {exp.train.eval_every:,} steps")]


_RUNGS = {"augment": _augment, "dropout": _dropout, "weight-decay": _weight_decay, "batch-size": _batch_size,
          "early-stop": _early_stop}
