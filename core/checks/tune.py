"""Stage 5, "tune": random search over the plan's space on Optuna (``core/tune.py``), as one worker of the study —
``recipe-tui tune --workers N`` adds more, on this machine's GPUs or other machines. The trials table is sorted by
validation loss and grows live (a ``check_row`` per trial, whoever ran it); the best configuration goes to
``best.toml`` in the study's folder, as a recipe ready to paste.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import apply_values
from ..events import CheckRow
from ..snippet import recipe_snippet, write_snippet
from ..trials import run_trial, trial_rows
from ..tune import StudyPlace, open_study, study_place, take_trial
from ..tune_space import space_of
from .common import fmt
from .context import CheckContext
from .verdict import Verdict

ID = "tune"
TABLE = "trials"
HINT = ("Random search over several hyper-parameters beats a grid; narrow the space around the best trials and run "
        "again (the finished trials stay in the study), or sampler = \"tpe\". Check the best with more steps "
        "before trusting it.")


def check(ctx: CheckContext) -> Verdict:
    refusal = refused(ctx)
    if refusal is not None:
        return refusal
    place = study_place(ctx.exp, ctx.runs_root)
    study = open_study(ctx.exp, place, worker=0)
    work(ctx, study, place, shown=set())
    return summarise(ctx, study, place)


def work(ctx: CheckContext, study: Any, place: StudyPlace, shown: set[int] | None = None) -> None:
    """One worker: take trials and train them until the budget is spent or the job stops. ``shown``: emit a
    ``check_row`` for every trial that finishes (any worker's), those finished before first."""
    if shown is not None:
        new_rows(ctx, study, shown)
    while not ctx.stop.is_set():
        trial = take_trial(study, ctx.exp, place)
        if trial is None:
            return
        run_trial(ctx, study, trial, place.name)
        if shown is not None:
            new_rows(ctx, study, shown)


def refused(ctx: CheckContext) -> Verdict | None:
    if not len(ctx.splits().val):
        return Verdict("skip", "no validation split (data.val_fraction = 0): trials are compared on validation loss.",
                       {TABLE: []}, "Set data.val_fraction (e.g. 0.2).")
    if not (ctx.exp.tune.steps or ctx.exp.train.steps):
        return Verdict("skip", "train.steps = 0 (open-ended) and tune.steps = 0: every trial needs a budget.",
                       {TABLE: []}, "Set tune.steps, e.g. 1000.")
    return None


def new_rows(ctx: CheckContext, study: Any, shown: set[int]) -> None:
    """A ``check_row`` for each trial that finished since the last call (any worker's)."""
    for row in trial_rows(study, space_of(ctx.exp), ctx.task.metric):
        if row["trial"] not in shown:
            shown.add(row["trial"])
            ctx.emit(CheckRow(id=ID, table=TABLE, row=row))


def metrics(ctx: CheckContext, place: StudyPlace, rows: list[dict[str, Any]], snippet: Path | None) -> dict[str, Any]:
    plan = ctx.exp.tune
    best = next((r for r in rows if r["status"] == "completed"), None)
    recipe = next((r for r in rows if r["label"] == "recipe" and r["status"] == "completed"), None)
    return {TABLE: rows, "study": place.name, "storage": place.storage, "space": space_of(ctx.exp),
            "budget": plan.trials, "steps": plan.steps or ctx.exp.train.steps, "sampler": plan.sampler,
            "pruner": plan.pruner, "best": best, "recipe": recipe, "snippet": str(snippet) if snippet else None}


def summarise(ctx: CheckContext, study: Any, place: StudyPlace) -> Verdict:
    """The verdict on the study as it stands (also what `recipe-tui tune --workers N` prints at the end); a skip
    when the job was stopped."""
    space = space_of(ctx.exp)
    rows = trial_rows(study, space, ctx.task.metric)
    if ctx.stop.is_set():
        return Verdict("skip", f"stopped after {len(rows)} of {ctx.exp.tune.trials} trials; they stay in the study "
                       f"'{place.name}' and a re-run continues it.", metrics(ctx, place, rows, None))
    done = [r for r in rows if r["status"] == "completed"]
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in ("completed", "pruned", "failed")
                       if any(r["status"] == s for r in rows))
    if not done:
        return Verdict("error", f"no trial completed ({counts or 'none ran'}).", metrics(ctx, place, rows, None),
                       "The failed trials' notes say why; narrow the space away from values that fail.")
    best = done[0]
    values = {k: best[k] for k in space}
    path = _snippet(ctx, place, values, best)
    m = metrics(ctx, place, rows, path)
    chosen = ", ".join(f"{k}={_shown(v)}" for k, v in values.items())
    versus = (f"; the recipe's {fmt(m['recipe']['val_loss'])} at the same {m['steps']:,} steps"
              if m["recipe"] and best is not m["recipe"] else
              " — the recipe itself is the best" if m["recipe"] else " (the recipe lies outside the space)")
    return Verdict("pass", f"best of {len(rows)} trials ({counts}): validation loss {fmt(best['val_loss'])} with "
                   f"{chosen} (trial {best['trial']}){versus}. The configuration: {path}.", m, HINT)


def _shown(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _snippet(ctx: CheckContext, place: StudyPlace, values: dict[str, Any], best: dict[str, Any]) -> Path:
    name = f"{ctx.exp.name}-tuned"
    comments = [f"recipe-tui tune: the best of study '{place.name}' ({place.storage}), trial {best['trial']}: "
                f"validation loss {fmt(best['val_loss'])} after {ctx.exp.tune.steps or ctx.exp.train.steps:,} steps.",
                f"Paste it into recipes.toml and train it with --recipe {name}, or merge its keys into the recipe."]
    text = recipe_snippet(apply_values(ctx.exp, values), name, comments, values)
    return write_snippet(place.folder, "best.toml", text)
