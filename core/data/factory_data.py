"""User data factories: ``module:function(**kwargs)`` → {"train": ds, "val": ds, "test"?: ds}."""
from __future__ import annotations

import torch

from ..config import ConfigError, Experiment, where
from ..factory import import_factory
from ..tasks import task_of
from . import DataInfo, Splits, readable_samples, require_training_samples, targets_of


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
    require_training_samples(result["train"], exp)
    info = result.get("info") or infer_info(result["train"], exp.task)
    return Splits(train=result["train"], val=result["val"], test=result.get("test"), info=info)


def infer_info(ds, task: str) -> DataInfo:
    """Describe a user dataset from its first readable sample and its labels. Samples that raise are skipped
    here (the data checks list them): one bad record must not keep the data from loading."""
    first, failed = readable_samples(ds, range(min(len(ds), 1000)), want=1)
    if not first:
        raise ValueError(f"none of the first {len(failed)} training samples could be read (sample {failed[0]} "
                         "raised; the data checks show why)")
    x = torch.as_tensor(first[0][0])
    num_classes = None
    classes = tuple(str(c) for c in getattr(ds, "classes", ()) or ())
    if task_of(task).classes:
        if classes:
            num_classes = len(classes)
        else:
            targets = targets_of(ds)
            if targets is None:
                samples, _ = readable_samples(ds, range(min(len(ds), 20000)))
                targets = torch.stack([torch.as_tensor(y) for _, y in samples])
            num_classes = int(targets.max()) + 1
            classes = tuple(str(i) for i in range(num_classes))
    # Token sequences only for language models: integer inputs of a classifier are uint8 images (C, H, W) or
    # integer features, whose values are not token ids (no vocabulary to be out of).
    kind = "sequence" if task_of(task).sequence else ("image" if x.dim() == 3 else "tabular")
    return DataInfo(kind=kind, input_shape=tuple(x.shape), num_classes=num_classes, class_names=classes)
