"""Jobs the CLI and the TUI run: training into a run dir, and checklist checks.

Each runs in one thread, reports only through ``emit`` and honours ``stop``.
"""
from __future__ import annotations

import dataclasses
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import ConfigError, Experiment, apply_overrides, check_name, experiment_from_dict
from .control import RunControl
from .events import Event, Failed, Finished, RunStarted, null_emit
from .paths import inside
from .rundir import CHECKPOINT, CONFIG, CONTROL, RunDir, probe_writable, require_free_space
from .runsummary import RunSummary, read_summary, summary_from_events

if TYPE_CHECKING:
    from .distributed import Group


@dataclass(frozen=True)
class TrainOutcome:
    run_dir: Path | None  # None: the run never started (stopped or failed while loading), so nothing was kept
    status: str  # completed | stopped | failed
    steps: int
    final: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    note: str = ""  # something the numbers do not say (no validation split)
    alarms: list[dict[str, Any]] = field(default_factory=list)  # e.g. the wiggle alarm (Finished.alarms)
    early_stop: dict[str, Any] = field(default_factory=dict)


NO_VALIDATION = "no validation split (data.val_fraction = 0): no validation loss or metric"


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
    a resumed run keeps its own. ``ConfigError`` propagates (bad input, an unwritable runs dir); any other failure,
    including the user's code raising or calling ``sys.exit``, becomes a ``Failed`` event and a ``failed``
    outcome. A new run's dir is created only once data and model are ready: a run that fails or is stopped while
    starting leaves none behind.

    Under torchrun every rank calls this with the same arguments and trains with DDP: rank 0 opens the run dir
    and sends the resolved experiment to the others; only rank 0 writes to it and reads its control file.
    """
    from .distributed import session

    with session() as group:  # the process group is left on every path out
        return _train_as(group, exp, control or RunControl(), runs_root, resume, overrides, known or {}, tag)


def _train_as(group: "Group", exp: Experiment | None, control: RunControl, runs_root: str | Path,
              resume: str | Path | None, overrides: tuple[str, ...], known: Mapping[str, Experiment],
              tag: Mapping[str, Any] | None) -> TrainOutcome:
    run, exp, checkpoint = _open_shared(group, exp, runs_root, resume, overrides, known)
    recorder = Recorder(run) if group.is_main else None
    tag = dict(tag or (recorder.summary.d.get("tag") if recorder else None) or {})
    control = control.also(recorder) if recorder is not None else control.with_emit(null_emit)
    trainer, note = None, ""
    try:
        trainer, note = _ready_trainer(group, exp, control, checkpoint, recorder, resume is not None)
        threads = trainer.choose_threads()  # before the run dir exists: a stop meanwhile leaves none
        if recorder is not None:
            if run is None and control.stopped:
                return TrainOutcome(None, "stopped", 0)
            recorder.open(run or _new_run(runs_root, exp, trainer))
            trainer.control = control = control.watching(recorder.path / CONTROL)  # stop/pause from outside
        control.emit(RunStarted(run_dir=str(recorder.path) if recorder else "", recipe=exp.name,
                                device=str(trainer.device), steps=exp.train.steps, start_step=trainer.step,
                                params=sum(p.numel() for p in trainer.model.parameters()),
                                world_size=group.world_size, tag=tag, threads=threads.threads))
        cpu = [threads.describe()] if trainer.device.type == "cpu" else []
        for line in ([note] if note else []) + cpu + _notes(group, exp, trainer):
            control.log(line, "warning" if line == note else "info")
        result = trainer.fit()
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:  # the user's model or data failed: a result, not a crash
        step = trainer.step if trainer is not None else int((checkpoint or {}).get("step", 0))
        if isinstance(exc, RunDirUnwritable) and exc.step is not None:
            step = min(step, exc.step)
        reason = failure_reason(exc) + (_PEER_HINT if group.distributed and group.is_main else "")
        result = Failed(step=step, reason=reason, detail=traceback.format_exc())
        control.emit(result)
    finally:
        if recorder is not None:
            recorder.close()
    path = recorder.path if recorder is not None else None
    if recorder is not None and run is None and isinstance(result, Finished) and result.status == "stopped" \
            and result.step == 0:
        recorder.discard()  # stopped before its first step: an empty run is not worth keeping
        path = None
    if isinstance(result, Finished):
        return TrainOutcome(path, result.status, result.step, dict(result.final), note=note,
                            alarms=list(result.alarms), early_stop=dict(result.early_stop))
    return TrainOutcome(path, "failed", result.step, {}, result.reason, note=note)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the user's code called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"


def _ready_trainer(group: "Group", exp: Experiment, control: RunControl, checkpoint: dict[str, Any] | None,
                   recorder: "Recorder | None", resuming: bool) -> tuple[Any, str]:
    """(a trainer with the data, the model and the checkpoint loaded, a note on what is missing)."""
    from .data import load_data
    from .distributed import rank_seed
    from .models import build_initialized_model
    from .trainer import Trainer, seed_everything

    device = group.device(exp.train.device)
    seed_everything(exp.train.seed)  # every rank builds the same model (DDP also starts from rank 0's weights)
    splits = load_data(exp)
    val = splits.val if len(splits.val) else None
    model = build_initialized_model(exp, splits)
    task, train = exp.task, splits.train
    if exp.train.teacher:  # a distilled student: the teacher's outputs beside each label (core/distill.py)
        from .distill import with_teacher
        task, train = with_teacher(exp, splits)
    if group.rank > 0:
        seed_everything(rank_seed(exp.train.seed, group.rank))  # dropout and augmentation differ per rank
    trainer = Trainer(model, task, train, val, exp.train, control,
                      save=recorder.save_checkpoint if recorder is not None else None, device=device, group=group,
                      info=splits.info)
    if resuming:  # under torchrun only rank 0 has read the checkpoint; load_state_dict sends it to the others
        trainer.load_state_dict(checkpoint)
        if recorder is not None:
            control.log(f"resumed from {recorder.path / CHECKPOINT} at step {trainer.step}")
    return trainer, "" if val is not None else NO_VALIDATION


_PEER_HINT = " (in a torchrun group: if another rank failed first, its traceback is in the output above)"


def _notes(group: "Group", exp: Experiment, trainer: Any) -> list[str]:
    """What the log should say about how this run trains: options that do not apply here, the DDP split."""
    from .gpu_options import ignored_options
    notes = ignored_options(exp.train, trainer.device)
    if group.distributed:
        from .distributed import shard
        import torch
        sizes = [len(shard(torch.arange(trainer.global_batch), r, group.world_size)) for r in range(group.world_size)]
        notes.append(f"DistributedDataParallel over {group.world_size} processes on {trainer.device.type}: each "
                     f"step's global batch of {trainer.global_batch} is split {' + '.join(map(str, sizes))}")
    return notes


def _open_shared(group: "Group", exp: Experiment | None, runs_root: str | Path, resume: str | Path | None,
                 overrides: tuple[str, ...], known: Mapping[str, Experiment]
                 ) -> tuple[RunDir | None, Experiment, dict[str, Any] | None]:
    """(run dir to continue or None, experiment, checkpoint): rank 0 opens the run (``_open_run``) and broadcasts
    the resolved experiment; the other ranks get (None, experiment, None) and write nothing."""
    if group.is_main:
        try:
            run, exp, checkpoint = _open_run(exp, runs_root, resume, overrides, known)
        except Exception as exc:  # the other ranks are waiting for the broadcast: tell them, then fail alike
            group.broadcast(("config-error" if isinstance(exc, ConfigError) else "error", str(exc)))
            raise
        group.broadcast(("ok", exp.to_dict()))
        return run, exp, checkpoint
    kind, payload = group.broadcast(None)
    if kind != "ok":
        raise (ConfigError if kind == "config-error" else RuntimeError)(f"rank 0 could not open the run: {payload}")
    return None, experiment_from_dict(payload), None


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


def _new_run(runs_root: str | Path, exp: Experiment, trainer: Any) -> RunDir:
    """The run dir of a new run, once there is something to record; refused when the disk cannot hold a checkpoint."""
    parent = inside(runs_root, check_name(exp.name))
    require_free_space(parent, checkpoint_bytes(trainer))
    run = RunDir.create(runs_root, exp.name)
    run.write_config(exp)
    return run


def checkpoint_bytes(trainer: Any) -> int:
    """About what a checkpoint of ``trainer`` takes: the weights and the optimizer's per-parameter state."""
    weights = sum(t.numel() * t.element_size() for t in trainer.model.state_dict().values())
    per_param = {"adam": 2, "adamw": 2}.get(trainer.cfg.optimizer, 1 if trainer.cfg.momentum else 0)
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    return weights + per_param * params + (1 << 20)


class Recorder:
    """The run dir's ``emit``. Until the run dir exists (data and model still loading), events wait here, and a run
    that never starts leaves no dir. A write that fails (disk full) raises ``RunDirUnwritable`` once, which fails
    the run with that reason; later events go only to the screen."""

    def __init__(self, run: RunDir | None) -> None:
        self.run = run
        self.pending: list[Event] = []
        self.error: OSError | None = None
        # summary.json, what ``recipe-tui runs`` lists; a resumed run continues its own
        prior = None if run is None else (read_summary(run.path) or summary_from_events(run.events()))
        self.summary = RunSummary(None if run is None else run.path, prior)

    @property
    def path(self) -> Path | None:
        return self.run.path if self.run is not None else None

    def __call__(self, event: Event) -> None:
        if self.run is None:
            self.pending.append(event)
        elif self.error is None:
            try:
                self.run.record(event)
                self.summary(event)
            except OSError as exc:
                self.error = exc
                raise RunDirUnwritable(f"cannot write to the run dir {self.run.path}: {exc.strerror or exc}",
                                       getattr(event, "step", None)) from exc

    def open(self, run: RunDir) -> None:
        self.run = run
        self.summary.path = run.path
        pending, self.pending = self.pending, []
        for event in pending:
            self(event)

    def save_checkpoint(self, state: dict[str, Any], name: str = CHECKPOINT) -> Path:
        assert self.run is not None, "a checkpoint before the run dir exists"
        return self.run.save_checkpoint(state, name)

    def close(self) -> None:
        if self.run is not None:
            self.run.close()

    def discard(self) -> None:
        if self.run is not None:
            shutil.rmtree(self.run.path, ignore_errors=True)
            self.run = None


class RunDirUnwritable(Exception):
    """events.jsonl or metrics.csv could not be written (disk full, permissions changed mid-run). ``step``: the step
    of the event that could not be written, where the run's record ends (the trainer emits log steps in batches,
    so it may be further on when it hears of it)."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


def _open_run(exp: Experiment | None, runs_root: str | Path, resume: str | Path | None, overrides: tuple[str, ...],
              known: Mapping[str, Experiment]) -> tuple[RunDir | None, Experiment, dict[str, Any] | None]:
    """(the run dir to continue, or None for a new run, whose dir is made later; its experiment; the checkpoint to
    continue from). The runs dir is probed for writing first: a read-only or full disk is a ``ConfigError``."""
    if resume is None:
        assert exp is not None
        if overrides:
            exp = apply_overrides(exp, overrides)
        probe_writable(inside(runs_root, check_name(exp.name)))
        return None, exp, None
    try:
        run = RunDir.open(resume)
    except FileNotFoundError as exc:
        raise ConfigError(f"--resume {resume}: {exc}.") from None
    exp = trusted_experiment(run.read_config(), known)
    probe_writable(run.path)
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
    """The ``train --json`` document. Without a validation split, ``final`` holds no validation numbers (null)
    and ``train_loss`` is the last training loss; ``note`` says why."""
    final: dict[str, Any]
    if outcome.note == NO_VALIDATION:
        final = {"loss": None, "train_loss": outcome.final.get("loss")}
    else:
        final = {"loss": outcome.final.get("val_loss", outcome.final.get("loss"))}
        if "accuracy" in outcome.final:
            final["accuracy"] = outcome.final["accuracy"]
    doc: dict[str, Any] = {"run_dir": None if outcome.run_dir is None else str(outcome.run_dir),
                           "status": outcome.status, "steps": outcome.steps, "final": final}
    if outcome.reason:
        doc["reason"] = outcome.reason
    if outcome.note:
        doc["note"] = outcome.note
    if outcome.alarms:
        doc["alarms"] = [dict(a) for a in outcome.alarms]
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
