"""Stage 4, "regularize": the ladder — one change at a time, each a run from the same seed and budget, starting
from the recipe; a rung is kept when it lowers validation loss below the previous kept rung's.

Rungs come from ``core/ladder.py`` (the plan ``[recipe.NAME.regularize]``). Each is an ordinary run dir tagged
``{"kind": "regularize", "group": "regularize-<digest>", "label": …}``; a re-run reuses every rung that finished
(``stage_runs.find_completed``: a completed run whose configuration is the rung's). The table: training loss (eval
mode, the training examples without augmentation), validation loss, the generalization gap, the metric and the
delta against the previous kept rung. The kept combination goes to ``regularize-<digest>/regularize.toml``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import apply_values
from ..events import CheckRow
from ..ladder import Rung, ladder
from ..snippet import recipe_snippet, write_snippet
from ..stage_runs import digest, item_dir, loaded_model, numbers, train_or_reuse, train_set_loss
from .common import fmt, num
from .context import CheckContext
from .verdict import Verdict

ID = "regularize"
TABLE = "rungs"
HINT = ("The recipe's regularizers, one at a time: more data first, augmentation, a smaller model, dropout, weight "
        "decay, early stopping. Keep what lowers validation loss; the rungs are ordinary runs (recipe-tui runs).")


def check(ctx: CheckContext) -> Verdict:
    exp = ctx.exp
    if not len(ctx.splits().val):
        return Verdict("skip", "no validation split (data.val_fraction = 0): the ladder compares validation losses.",
                       {TABLE: []}, "Set data.val_fraction (e.g. 0.2) to regularize against held-out data.")
    rungs = ladder(exp, ctx.splits().info, ctx.new_model())
    steps = exp.regularize.steps or exp.train.steps
    if not steps:
        return Verdict("skip", "train.steps = 0 (open-ended) and regularize.steps = 0: a ladder needs a budget.",
                       {TABLE: []}, "Set regularize.steps, e.g. 2000.")
    group = f"{ID}-{digest(exp, ID, steps, [r.change for r in rungs])}"
    runnable = [r for r in rungs if not r.skipped]
    kept: dict[str, Any] = {}
    best: dict[str, Any] | None = None  # the last kept rung's row
    rows: list[dict[str, Any]] = []
    for rung in rungs:
        row = _skipped(rung) if rung.skipped else _climb(ctx, rung, kept, best, steps, group,
                                                          runnable.index(rung), len(runnable))
        rows.append(row)
        ctx.emit(CheckRow(id=ID, table=TABLE, row=row))
        if row["kept"]:
            kept, best = {**kept, **rung.change}, row
        if ctx.stop.is_set():
            trained = sum(r["status"] != "skipped" for r in rows)
            return Verdict("skip", f"stopped after {trained} of {len(runnable)} rungs; the finished runs are kept and "
                           "a re-run picks them up.", _metrics(rows, group, steps, kept, None))
    return _verdict(ctx, rows, kept, group, steps)


def _climb(ctx: CheckContext, rung: Rung, kept: dict[str, Any], best: dict[str, Any] | None, steps: int, group: str,
           i: int, n: int) -> dict[str, Any]:
    """Train one rung (or find it trained): the kept changes plus this one, the ladder's steps."""
    from ..augment import notes

    exp = apply_values(ctx.exp, {**kept, **rung.change, "train.steps": steps})
    tag = {"kind": ID, "group": group, "label": rung.label, "index": i}
    t = train_or_reuse(ctx, exp, tag, (i * steps, n * steps))
    note = "; ".join(x for x in (rung.note, *notes(exp, ctx.splits()), t.reason,
                                 _early(t.early_stop)) if x)
    row: dict[str, Any] = {"rung": rung.name, "label": rung.label, "changes": rung.change, "status": t.status,
                           "kept": False, "reused": t.reused, "train_loss": None, **numbers(ctx, t), "gap": None,
                           "delta": None, "seconds": t.seconds, "run_dir": str(t.run_dir) if t.run_dir else None,
                           "note": note}
    if t.status != "completed" or row["val_loss"] is None or t.run_dir is None:
        return row
    row["train_loss"] = num(train_set_loss(ctx, loaded_model(ctx, t.run_dir)), 5)
    row["gap"] = num(row["val_loss"] - row["train_loss"], 5)
    if best is None:
        row["kept"] = rung.name == "baseline"
    else:
        row["delta"] = num(row["val_loss"] - best["val_loss"], 5)
        row["kept"] = row["val_loss"] < best["val_loss"]
    return row


def _early(early_stop: dict[str, Any]) -> str:
    return f"stopped early at step {early_stop['step']:,} (best at {early_stop['best_step']:,})" if early_stop else ""


def _skipped(rung: Rung) -> dict[str, Any]:
    return {"rung": rung.name, "label": rung.label, "changes": rung.change, "status": "skipped", "kept": False,
            "note": rung.skipped}


def _metrics(rows: list[dict[str, Any]], group: str, steps: int, kept: dict[str, Any],
             snippet: Path | None) -> dict[str, Any]:
    return {TABLE: rows, "kept": kept, "group": group, "steps": steps,
            "snippet": str(snippet) if snippet else None}


def _verdict(ctx: CheckContext, rows: list[dict[str, Any]], kept: dict[str, Any], group: str, steps: int) -> Verdict:
    base = rows[0]
    if base["status"] != "completed" or base.get("val_loss") is None:
        why = base.get("note") or "no validation loss"
        return Verdict("error", f"the recipe itself did not train ({base['status']}: {why}).",
                       _metrics(rows, group, steps, kept, None), "The run's log says why (recipe-tui runs lists it).")
    gained = [r for r in rows[1:] if r["kept"]]
    failed = [r["label"] for r in rows if r["status"] in ("failed", "stopped")]
    trained = [r for r in rows if r["status"] == "completed"]
    narrowest = min(trained, key=lambda r: r["gap"] if r["gap"] is not None else float("inf"))
    tail = (f" Gap {fmt(base['gap'])} → {fmt(narrowest['gap'])} at its narrowest ({narrowest['label']})."
            + (f" {', '.join(failed)} did not finish." if failed else ""))
    if not gained:
        return Verdict("warn", f"no rung lowered validation loss below the recipe's {fmt(base['val_loss'])} "
                       f"({len(trained) - 1} tried, {steps:,} steps each).{tail}",
                       _metrics(rows, group, steps, kept, None),
                       "The model may not overfit at this budget (a small gap), or needs another regularizer: more "
                       "data, a smaller model, pretraining; or a larger ladder budget (regularize.steps).")
    last = gained[-1]
    path = _snippet(ctx, kept, group, steps, base, last)
    return Verdict("pass", f"kept {len(gained)} of {len(trained) - 1} rungs ({', '.join(r['label'] for r in gained)}): "
                   f"validation loss {fmt(base['val_loss'])} → {fmt(last['val_loss'])}, "
                   f"{ctx.task.metric or 'metric'} "
                   f"{_metric(ctx, base)} → {_metric(ctx, last)}.{tail} The combination: {path}.",
                   _metrics(rows, group, steps, kept, path), HINT)


def _metric(ctx: CheckContext, row: dict[str, Any]) -> str:
    value = row.get(ctx.task.metric or "")
    return fmt(value) if isinstance(value, float) else "—"


def _snippet(ctx: CheckContext, kept: dict[str, Any], group: str, steps: int, base: dict[str, Any],
             last: dict[str, Any]) -> Path:
    exp = apply_values(ctx.exp, kept)
    name = f"{ctx.exp.name}-regularized"
    comments = [f"recipe-tui regularize ({group}): the kept rungs on top of [recipe.{ctx.exp.name}], measured at "
                f"{steps:,} steps: validation loss {fmt(base['val_loss'])} → {fmt(last['val_loss'])}.",
                f"Paste it into recipes.toml and train it with --recipe {name}, or merge its keys into the recipe."]
    text = recipe_snippet(exp, name, comments, kept)
    return write_snippet(item_dir(ctx.runs_root, ctx.exp, group), "regularize.toml", text)
