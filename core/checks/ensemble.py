"""Stage 6, "ensembles": "a pretty much guaranteed way to gain ~2 % of accuracy". The members (``core/ensemble.py``)
are trained when they do not exist yet (ordinary run dirs tagged ``{"kind": "ensemble", …}``; a re-run reuses
them), then each is measured on the validation split and the ensemble averages their probabilities. The table:
each member, the mean member, the ensemble, and the gain.
"""
from __future__ import annotations

import json
from typing import Any

from ..ensemble import Average, Member, NoMembers, members, score, split_outputs
from ..events import CheckRow
from ..stage_runs import digest, item_dir, loaded_model, train_or_reuse
from .common import fmt, num
from .context import CheckContext
from .verdict import Verdict

ID = "ensemble"
TABLE = "members"
HINT = ("Model ensembles are a pretty much guaranteed way to gain ~2 % of accuracy (the recipe). If the ensemble is "
        "too costly at test time, distill it into one network (the distill item).")


def check(ctx: CheckContext) -> Verdict:
    if not len(ctx.splits().val):
        return Verdict("skip", "no validation split (data.val_fraction = 0): nothing to measure the ensemble on.",
                       {TABLE: []}, "Set data.val_fraction (e.g. 0.2).")
    try:
        chosen, source = members(ctx)
    except NoMembers as exc:
        return Verdict("skip", str(exc), {TABLE: []}, HINT)
    group = ensemble_group(ctx, chosen)
    rows, avg, y = [], Average(ctx.task), None
    for i, member in enumerate(chosen):
        row, out, y = member_row(ctx, member, group, i, len(chosen))
        rows.append(row)
        ctx.emit(CheckRow(id=ID, table=TABLE, row=row))
        if out is not None:
            avg.add(out)
        if ctx.stop.is_set():
            return Verdict("skip", f"stopped after {len(rows)} of {len(chosen)} members; the finished runs are kept "
                           "and a re-run picks them up.", {TABLE: rows, "group": group, "source": source})
    return _verdict(ctx, rows, avg, y, group, source)


def ensemble_group(ctx: CheckContext, chosen: list[Member]) -> str:
    """The members' tag group (and the folder of ensemble.json): the same members, the same group."""
    return f"{ID}-{digest(ctx.exp, ID, [m.exp.to_dict() if m.exp else str(m.run_dir) for m in chosen])}"


def member_row(ctx: CheckContext, member: Member, group: str, i: int, n: int) -> tuple[dict[str, Any], Any, Any]:
    """(the member's row, its validation outputs or None when it did not train, the targets)."""
    run_dir, reused, seconds = member.run_dir, True, 0.0
    if member.exp is not None:
        steps = member.exp.train.steps
        t = train_or_reuse(ctx, member.exp, {"kind": ID, "group": group, "label": member.label, "index": i},
                           (i * steps, n * steps))
        run_dir, reused, seconds = t.run_dir, t.reused, t.seconds
        if t.status != "completed" or t.run_dir is None:
            return {"member": member.label, "status": t.status, "note": t.reason, "run_dir": str(t.run_dir)}, None, None
    assert run_dir is not None
    out, y = split_outputs(ctx, loaded_model(ctx, run_dir), ctx.splits().val)
    row = {"member": member.label, "status": "reused" if reused else "trained",
           **{k: num(v, 5) for k, v in score(ctx.task, out, y).items()}, "seconds": seconds, "run_dir": str(run_dir)}
    return row, out, y


def _verdict(ctx: CheckContext, rows: list[dict[str, Any]], avg: Average, y: Any, group: str,
             source: str) -> Verdict:
    done = [r for r in rows if "val_loss" in r]
    failed = [r["member"] for r in rows if "val_loss" not in r]
    if len(done) < 2:
        return Verdict("error", f"fewer than two members trained ({', '.join(failed)} failed).",
                       {TABLE: rows, "group": group, "source": source}, "The runs' logs say why (recipe-tui runs).")
    metric = ctx.task.metric
    keys = ["val_loss", *([metric] if metric else [])]
    mean = {"member": "mean member", **{k: num(sum(r[k] for r in done) / len(done), 5) for k in keys}}
    ens = {"member": f"ensemble of {len(done)}", **{k: num(v, 5) for k, v in score(ctx.task, avg.mean(), y).items()}}
    best = min(done, key=lambda r: r["val_loss"])
    for row in (mean, ens):
        rows.append(row)
        ctx.emit(CheckRow(id=ID, table=TABLE, row=row))
    gain = {"val_loss": num(mean["val_loss"] - ens["val_loss"], 5),
            "val_loss_relative": num((mean["val_loss"] - ens["val_loss"]) / mean["val_loss"], 4)}
    if metric:
        gain[metric] = num(ens[metric] - mean[metric], 5)
    m = {TABLE: rows, "mean_member": mean, "ensemble": ens, "best_member": best["member"], "gain": gain,
         "group": group, "source": source}
    (item_dir(ctx.runs_root, ctx.exp, group) / "ensemble.json").write_text(json.dumps(m, indent=2))
    acc = f", {metric} {fmt(mean[metric])} → {fmt(ens[metric])} ({gain[metric] * 100:+.2f} points)" if metric else ""
    beats = ens["val_loss"] < mean["val_loss"]
    summary = (f"ensemble of {len(done)} ({source}): validation loss {fmt(mean['val_loss'])} (mean member) → "
               f"{fmt(ens['val_loss'])} ({gain['val_loss_relative']:.1%} lower){acc}; the best member alone: "
               f"{fmt(best['val_loss'])}." + (f" {', '.join(failed)} failed." if failed else ""))
    return Verdict("pass" if beats and not failed else "warn", summary, m, HINT)
