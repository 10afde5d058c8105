"""Every run of an experiment, as rows you can compare: ``recipe-tui runs [--json]`` and the app's runs view.

A row (a public contract; README, "recipe-tui runs"): ``run_dir``, ``name``, ``status`` (completed | stopped |
failed | running | interrupted), ``steps``, ``total_steps``, ``started`` (Unix time), ``seconds`` (training time,
pauses and gaps between resumes excluded), ``params``, ``changes`` (the run's config against the recipe's, as
``--set`` keys), ``tag`` (where it came from, ``{}`` for a plain ``train``), ``train_loss``/``val_loss``
``{final, best}``, ``metric`` ``{name, final, best}``, ``alarms``, ``early_stop``, ``reason``.

Read from each run's summary.json (core/runsummary.py); runs without one are replayed from events.jsonl once.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from .config import ConfigError, Experiment, experiment_from_dict
from .events import Event, event_from_dict
from .plans import PLANS
from .rundir import CONFIG, EVENTS
from .runsummary import RunSummary, read_summary, summary_from_events, writer_alive

STATUSES = ("completed", "stopped", "failed", "running", "interrupted")
# Not configuration of a run: never a difference (the stage 4–6 plans say what the items train, not how a run trains).
HIDDEN = ("name", "base_dir", "source", "description", *PLANS)


def list_runs(runs_root: str | Path, recipe: str, exp: Experiment | None = None) -> list[dict[str, Any]]:
    """Every run dir of ``recipe`` under ``runs_root``, oldest first; ``changes`` are against ``exp`` (the recipe as
    opened, e.g. with ``--set`` applied) when given."""
    parent = Path(runs_root) / recipe
    if not parent.is_dir():
        return []
    recipe_flat = flatten_config(exp.to_dict()) if exp is not None else None
    rows = [run_row(p, recipe_flat) for p in sorted(parent.iterdir()) if (p / CONFIG).is_file()]
    return sorted(rows, key=lambda r: (r["started"] or 0, r["name"]))


def run_row(run_dir: Path, recipe_flat: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One run's row (see the module docstring)."""
    s = read_summary(run_dir) or _replayed(run_dir)
    changes: dict[str, Any] = {}
    if recipe_flat is not None:
        try:
            changes = config_changes(normalised(json.loads((run_dir / CONFIG).read_text())), recipe_flat)
        except (OSError, ValueError):
            changes = {}
    return {
        "run_dir": str(run_dir), "name": run_dir.name, "status": _status(s, run_dir),
        "steps": s.get("steps", 0), "total_steps": s.get("total_steps", 0), "started": s.get("started"),
        "seconds": s.get("seconds", 0.0), "params": s.get("params", 0), "changes": changes, "tag": s.get("tag") or {},
        "train_loss": _pick(s.get("train_loss"), ("final", "best")),
        "val_loss": _pick(s.get("val_loss"), ("final", "best")),
        "metric": _pick(s.get("metric"), ("name", "final", "best")),
        "alarms": s.get("alarms") or [], "early_stop": s.get("early_stop") or {}, "reason": s.get("reason", ""),
    }


def normalised(run_config: Any) -> Any:
    """The run's config with today's defaults filled in (a run from before a key existed used its default)."""
    try:
        return experiment_from_dict(run_config).to_dict()
    except ConfigError:
        return run_config


def _pick(d: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    d = d if isinstance(d, dict) else {}
    return {k: d.get(k) for k in keys}


def _replayed(run_dir: Path) -> dict[str, Any]:
    """The summary of a run without summary.json, from its events; kept (best effort) once the run has ended."""
    s = summary_from_events(_events(run_dir / EVENTS))
    if s["status"] != "running":
        try:
            RunSummary(run_dir, s).write()
        except OSError:
            pass  # a read-only run dir is listed all the same
    return s


def _events(path: Path) -> Iterator[Event]:
    """Events line by line (a long run's file is never read whole); unreadable lines are skipped."""
    try:
        f = open(path, encoding="utf-8")
    except OSError:
        return
    with f:
        for line in f:
            try:
                yield event_from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue


def _status(s: Mapping[str, Any], run_dir: Path) -> str:
    status = s.get("status", "running")
    if status != "running":
        return status if status in STATUSES else "failed"
    return "running" if writer_alive(s, run_dir) else "interrupted"


# ----------------------------------------------------------------------------- configuration differences


def flatten_config(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """An experiment's ``to_dict()`` as ``--set`` keys: ``{"train.lr": 3e-4, "model.kwargs.width": 64, …}``."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        if not prefix and key in HIDDEN:
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def config_changes(run_config: Mapping[str, Any], recipe_flat: Mapping[str, Any]) -> dict[str, Any]:
    """The keys whose value in the run differs from the recipe's (a key the run lacks: None)."""
    mine = flatten_config(run_config)
    keys = [*mine, *(k for k in recipe_flat if k not in mine)]
    return {k: mine.get(k) for k in keys if mine.get(k) != recipe_flat.get(k)}
