"""Jobs the CLI and the TUI run: training into a run dir, and checklist checks.

Each runs in one thread, reports only through ``emit`` and honours ``stop``.
"""
from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError, Experiment, apply_overrides, experiment_from_dict
from .control import RunControl
from .events import Failed, Finished, LogLine, RunStarted, null_emit
from .rundir import CHECKPOINT, CONFIG, CONTROL, RunDir
from .runsummary import RunSummary, read_summary, summary_from_events

if TYPE_CHECKING:
    from .distributed import Group


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

    Under torchrun every rank calls this with the same arguments and trains with DDP: rank 0 opens the run dir
    and sends its path and experiment to the others; only rank 0 writes to it and reads its control file.
    """
    from .distributed import session

    with session() as group:  # the process group is left on every path out
        return _train_as(group, exp, control or RunControl(), runs_root, resume, overrides, known or {}, tag)


def _train_as(group: "Group", exp: Experiment | None, control: RunControl, runs_root: str | Path,
              resume: str | Path | None, overrides: tuple[str, ...], known: Mapping[str, Experiment],
              tag: Mapping[str, Any] | None) -> TrainOutcome:
    from .data import load_data
    from .distributed import rank_seed
    from .gpu_options import ignored_options
    from .models import build_initialized_model
    from .trainer import Trainer, seed_everything

    run, run_path, exp, checkpoint = _open_shared(group, exp, runs_root, resume, overrides, known)
    if run is not None:
        summary = RunSummary(run.path, None if resume is None else (read_summary(run.path) or summary_from_events(run.events())))
        tag = dict(tag or summary.d.get("tag") or {})
        control = control.also(run.record, summary).watching(run.path / CONTROL)
    else:  # another rank: rank 0 records everything
        tag = dict(tag or {})
        control = control.with_emit(null_emit)
    out = control.emit
    trainer: Any = None
    try:
        device = group.device(exp.train.device)
        seed_everything(exp.train.seed)  # every rank builds the same model (DDP also starts from rank 0's weights)
        splits = load_data(exp)
        model = build_initialized_model(exp, splits)
        if group.rank > 0:
            seed_everything(rank_seed(exp.train.seed, group.rank))  # dropout and augmentation differ per rank
        trainer = Trainer(model, exp.task, splits.train, splits.val, exp.train, control,
                          save=run.save_checkpoint if run is not None else None, device=device, group=group,
                          info=splits.info)
        if resume is not None:
            trainer.load_state_dict(checkpoint)
            out(LogLine(f"resumed from {run_path / CHECKPOINT} at step {trainer.step}"))
        n_params = sum(p.numel() for p in model.parameters())
        out(RunStarted(run_dir=str(run_path), recipe=exp.name, device=str(device), steps=exp.train.steps,
                       start_step=trainer.step, params=n_params, world_size=group.world_size, tag=tag))
        for note in ignored_options(exp.train, device) + _group_note(group, trainer):
            out(LogLine(note))
        result = trainer.fit()
    except ConfigError:
        raise
    except Exception as exc:  # the user's model or data failed: a result, not a crash
        reason = f"{type(exc).__name__}: {exc}" + (_PEER_HINT if group.distributed and group.is_main else "")
        result = Failed(step=trainer.step if trainer is not None else 0, reason=reason, detail=traceback.format_exc())
        out(result)
    finally:
        if run is not None:
            run.close()
    if isinstance(result, Finished):
        return TrainOutcome(run_path, result.status, result.step, dict(result.final), alarms=list(result.alarms),
                            early_stop=dict(result.early_stop))
    return TrainOutcome(run_path, "failed", result.step, {}, result.reason)


_PEER_HINT = " (in a torchrun group: if another rank failed first, its traceback is in the output above)"


def _group_note(group: "Group", trainer: Any) -> list[str]:
    if not group.distributed:
        return []
    from .distributed import shard
    import torch
    sizes = [len(shard(torch.arange(trainer.global_batch), r, group.world_size)) for r in range(group.world_size)]
    return [f"DistributedDataParallel over {group.world_size} processes on {trainer.device.type}: each step's global "
            f"batch of {trainer.global_batch} is split {' + '.join(map(str, sizes))}"]


def _open_shared(group: "Group", exp: Experiment | None, runs_root: str | Path, resume: str | Path | None,
                 overrides: tuple[str, ...], known: Mapping[str, Experiment]
                 ) -> tuple[RunDir | None, Path, Experiment, dict[str, Any] | None]:
    """(run dir or None, its path, experiment, checkpoint): rank 0 opens the run (``_open_run``) and broadcasts
    its path and resolved experiment; the other ranks get (None, path, experiment, None) and write nothing."""
    if group.is_main:
        try:
            run, exp, checkpoint = _open_run(exp, runs_root, resume, overrides, known)
        except Exception as exc:  # the other ranks are waiting for the broadcast: tell them, then fail alike
            group.broadcast(("config-error" if isinstance(exc, ConfigError) else "error", str(exc)))
            raise
        group.broadcast(("ok", (str(run.path), exp.to_dict())))
        return run, run.path, exp, checkpoint
    kind, payload = group.broadcast(None)
    if kind != "ok":
        raise (ConfigError if kind == "config-error" else RuntimeError)(f"rank 0 could not open the run: {payload}")
    path, exp_dict = payload
    return None, Path(path), experiment_from_dict(exp_dict), None


def planned_experiment(exp: Experiment | None, resume: str | Path | None, overrides: tuple[str, ...],
                       known: Mapping[str, Experiment]) -> Experiment:
    """The experiment ``run_training`` with these arguments would train, found without creating or changing any
    file (``recipe-tui train`` asks it how many processes to start). Raises ``ConfigError`` like it would."""
    if resume is not None:
        if not (Path(resume) / CONFIG).is_file():
            raise ConfigError(f"--resume {resume}: {resume} is not a run directory (no {CONFIG}).")
        exp = trusted_experiment(RunDir(Path(resume)).read_config(), known)
    assert exp is not None
    return apply_overrides(exp, overrides) if overrides else exp


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
