"""One tuning trial, trained as an ordinary run dir and told to the study; and the trials table, read from the study
(every worker's trials, whichever machine ran them).

A trial's run is tagged ``{"kind": "tune", "group": <study name>, "label": "trial N", "index": N}``; each evaluation's
validation loss is reported to Optuna (``trial.report``), and a trial the pruner gives up on is stopped at once and
told ``PRUNED`` (its run dir says ``stopped``). The value the study minimises is the final validation loss.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .config import ConfigError, apply_values
from .events import Eval, Event, RunStarted
from .stage_runs import numbers, train_run
from .tune import KIND
from .tune_space import space_of, suggest

if TYPE_CHECKING:
    from .checks.context import CheckContext

STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def run_trial(ctx: "CheckContext", study: Any, trial: Any, name: str) -> None:
    """Sample the trial's parameters, train them, tell the study how it went."""
    from optuna.trial import TrialState

    exp = ctx.exp
    steps = exp.tune.steps or exp.train.steps
    values = {key: suggest(trial, key, entry) for key, entry in space_of(exp).items()}
    try:
        run_exp = apply_values(exp, {**values, "train.steps": steps})
    except ConfigError as exc:  # a combination the recipe refuses (e.g. a width the heads do not divide)
        trial.set_user_attr("reason", str(exc))
        study.tell(trial, state=TrialState.FAIL)
        return
    control = ctx.control.linked()  # the pruner stops this run only; the job's stop reaches it too
    pruned: list[int] = []

    def on_event(e: Event) -> None:
        if isinstance(e, RunStarted):
            trial.set_user_attr("run_dir", e.run_dir)
        elif isinstance(e, Eval) and e.split == "val" and math.isfinite(e.loss) and not pruned:
            trial.report(e.loss, e.step)
            if trial.should_prune():
                pruned.append(e.step)
                control.stop.set()

    tag = {"kind": KIND, "group": name, "label": f"trial {trial.number}", "index": trial.number}
    t = train_run(ctx, run_exp, tag, (0, steps), control, on_event)
    for key, value in {**numbers(ctx, t), "seconds": t.seconds, "steps": t.steps}.items():
        trial.set_user_attr(key, value)
    if pruned and t.status == "stopped" and not ctx.stop.is_set():
        study.tell(trial, state=TrialState.PRUNED)
    elif t.status == "completed" and t.final.get("val_loss") is not None:
        study.tell(trial, float(t.final["val_loss"]))
    elif ctx.stop.is_set() or t.status == "stopped":
        study.tell(trial, state=TrialState.FAIL)  # no reason: stopped part-way, so it is tried again
    else:
        trial.set_user_attr("reason", t.reason or "no validation loss")
        study.tell(trial, state=TrialState.FAIL)


def trial_rows(study: Any, space: dict[str, Any], metric: str | None) -> list[dict[str, Any]]:
    """Every finished trial (completed, pruned, failed for a reason), best first: completed by validation loss,
    then pruned ones by the loss they were stopped at, then failed ones."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        retried = t.state == TrialState.FAIL and "reason" not in t.user_attrs  # stopped part-way: run again
        if t.state in (TrialState.RUNNING, TrialState.WAITING) or retried:
            continue
        a = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "label": a.get("label", ""), "status": STATES[t.state.name],
                               **{key: t.params.get(key) for key in space},
                               "val_loss": t.value if t.value is not None else a.get("val_loss")}
        if metric:
            row[metric] = a.get(metric)
        row.update(steps=a.get("steps"), seconds=a.get("seconds"), run_dir=a.get("run_dir"), note=a.get("reason", ""))
        if t.state == TrialState.PRUNED:
            last = max(t.intermediate_values) if t.intermediate_values else None
            row["note"] = f"pruned at step {last:,}: worse than the median of the trials before it" if last \
                else "pruned"
        rows.append(row)
    order = {"completed": 0, "pruned": 1, "failed": 2}
    return sorted(rows, key=lambda r: (order[r["status"]], r["val_loss"] if r["val_loss"] is not None else math.inf,
                                       r["trial"]))
