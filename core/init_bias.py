"""The recipe's "init well": set the final layer's bias so the model starts at the best input-free guess.

Classification and language models get the log class (token) priors of the training targets, so
softmax at init predicts the prior and the loss starts at its entropy instead of ln C; regression
gets the target mean, so the loss starts near Var(y). The final layer is found by running a probe
batch with forward hooks: the last ``nn.Linear`` called whose ``out_features`` matches the output size.
"""
from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import Dataset, Subset

from .data import DataInfo, Splits, head, iter_batches, readable_samples, targets_of
from .tasks import TargetStats, Task, task_of

MAX_SCAN = 20000  # datasets without a targets attribute: labels read from at most this many samples


def all_targets(ds: Dataset, limit: int = MAX_SCAN) -> torch.Tensor:
    """Every label of ``ds`` (cheaply when the dataset exposes them), else those of ``limit`` random samples."""
    t = targets_of(ds)
    if t is not None:
        return torch.as_tensor(t)
    n = len(ds)
    if n > limit:  # a seeded sample keeps this deterministic and bounded on huge datasets
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:limit].tolist()
        ds = Subset(ds, idx)
    try:
        ys = [torch.as_tensor(y) for _, y in iter_batches(ds, 256)]
    except Exception:  # a sample that raises: the labels of the others (the data checks list the bad ones)
        samples, _ = readable_samples(ds, range(len(ds)))
        if not samples:
            raise
        ys = [torch.stack([torch.as_tensor(y) for _, y in samples])]
    return torch.cat(ys)


_CACHE: "weakref.WeakKeyDictionary[Any, dict[tuple[str, int], TargetStats]]" = weakref.WeakKeyDictionary()


def target_stats(ds: Dataset, task: str | Task, info: DataInfo) -> TargetStats:
    """Class (token) counts, or target mean/variance, of ``ds``; cached per dataset object, because every
    fresh model built with ``model.init_bias`` needs them and scanning labels can be slow."""
    task = task_of(task)
    key = (task.name, info.ignore_index)
    try:
        cached = _CACHE.setdefault(ds, {})
    except TypeError:  # a dataset that cannot be weakly referenced: no cache
        cached = {}
    if key not in cached:
        cached[key] = task.target_stats(all_targets(ds), info)
    return cached[key]


def probe_batch(ds: Dataset, n: int = 4) -> torch.Tensor:
    """The inputs of the first ``n`` samples, batched as the trainer would."""
    return head(ds, n)[0]


def find_final_linear(model: nn.Module, x: torch.Tensor, out_features: int) -> tuple[str, nn.Linear]:
    """The last ``nn.Linear`` the forward pass calls with ``out_features`` outputs, after which no other
    layer with parameters runs. Raises ``ValueError`` saying why when there is none."""
    names = {id(m): (n or type(m).__name__) for n, m in model.named_modules()}
    calls: list[nn.Module] = []  # parametrised leaf modules, in the order their forward finished

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        calls.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    was_training = model.training
    try:
        model.eval()  # no BatchNorm statistics update from the probe
        device = next((p.device for p in model.parameters()), x.device)
        with torch.no_grad():
            model(x.to(device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    linears = [i for i, m in enumerate(calls) if isinstance(m, nn.Linear) and m.out_features == out_features]
    if not linears:
        last = calls[-1] if calls else None
        where = (f"the last layer with parameters is '{names[id(last)]}' ({type(last).__name__})"
                 if last is not None else "the forward pass calls no layer with parameters")
        raise ValueError(f"cannot set the final-layer bias: no nn.Linear with {out_features} outputs is called in the "
                         f"forward pass ({where}); set the last layer's bias by hand.")
    i = linears[-1]
    layer = calls[i]
    after = [m for m in calls[i + 1:] if m is not layer]
    if after:
        raise ValueError(f"cannot set the final-layer bias: the last nn.Linear with {out_features} outputs "
                         f"('{names[id(layer)]}') is followed by '{names[id(after[-1])]}' ({type(after[-1]).__name__}), "
                         "so it is not the final layer; set the last layer's bias by hand.")
    assert isinstance(layer, nn.Linear)
    if layer.bias is None:
        raise ValueError(f"cannot set the final-layer bias: the final layer '{names[id(layer)]}' has no bias "
                         "(bias=False); give it one or leave model.init_bias off.")
    return names[id(layer)], layer


def apply_init_bias(model: nn.Module, splits: Splits, task: str | Task) -> dict[str, Any]:
    """Set the final ``nn.Linear``'s bias to the log class priors (the target mean for regression).

    Returns what was done: ``{"layer", "kind", "out_features", "bias", "n"}``. Raises ``ValueError``
    with the reason when the final layer cannot be found or has no bias.
    """
    task = task_of(task)
    stats = target_stats(splits.train, task, splits.info)
    values = task.bias_init(stats)
    name, layer = find_final_linear(model, probe_batch(splits.train), len(values))
    with torch.no_grad():
        layer.bias.copy_(values.to(dtype=layer.bias.dtype, device=layer.bias.device))
    return {"layer": name, "kind": task.bias_kind, "out_features": len(values),
            "bias": [round(float(v), 4) for v in values[:64]], "n": stats.n}
