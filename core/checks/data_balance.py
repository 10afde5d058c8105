"""Stage 1: class imbalance — histograms per split, imbalance ratio, classes missing from a split."""
from __future__ import annotations

from .context import CheckContext
from .verdict import Verdict


def _init_bias_hint(name: str) -> str:
    return (f"Init well: set model.init_bias = true under [recipe.{name}] in recipes.toml — the final-layer bias then "
            "starts at the log class priors, so the loss at init is the prior's entropy instead of ln C and the first "
            "iterations are not spent learning the bias (check it with the init-bias item).")


def check(ctx: CheckContext) -> Verdict:
    from ..audit.balance import class_balance
    from ..audit.pipeline import audit_scans, audit_splits

    cfg, task = ctx.exp.checks, ctx.task
    if not task.classes:
        return Verdict("skip", f"{task.name}: there are no classes to balance.",
                       hint="Look at the histogram of the targets instead (data-stats, the sample browser).")
    info = audit_splits(ctx).info
    m = class_balance(audit_scans(ctx), info.num_classes, info.class_names, info.ignore_index)
    m["limit"] = cfg.imbalance_ratio
    if not m["splits"]:
        return Verdict("skip", "the dataset returns no integer labels to count.", m)
    names = list(m["splits"])
    train = m["splits"][names[0]]
    what = "target tokens" if task.sequence else "classes"
    shown = " · ".join(f"{s} {d['total']:,}" for s, d in m["splits"].items())
    desc = (f"{len(m['classes'])} {what} ({shown}); least/most common in {names[0]} "
            f"{train['ratio']:.3f} ({train['least']!r} vs {train['most']!r})")
    if m["invalid"]:
        bad = ", ".join(f"{s}: {n}" for s, n in m["invalid"].items())
        return Verdict("fail", f"{desc}; labels outside 0…{len(m['classes']) - 1}: {bad}.", m,
                       "Map the labels to 0…C−1 (and make the model output C classes); an out-of-range label "
                       "crashes cross-entropy or silently trains the wrong class.")
    missing_train = m["missing"].get(names[0], [])
    if missing_train and task.example_labels:  # a token unseen in train is no reason to fail
        return Verdict("fail", f"{desc}; classes never seen in {names[0]}: {missing_train}.", m,
                       "The model cannot learn a class it never sees: add examples or drop the class (and its output).")
    problems, hints = [], []
    held_out = {s: v for s, v in m["missing"].items() if s != names[0]}
    if held_out and task.example_labels:
        problems.append("missing from " + "; ".join(f"{s}: {v}" for s, v in held_out.items()))
        hints.append("Re-split stratified by class so every class appears in every split: otherwise val/test "
                     "cannot measure those classes.")
    imbalanced = train["ratio"] < cfg.imbalance_ratio
    if imbalanced and not ctx.exp.model.init_bias:
        problems.append(f"imbalanced (ratio below {cfg.imbalance_ratio:g})")
        hints.append(_init_bias_hint(ctx.exp.name) + " Accuracy alone is misleading here: watch per-class metrics.")
    if problems:
        return Verdict("warn", f"{desc}; {'; '.join(problems)}.", m, " ".join(hints))
    note = " (imbalanced; model.init_bias is on)" if imbalanced else ""
    return Verdict("pass", f"{desc}{note}.", m,
                   "Balanced enough: the loss at init should be about ln C." if not imbalanced else
                   "The final-layer bias starts at the log priors; check it with the init-loss item.")
