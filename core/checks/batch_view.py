"""Stage 2, "visualise just before the net": the trainer's first batch exactly as the model receives it,
its statistics, a few decoded samples for the TUI, and what looks wrong in it."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import DataInfo
from ..tasks import Task
from .common import fmt, num, train_batches
from .context import CheckContext
from .limits import unscaled
from .verdict import Problem, Verdict, worst

SAMPLES = 8  # examples put in batch-view's metrics for the TUI
IMAGE_SIDE = 32  # larger images are downsampled to this for the TUI payload


def _rounded(t: torch.Tensor, digits: int = 3) -> Any:
    return torch.round(t.double() * 10**digits).div(10**digits).tolist()


def _decode(ids: list[int], info: DataInfo) -> str:
    if info.vocab:
        return "".join(info.vocab[i] if 0 <= i < len(info.vocab) else "·" for i in ids)
    return " ".join(map(str, ids))


def _shown_x(xi: torch.Tensor, kind: str, info: DataInfo) -> dict[str, Any]:
    if kind == "image" and xi.dim() == 3 and xi.is_floating_point():
        if xi.shape[1] > IMAGE_SIDE or xi.shape[2] > IMAGE_SIDE:
            side = (min(IMAGE_SIDE, xi.shape[1]), min(IMAGE_SIDE, xi.shape[2]))
            xi = F.adaptive_avg_pool2d(xi.float().unsqueeze(0), side)[0]
        return {"x": _rounded(xi)}
    if not xi.is_floating_point():
        ids = [int(v) for v in xi.reshape(-1)[:256]]
        return {"x": ids, "text": _decode(ids, info)}
    return {"x": _rounded(xi.reshape(-1)[:64])}


def _shown_y(yi: torch.Tensor, info: DataInfo) -> dict[str, Any]:
    if yi.dim() == 0:
        item: dict[str, Any] = {"y": int(yi) if not yi.is_floating_point() else num(yi)}
        if info.class_names and not yi.is_floating_point() and 0 <= int(yi) < len(info.class_names):
            item["label"] = info.class_names[int(yi)]
        return item
    if not yi.is_floating_point():
        ids = [int(v) for v in yi.reshape(-1)[:256]]
        return {"y": ids, "target_text": _decode([v for v in ids if v != info.ignore_index], info)}
    return {"y": _rounded(yi.reshape(-1)[:64])}


def sample_payload(x: torch.Tensor, y: torch.Tensor, info: DataInfo) -> list[dict[str, Any]]:
    """The first few examples, small and JSON-safe: pixels, token ids with their text, labels."""
    return [{**_shown_x(x[i].detach().cpu(), info.kind, info), **_shown_y(y[i].detach().cpu(), info)}
            for i in range(min(SAMPLES, len(x)))]


def model_input(ctx: CheckContext, x: torch.Tensor) -> tuple[Any, str]:
    """What the model's forward receives for the batch ``x`` (after any wrapper of the user's), and what the forward
    raised on it ("" if nothing). A batch the model cannot take (an id outside its embedding) is still shown."""
    model = ctx.new_model()
    model.train()
    captured: dict[str, Any] = {}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.setdefault("x", args[0] if args else next(iter(kwargs.values()), None))

    handle = model.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            model(x)
    except Exception as exc:
        if "x" not in captured:
            raise
        import traceback
        ctx.log(f"batch-view: the model raised on the first batch: {type(exc).__name__}: {exc}", level="error",
                detail=traceback.format_exc())
        return captured["x"], f"{type(exc).__name__}: {exc}"
    finally:
        handle.remove()
    return captured.get("x"), ""


def float_problems(xin: torch.Tensor, metrics: dict[str, Any]) -> list[Problem]:
    xf = xin.double()
    finite = torch.isfinite(xf)
    metrics["non_finite"] = int((~finite).sum())
    xv = xf[finite] if not bool(finite.all()) else xf
    if xv.numel():
        metrics.update(x_min=num(xv.min()), x_max=num(xv.max()), x_mean=num(xv.mean()), x_std=num(xv.std()))
    means, stds = [metrics.get("x_mean")], [metrics.get("x_std")]
    if xin.dim() >= 2:
        per = xf.transpose(0, 1).reshape(xf.shape[1], -1) if xin.dim() >= 3 else xf.T
        means, stds = per.mean(1).tolist(), per.std(1).tolist()
        metrics["channel_mean"] = [num(v, 4) for v in means[:64]]
        metrics["channel_std"] = [num(v, 4) for v in stds[:64]]
    if metrics["non_finite"]:
        return [Problem("fail", f"{metrics['non_finite']} non-finite values (NaN/Inf) in the batch",
                        "Find where NaN/Inf enter: a division by a zero std in normalisation, a corrupt file (data-stats).")]
    if xv.numel() and float(xv.std()) == 0:
        return [Problem("fail", f"every value in the batch is {fmt(float(xv[0]))}",
                        "The pipeline produces a constant: check loading and normalisation.")]
    if xv.numel() and unscaled(means, stds):
        return [Problem("warn", f"values reach {fmt(float(xv.abs().max()))}: the inputs look unnormalised",
                        "Normalise the inputs (e.g. pixels/255, then subtract the mean and divide by the std per channel).")]
    return []


def input_problems(task: Task, xin: torch.Tensor, info: DataInfo, metrics: dict[str, Any]) -> list[Problem]:
    if xin.is_floating_point():
        problems = float_problems(xin, metrics)
    else:
        metrics.update(x_min=int(xin.min()), x_max=int(xin.max()), distinct=int(xin.unique().numel()))
        problems = []
        outside = [v for v in (int(xin.min()), int(xin.max())) if v < 0 or (info.num_classes and v >= info.num_classes)]
        if task.sequence and outside:  # padding positions too: nn.Embedding looks every id up
            vocab = f" 0…{info.num_classes - 1}" if info.num_classes else ""
            problems.append(Problem("fail", f"token id {outside[-1]} is outside the vocabulary{vocab}",
                                    "Check the tokenizer/vocabulary size the model is built with, and the padding id: "
                                    "it must be a row of the embedding too."))
    if len(xin) >= 2 and all(torch.equal(xin[0], xin[i]) for i in range(1, len(xin))):
        problems.append(Problem("fail", f"all {len(xin)} examples in the batch are identical",
                                "The dataset returns the same example whatever the index: check __getitem__."))
    return problems


def label_problems(y: torch.Tensor, info: DataInfo, metrics: dict[str, Any]) -> list[Problem]:
    """One class label per example: in range, and not all the same."""
    counts = torch.bincount(y.reshape(-1).clamp(min=0), minlength=info.num_classes or 0)
    metrics["label_counts"] = [int(c) for c in counts[:100]]
    if info.num_classes and (int(y.min()) < 0 or int(y.max()) >= info.num_classes):
        return [Problem("fail", f"labels range over {int(y.min())}..{int(y.max())} but there are {info.num_classes} "
                        "classes", "Labels must be 0..C−1: remap them.")]
    if len(y) >= 16 and (info.num_classes or 0) > 1 and int((counts > 0).sum()) == 1:
        return [Problem("warn", f"all {len(y)} labels in the batch are '{int(y[0])}'",
                        "Are the labels right, or is the data sorted by class and not shuffled?")]
    return []


def shift_problems(xin: torch.Tensor, y: torch.Tensor, info: DataInfo, metrics: dict[str, Any]) -> list[Problem]:
    """Language models: the targets must be the inputs shifted by one, not the inputs themselves."""
    keep = y != info.ignore_index
    metrics["padding_fraction"] = num(1 - float(keep.double().mean()), 4)
    same = float(((y == xin) & keep).sum()) / max(1, int(keep.sum()))
    shifted = float(((y[:, :-1] == xin[:, 1:]) & keep[:, :-1]).sum()) / max(1, int(keep[:, :-1].sum()))
    metrics.update(targets_equal_inputs=num(same, 4), targets_are_next_inputs=num(shifted, 4))
    if same > 0.95 and shifted < 0.5:
        return [Problem("fail", f"the targets equal the inputs at {same:.0%} of positions",
                        "The model would learn to copy its input: targets must be the inputs shifted by one "
                        "(y[t] = x[t+1]).")]
    return []


def describe(xin: torch.Tensor, y: torch.Tensor, metrics: dict[str, Any]) -> str:
    desc = f"batch of {len(xin)}: x {metrics['x_dtype']} {tuple(xin.shape)}"
    if "x_mean" in metrics:
        desc += (f" in [{fmt(float(metrics['x_min']))}, {fmt(float(metrics['x_max']))}], mean "
                 f"{fmt(float(metrics['x_mean']))} std {fmt(float(metrics['x_std']))}")
    elif "distinct" in metrics:
        desc += f" ids {metrics['x_min']}..{metrics['x_max']}"
    return desc + f"; y {metrics['y_dtype']} {tuple(y.shape)}"


def check(ctx: CheckContext) -> Verdict:
    info, task = ctx.splits().info, ctx.task
    x, y = next(train_batches(ctx, ctx.exp.train.batch_size))  # the trainer's own first batch
    xin, raised = model_input(ctx, x)
    if not isinstance(xin, torch.Tensor):
        return Verdict("skip", f"the model's input is {type(xin).__name__}, not a tensor.")
    xin, y = xin.detach().cpu(), y.detach().cpu()
    metrics: dict[str, Any] = {"kind": info.kind, "batch": len(xin), "x_shape": list(xin.shape),
                               "x_dtype": str(xin.dtype).replace("torch.", ""), "y_shape": list(y.shape),
                               "y_dtype": str(y.dtype).replace("torch.", "")}
    problems = input_problems(task, xin, info, metrics)
    if task.example_labels and not y.is_floating_point():
        problems += label_problems(y, info, metrics)
    if task.sequence and not xin.is_floating_point() and xin.shape == y.shape and xin.dim() == 2:
        problems += shift_problems(xin, y, info, metrics)
    if raised:
        metrics["model_error"] = raised
        problems.append(Problem("fail", f"the model raised on this batch ({raised})",
                                "Fix what the batch shows above first; the traceback is what training would hit."))
    metrics["samples"] = sample_payload(xin, y, info)
    if info.class_names:
        metrics["class_names"] = list(info.class_names[:100])
    desc = describe(xin, y, metrics)
    if problems:
        return Verdict(worst(problems), f"{desc}: " + "; ".join(p.what for p in problems) + ".", metrics,
                       " ".join(p.hint for p in problems))
    return Verdict("pass", desc + ".", metrics,
                   "Look at the samples: this is exactly what enters y_hat = model(x) in training.")
