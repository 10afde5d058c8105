"""Stage 3, "visualise the first-layer weights": are they structured filters, or noise? (core/filters.py)

From the latest plain training run of the recipe (a run dir is data, never code: the model is built from the
opened recipe's code, ``jobs.load_trained_model``), or at init when there is none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..filters import Z_STRUCTURED, drawable, filter_images, first_layer, structure
from .common import first_batch, num
from .context import CheckContext
from .verdict import Verdict

ID = "first-layer"


def check(ctx: CheckContext) -> Verdict:
    model, source = _model(ctx)
    x, _ = first_batch(ctx, 2, "val")
    layer = first_layer(model, x.to(ctx.device))
    if layer is None:
        return Verdict("skip", "the model has no layer with a weight matrix.", {"source": source})
    w = layer.weight
    info: dict[str, Any] = {"layer": {"name": layer.name, "type": type(layer.module).__name__,
                                      "weight_shape": list(w.shape)}, **source}
    images = filter_images(layer, ctx.splits().info.input_shape)
    if images is None:
        return Verdict("skip", f"the first layer ({layer.name}, {type(layer.module).__name__} {tuple(w.shape)}) has no "
                       "image layout (token embeddings, or a linear layer on non-image inputs): nothing to draw as "
                       "filters.", info, "Look at what the layer learns another way (e.g. nearest neighbours of "
                       "embeddings).")
    s = structure(images, tick=ctx.tick)
    metrics = {**info, **{k: num(v, 4) if isinstance(v, float) else v for k, v in s.items()}, **drawable(images),
               "z_limit": Z_STRUCTURED}
    return _verdict(layer.name, s, metrics)


def _model(ctx: CheckContext) -> tuple[Any, dict[str, Any]]:
    """(model on the check device, where its weights come from): the latest plain run's checkpoint, else init."""
    from ..jobs import load_trained_model

    run = latest_plain_run(Path(ctx.runs_root), ctx.exp.name)
    if run is not None:
        try:
            _, model, _ = load_trained_model(run["run_dir"], {ctx.exp.name: ctx.exp}, splits=ctx.splits())
            return model.to(ctx.device), {"source": "checkpoint", "run_dir": run["run_dir"], "step": run["steps"]}
        except ConfigError as exc:  # the run names code this recipes file does not: not ours to load
            ctx.log(f"{ID}: not using {run['run_dir']}: {exc}", level="warning")
    return ctx.new_model(), {"source": "init", "run_dir": None, "step": 0}


def latest_plain_run(runs_root: Path, recipe: str) -> dict[str, Any] | None:
    """The newest run of the recipe that is a plain training run (no tag: not a capacity point, trial …) and has a
    checkpoint."""
    from ..runs import list_runs

    plain = [r for r in list_runs(runs_root, recipe) if not r["tag"] and (Path(r["run_dir"]) / "checkpoint.pt").is_file()]
    return plain[-1] if plain else None


def _verdict(name: str, s: dict[str, Any], m: dict[str, Any]) -> Verdict:
    numbers = (f"neighbouring weights correlate {s['correlation']:.2f} against {s['control_mean']:.2f} ± "
               f"{s['control_std']:.2f} when shuffled (z = {s['z']:.1f}; structured from z ≥ {Z_STRUCTURED:g})")
    where = f"{name}, {m['count']} filters of {' × '.join(map(str, m['layer']['weight_shape'][1:]))}"
    if m["source"] == "init":
        call = "structured" if s["structured"] else "noise, as initial weights are"
        return Verdict("skip", f"no trained run yet: the initial weights ({where}) look like {call}: {numbers}.", m,
                       "Train (t, or recipe-tui train), then look again: trained first-layer filters should look "
                       "structured, not like noise.")
    step = f"after {m['step']:,} steps" if m.get("step") else "from the last checkpoint"
    if s["structured"]:
        return Verdict("pass", f"the first layer ({where}) is structured {step}: {numbers}.", m,
                       "Structured first-layer filters are a sign the network learns from its inputs.")
    return Verdict("warn", f"the first layer ({where}) still looks like noise {step}: {numbers}.", m,
                   "Noisy first-layer filters after training: train longer, lower the learning rate, or check "
                   "that the inputs carry signal and are normalised (stage 1); weights that never move point to a "
                   "layer that does not learn (grad-flow).")

