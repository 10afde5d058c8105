"""Stage 6, "distill": "if you cannot afford the ensemble at test time, distill it into one network" (Hinton et al.
2015). The teacher is the ensemble item's ensemble (its members are trained when missing, or reused); its averaged
probabilities on the training split go to ``distill-<digest>/teacher.pt``; one student — the recipe's model, or
``distill.width`` — trains on them, softened by ``distill.temperature`` and mixed with the hard labels
(``core/distill.py``), and the same model trains on the hard labels alone, same seed and steps. Both are ordinary
runs (a re-run reuses them); the table says honestly whether distillation helped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import apply_values
from ..distill import TEACHER, write_teacher
from ..ensemble import Average, NoMembers, members, score, split_outputs
from ..events import CheckRow
from ..stage_runs import Trained, digest, item_dir, loaded_model, train_or_reuse
from .common import fmt, num
from .context import CheckContext
from .ensemble import ensemble_group, member_row
from .verdict import Verdict

ID = "distill"
TABLE = "models"
HINT = ("Distillation helps most with a strong teacher and a smaller student; try another distill.temperature "
        "(2–8) or distill.alpha, or more steps.")


def check(ctx: CheckContext) -> Verdict:
    if not len(ctx.splits().val) or not ctx.task.classes:
        why = ("no validation split" if ctx.task.classes
               else f"a {ctx.exp.task} task has no class probabilities to soften")
        return Verdict("skip", f"{why}: nothing to distill here.", {TABLE: []}, HINT)
    try:
        chosen, source = members(ctx)
    except NoMembers as exc:
        return Verdict("skip", str(exc), {TABLE: []}, HINT)
    group = ensemble_group(ctx, chosen)
    avg, runs, y, teacher_rows = Average(ctx.task), [], None, []
    for i, member in enumerate(chosen):  # the ensemble's members: trained when missing, else reused
        row, out, y = member_row(ctx, member, group, i, len(chosen))
        teacher_rows.append(row)
        ctx.emit(CheckRow(id=ID, table="teacher", row=row))
        if out is not None:
            avg.add(out)
            runs.append(row["run_dir"])
        if ctx.stop.is_set():
            return _stopped(teacher_rows, [])
    if len(runs) < 2:
        return Verdict("error", "fewer than two ensemble members trained: no teacher.", {"teacher": teacher_rows})
    teacher = {"model": f"teacher: ensemble of {len(runs)}", "status": "—",
               **{k: num(v, 5) for k, v in score(ctx.task, avg.mean(), y).items()}}
    ctx.emit(CheckRow(id=ID, table=TABLE, row=teacher))
    return _students(ctx, runs, teacher, teacher_rows, source)


def _students(ctx: CheckContext, runs: list[str], teacher: dict[str, Any], teacher_rows: list[dict[str, Any]],
              source: str) -> Verdict:
    plan = ctx.exp.distill
    width = plan.width if plan.width and ctx.exp.model.factory is None and ctx.exp.model.name != "linear" else 0
    steps = plan.steps or ctx.exp.train.steps
    if not steps:
        return Verdict("skip", "train.steps = 0 and distill.steps = 0: the students need a budget.", {TABLE: [teacher]})
    group = f"{ID}-{digest(ctx.exp, ID, plan.temperature, plan.alpha, width, steps, runs)}"
    path = _teacher_file(ctx, runs, item_dir(ctx.runs_root, ctx.exp, group))
    student = apply_values(ctx.exp, {"train.steps": steps, **({"model.width": width} if width else {})})
    label = f"distilled (T={plan.temperature:g}, α={plan.alpha:g})"
    rows = [teacher]
    for i, (name, exp) in enumerate((("hard labels", student),
                                     (label, apply_values(student, {"train.teacher": str(path)})))):
        t = train_or_reuse(ctx, exp, {"kind": ID, "group": group, "label": name, "index": i}, (i * steps, 2 * steps))
        rows.append(_row(ctx, name, t))
        ctx.emit(CheckRow(id=ID, table=TABLE, row=rows[-1]))
        if ctx.stop.is_set():
            return _stopped(teacher_rows, rows)
    return _verdict(ctx, rows, teacher_rows, group, source, path)


def _teacher_file(ctx: CheckContext, runs: list[str], folder: Path) -> Path:
    """The ensemble's log of averaged probabilities on the training split (kept while the members are the same)."""
    import torch

    path = folder / TEACHER
    if path.is_file():
        try:
            if torch.load(path, map_location="cpu", weights_only=True).get("members") == runs:
                return path
        except (OSError, RuntimeError):
            pass
    avg = Average(ctx.task)
    train = ctx.splits().train
    train = getattr(train, "base", train)  # the teacher sees the examples without the recipe's augmentation
    for run in runs:
        avg.add(split_outputs(ctx, loaded_model(ctx, Path(run)), train)[0])
    return write_teacher(folder, avg.mean(), runs)


def _row(ctx: CheckContext, name: str, t: Trained) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "status": ("reused" if t.reused else "trained") if t.status == "completed"
                           else t.status}
    if t.status == "completed" and t.run_dir is not None:
        model = loaded_model(ctx, t.run_dir)
        out, y = split_outputs(ctx, model, ctx.splits().val)
        row.update({k: num(v, 5) for k, v in score(ctx.task, out, y).items()})
        row["params"] = sum(p.numel() for p in model.parameters())
    return {**row, "seconds": t.seconds, "run_dir": str(t.run_dir) if t.run_dir else None, "note": t.reason}


def _stopped(teacher_rows: list[dict[str, Any]], rows: list[dict[str, Any]]) -> Verdict:
    return Verdict("skip", "stopped before the students finished; the finished runs are kept and a re-run picks "
                   "them up.", {TABLE: rows, "teacher": teacher_rows})


def _verdict(ctx: CheckContext, rows: list[dict[str, Any]], teacher_rows: list[dict[str, Any]], group: str,
             source: str, path: Path) -> Verdict:
    teacher, hard, soft = rows
    m = {TABLE: rows, "teacher": teacher_rows, "group": group, "source": source, "teacher_file": str(path),
         "temperature": ctx.exp.distill.temperature, "alpha": ctx.exp.distill.alpha}
    if "val_loss" not in hard or "val_loss" not in soft:
        return Verdict("error", f"a student did not train ({hard['status']}, {soft['status']}).", m,
                       "The runs' logs say why (recipe-tui runs).")
    metric = ctx.task.metric
    delta = num(soft["val_loss"] - hard["val_loss"], 5)
    m["delta"] = {"val_loss": delta, **({metric: num(soft[metric] - hard[metric], 5)} if metric else {})}
    acc = (f", {metric} {fmt(hard[metric])} → {fmt(soft[metric])}" if metric else "")
    numbers = (f"validation loss {fmt(hard['val_loss'])} on hard labels alone → {fmt(soft['val_loss'])} distilled"
               f"{acc} (teacher: {fmt(teacher['val_loss'])}; {hard.get('params', 0):,} parameters, same seed and "
               "steps)")
    if delta < 0:
        return Verdict("pass", f"distillation helped: {numbers}.", m,
                       "Ship the student when the ensemble is too costly at test time.")
    return Verdict("warn", f"distillation did not help: {numbers}.", m, HINT)
