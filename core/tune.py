"""``tune``: random search (the recipe: random over grid search) on Optuna — its samplers, its median pruner, its
storages. Our code never schedules or samples: each worker asks the study for a trial, trains it as an ordinary
tagged run dir, reports each evaluation's validation loss (the pruner may stop it) and tells the result.

The study lives in a storage several workers share: by default a journal file in the recipe's runs dir
(``tune-<digest>/journal.log``), else ``tune.storage`` (a journal file path, or an RDB URL such as
``sqlite:///tune.db`` or ``postgresql://…``). Its name is ``<recipe>-tune-<digest>`` (the digest of the
experiment, the trials' steps and the space) unless ``tune.study`` names it, so running the item again (with a larger
budget, another sampler) continues the same study: the finished trials stay, and the budget (``tune.trials``) counts
them. A trial stopped part-way (``s``, ctrl+c, a killed worker) is tried again, with the same parameters, by the
next worker that starts.

Workers on one machine take trials under a file lock beside the storage, so they never start more trials than the
budget; on an RDB server shared by several machines (no common file to lock) the study can end a trial or two over
it, when workers on different machines finish at the same moment.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .config import ConfigError, Experiment
from .stage_runs import digest, item_dir
from .tune_space import recipe_point, space_of

KIND = "tune"
JOURNAL = "journal.log"


@dataclass(frozen=True)
class StudyPlace:
    name: str  # the study's name in its storage
    storage: str  # what the user would pass as --storage (a journal file path, or an RDB URL)
    folder: Path  # where best.toml goes (and the default journal)
    lock: Path | None  # a file to lock while taking a trial (None: an RDB server, nothing local to lock)


def study_place(exp: Experiment, runs_root: str | Path, create: bool = True) -> StudyPlace:
    plan = exp.tune
    # what a trial is (the experiment, its steps, the space); not the budget, sampler or pruner: raising tune.trials
    # or switching to TPE continues the same study
    key = digest(exp, KIND, plan.steps or exp.train.steps, space_of(exp))
    default = f"{exp.name}-{KIND}-{key}"
    name = plan.study or default
    named = hashlib.sha256(name.encode()).hexdigest()[:8]  # a study named by the user: a folder of its own
    folder = item_dir(runs_root, exp, f"{KIND}-{key}" if name == default else f"{KIND}-{named}", create)
    storage = plan.storage or str(folder / JOURNAL)
    if "://" not in storage:
        return StudyPlace(name, str(Path(storage).resolve()), folder, Path(storage).resolve().with_name(
            Path(storage).name + ".budget"))
    local = storage.split(":///", 1)[1] if storage.startswith("sqlite:///") else ""
    return StudyPlace(name, storage, folder, Path(local + ".budget") if local else None)


def open_study(exp: Experiment, place: StudyPlace, worker: int = 0) -> Any:
    """The study (created, or loaded when it exists), with a sampler seeded for this worker and this moment of the
    study: two workers, or a re-run, never replay one random sequence."""
    import optuna

    try:
        storage = _storage(place)
        study = optuna.create_study(study_name=place.name, storage=storage, direction="minimize", load_if_exists=True)
    except Exception as exc:  # a bad URL, a missing database driver, an unwritable path: bad configuration
        raise ConfigError(f"tune.storage: cannot open the study '{place.name}' in {place.storage}: "
                          f"{type(exc).__name__}: {exc}".rstrip(".") + ".") from None
    seed = int.from_bytes(hashlib.sha256(repr((exp.train.seed, place.name, len(study.trials), worker,
                                                socket.gethostname())).encode()).digest()[:4], "big")
    sampler = (optuna.samplers.TPESampler(seed=seed) if exp.tune.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    steps = exp.tune.steps or exp.train.steps
    pruner = (optuna.pruners.MedianPruner(n_warmup_steps=steps // 4)  # Optuna's: judged after 5 trials
              if exp.tune.pruner == "median" else optuna.pruners.NopPruner())
    return optuna.load_study(study_name=place.name, storage=storage, sampler=sampler, pruner=pruner)


def best_trial(exp: Experiment, runs_root: str | Path) -> tuple[dict[str, Any], str, int] | None:
    """(the parameters of the study's best completed trial, the study's name, the trial's number), or None when the
    study does not exist or has no completed trial. Creates nothing."""
    import optuna
    from optuna.trial import TrialState

    place = study_place(exp, runs_root, create=False)
    if "://" not in place.storage and not Path(place.storage).is_file():
        return None
    try:
        study = optuna.load_study(study_name=place.name, storage=_storage(place))
    except KeyError:
        return None  # no such study yet
    except Exception as exc:
        raise ConfigError(f"tune.storage: cannot read the study '{place.name}' in {place.storage}: "
                          f"{type(exc).__name__}: {exc}".rstrip(".") + ".") from None
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    best = min(done, key=lambda t: t.value)
    return dict(best.params), place.name, best.number


def _storage(place: StudyPlace) -> Any:
    """The storage object Optuna takes: a journal file backend for a path, the URL itself for an RDB."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if "://" in place.storage:
        return place.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    Path(place.storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(place.storage))


@contextlib.contextmanager
def budget_lock(place: StudyPlace) -> Iterator[None]:
    """Held while a worker counts the trials and takes one: workers on this machine never exceed the budget."""
    if place.lock is None:
        yield
        return
    with open(place.lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def take_trial(study: Any, exp: Experiment, place: StudyPlace) -> Any | None:
    """The next trial of the study (``study.ask``), or None once the budget is spent. The first trial is the recipe
    itself when it lies in the space; trials stopped part-way are asked again first."""
    with budget_lock(place):
        _fail_orphans(study)
        if spent(study) >= exp.tune.trials:
            return None
        _requeue_stopped(study)
        if not study.trials:
            point = recipe_point(exp, space_of(exp))
            if point is not None:
                study.enqueue_trial(point, user_attrs={"label": "recipe"})
        trial = study.ask()
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        return trial


def spent(study: Any) -> int:
    """Trials that count against the budget: finished, pruned, running, or failed for a reason of their own (a trial
    that was stopped, or whose worker died, is tried again and does not count)."""
    from optuna.trial import TrialState
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.state in counted or (t.state == TrialState.FAIL and "reason" in t.user_attrs)
               for t in study.get_trials(deepcopy=False))


def _requeue_stopped(study: Any) -> None:
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and "reason" not in t.user_attrs and t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number, **(
                {"label": t.user_attrs["label"]} if "label" in t.user_attrs else {})})


def _fail_orphans(study: Any) -> None:
    """Running trials of workers on this machine that are gone (killed): failed without a reason, so retried."""
    import psutil
    from optuna.trial import TrialState
    here = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == here and isinstance(pid, int) and pid != os.getpid() \
                and not psutil.pid_exists(pid):
            study.tell(t.number, state=TrialState.FAIL)
