"""User data factories: ``module:function(**kwargs)`` → {"train": ds, "val": ds, "test"?: ds}."""
from __future__ import annotations

import torch

from ..config import ConfigError, Experiment, where
from ..factory import import_factory
from ..tasks import task_of
from . import DataInfo, Splits, targets_of


def load_factory(exp: Experiment) -> Splits:
    make = import_factory(exp.data.factory, exp, "data", "factory")
    result = make(**exp.data.kwargs)
    if not isinstance(result, dict) or "train" not in result or "val" not in result:
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ConfigError(
            f"{where(exp, 'data', 'factory')}'{exp.data.factory}' must return a dict with keys "
            f"'train', 'val' and optionally 'test'; got {got}."
        )
    extra = set(result) - {"train", "val", "test", "info"}
    if extra:
        raise ConfigError(f"{where(exp, 'data', 'factory')}unexpected keys {sorted(extra)} in the factory's result.")
    info = result.get("info") or infer_info(result["train"], exp.task)
    return Splits(train=result["train"], val=result["val"], test=result.get("test"), info=info)


def infer_info(ds, task: str) -> DataInfo:
    """Describe a user dataset from its first sample and its labels."""
    x, y = ds[0]
    x = torch.as_tensor(x)
    num_classes = None
    classes = tuple(str(c) for c in getattr(ds, "classes", ()) or ())
    if task_of(task).classes:
        if classes:
            num_classes = len(classes)
        else:
            targets = targets_of(ds)
            if targets is None:
                n = len(ds)
                targets = torch.stack([torch.as_tensor(ds[i][1]) for i in range(min(n, 20000))])
            num_classes = int(targets.max()) + 1
            classes = tuple(str(i) for i in range(num_classes))
    # Token sequences only for language models: integer inputs of a classifier are uint8 images (C, H, W) or
    # integer features, whose values are not token ids (no vocabulary to be out of).
    kind = "sequence" if task_of(task).sequence else ("image" if x.dim() == 3 else "tabular")
    return DataInfo(kind=kind, input_shape=tuple(x.shape), num_classes=num_classes, class_names=classes)
