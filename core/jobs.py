"""Jobs the CLI and the TUI run: training into a run dir, and checklist checks.

Each runs in one thread, reports only through ``emit`` and honours ``stop``.
"""
from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .config import ConfigError, Experiment, apply_overrides, experiment_from_dict
from .control import RunControl
from .events import Failed, Finished, LogLine, RunStarted
from .rundir import RunDir
from .runsummary import RunSummary, read_summary, summary_from_events


@dataclass(frozen=True)
class TrainOutcome:
    run_dir: Path
    status: str  # completed | stopped | failed
    steps: int
    final: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    alarms: list[dict[str, Any]] = field(default_factory=list)  # e.g. the wiggle alarm (Finished.alarms)
    early_stop: dict[str, Any] = field(default_factory=dict)


def trusted_experiment(run_config: Mapping[str, Any], known: Mapping[str, Experiment]) -> Experiment:
    """The experiment a run dir's config.json describes, allowed to name only the code that the recipes file
    the user opened names.

    A run dir is data, never code: a config.json naming ``factory = "os:system"`` must not run it. Factories
    (and the folder they are imported from) come from ``known`` (the opened recipes file's experiments); a run
    whose factories differ from its recipe's is refused with a ``ConfigError``.
    """
    exp = experiment_from_dict(run_config)
    mine = known.get(exp.name)
    for section in ("model", "data"):
        factory = getattr(exp, section).factory
        if factory is None:
            continue
        if mine is None or getattr(mine, section).factory != factory:
            theirs = f"'{getattr(mine, section).factory}'" if mine is not None and getattr(mine, section).factory else "none"
            raise ConfigError(
                f"the run's config.json names {section}.factory '{factory}', but the recipes file you opened "
                f"({mine.source if mine else 'no recipe named ' + repr(exp.name)}) names {theirs}: a run dir is data, "
                "never code, so it is not imported. Open the recipes file that made the run (--file).")
    if mine is not None:  # factories import from the opened file's folder, not from one a run dir names
        exp = dataclasses.replace(exp, base_dir=mine.base_dir, source=mine.source)
    elif exp.model.factory is None and exp.data.factory is None:
        exp = dataclasses.replace(exp, base_dir=".", source="config.json")
    return exp


def run_training(exp: Experiment | None, control: RunControl | None = None, runs_root: str | Path = "runs",
                 resume: str | Path | None = None, overrides: tuple[str, ...] = (),
                 known: Mapping[str, Experiment] | None = None, tag: Mapping[str, Any] | None = None) -> TrainOutcome:
    """Train ``exp`` (or resume the run in ``resume``) and record everything in its run dir.

    ``known``: the experiments of the recipes file the user opened; a resumed run may name only their
    factories (``trusted_experiment``). ``tag``: where the run comes from (``RunStarted.tag``, README "Run tags");
    a resumed run keeps its own. ``ConfigError`` propagates (bad input); any other failure, including the user's
    code raising, becomes a ``Failed`` event and a ``failed`` outcome.
    """
    from .data import load_data
    from .models import build_initialized_model
    from .trainer import Trainer, resolve_device, seed_everything

    run, exp, checkpoint = _open_run(exp, runs_root, resume, overrides, known or {})
    summary = RunSummary(run.path, None if resume is None else (read_summary(run.path) or summary_from_events(run.events())))
    tag = dict(tag or summary.d.get("tag") or {})
    control = (control or RunControl()).also(run.record, summary)
    out = control.emit
    step = 0
    try:
        device = resolve_device(exp.train.device)
        seed_everything(exp.train.seed)
        splits = load_data(exp)
        model = build_initialized_model(exp, splits)
        trainer = Trainer(model, exp.task, splits.train, splits.val, exp.train, control, save=run.save_checkpoint,
                          device=device, info=splits.info)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
            out(LogLine(f"resumed from {run.checkpoint_path} at step {trainer.step}"))
        step = trainer.step
        n_params = sum(p.numel() for p in model.parameters())
        out(RunStarted(run_dir=str(run.path), recipe=exp.name, device=str(device), steps=exp.train.steps,
                       start_step=trainer.step, params=n_params, tag=tag))
        result = trainer.fit()
    except ConfigError:
        run.close()
        raise
    except Exception as exc:  # the user's model or data failed: a result, not a crash
        result = Failed(step=step, reason=f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
        out(result)
    finally:
        run.close()
    if isinstance(result, Finished):
        return TrainOutcome(run.path, result.status, result.step, dict(result.final), alarms=list(result.alarms),
                            early_stop=dict(result.early_stop))
    return TrainOutcome(run.path, "failed", result.step, {}, result.reason)


def _open_run(exp: Experiment | None, runs_root: str | Path, resume: str | Path | None, overrides: tuple[str, ...],
              known: Mapping[str, Experiment]) -> tuple[RunDir, Experiment, dict[str, Any] | None]:
    """(the run dir to write, its experiment, the checkpoint to continue from): a new run of ``exp``, or the run in
    ``resume`` with its last checkpoint. The resolved experiment (overrides applied) is saved with the run."""
    if resume is None:
        assert exp is not None
        if overrides:
            exp = apply_overrides(exp, overrides)
        run = RunDir.create(runs_root, exp.name)
        run.write_config(exp)
        return run, exp, None
    try:
        run = RunDir.open(resume)
    except FileNotFoundError as exc:
        raise ConfigError(f"--resume {resume}: {exc}.") from None
    exp = trusted_experiment(run.read_config(), known)
    if overrides:
        exp = apply_overrides(exp, overrides)
        run.write_config(exp)
    checkpoint = run.load_checkpoint()
    if checkpoint is None:
        raise ConfigError(f"--resume {resume}: no checkpoint.pt yet; nothing to continue from.")
    return run, exp, checkpoint


def latest_run(runs_root: str | Path, recipe: str) -> Path | None:
    """The newest run dir of a recipe, if any."""
    parent = Path(runs_root) / recipe
    runs = sorted((p for p in parent.glob("*") if (p / "config.json").is_file()), key=lambda p: p.name)
    return runs[-1] if runs else None


def describe_outcome(outcome: TrainOutcome) -> dict[str, Any]:
    """The ``train --json`` document."""
    final = {"loss": outcome.final.get("val_loss", outcome.final.get("loss"))}
    if "accuracy" in outcome.final:
        final["accuracy"] = outcome.final["accuracy"]
    doc: dict[str, Any] = {"run_dir": str(outcome.run_dir), "status": outcome.status, "steps": outcome.steps, "final": final}
    if outcome.reason:
        doc["reason"] = outcome.reason
    if outcome.alarms:
        doc["alarms"] = [{k: v for k, v in a.items()} for a in outcome.alarms]
    if outcome.early_stop:
        doc["early_stop"] = dict(outcome.early_stop)
    return doc


def load_trained_model(run_dir: str | Path, known: Mapping[str, Experiment],
                       splits: Any = None) -> tuple[Experiment, Any, Any]:
    """(experiment, model in eval mode with the run's last checkpoint, splits) of a run dir.

    ``known``: the opened recipes file's experiments (``trusted_experiment``). Raises FileNotFoundError
    when the run has no checkpoint yet, ``ConfigError`` when the run names code the recipes file does not.
    """
    from .data import load_data
    from .models import build_model

    run = RunDir.open(run_dir)
    exp = trusted_experiment(run.read_config(), known)
    state = run.load_checkpoint()
    if state is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    splits = splits if splits is not None else load_data(exp)
    model = build_model(exp, splits.info)
    model.load_state_dict(state["model"])
    return exp, model.eval(), splits
