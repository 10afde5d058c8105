"""Stage 1: label noise — confident learning on out-of-sample probabilities of a quick cross-fitted model."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import CheckContext
from .verdict import Verdict

if TYPE_CHECKING:
    import numpy as np

    from ..audit.scan import SplitScan


# The quick model learnt nothing usable when its held-out accuracy closes less than this fraction of the gap
# between always predicting the majority class and being always right: its flags are then its own noise.
NEAR_CHANCE = 0.1
NEAR_CHANCE_SUMMARY = "the quick model cannot learn this data; rank by your model's loss instead"


def check(ctx: CheckContext) -> Verdict:
    from ..audit.pipeline import audit_scans, audit_splits, cached_check

    cfg, task = ctx.exp.checks, ctx.task
    if not task.example_labels:
        return Verdict("skip", f"{task.name}: confident learning needs one class label per sample.",
                       hint="After training, sort samples by their loss (the sample browser's loss filter) instead.")
    k = audit_splits(ctx).info.num_classes or 0
    params = {"folds": cfg.label_folds, "max": cfg.label_max_candidates, "warn": cfg.label_issue_fraction,
              "seed": ctx.exp.train.seed}
    return cached_check(ctx, "label-issues", params, lambda: find_label_issues(ctx, audit_scans(ctx), k))


def _usable(sc: "SplitScan", k: int) -> "np.ndarray":
    """Rows that are finite, loaded, with a label in range."""
    return sc.finite & (sc.y >= 0) & (sc.y < k)


def find_label_issues(ctx: CheckContext, scans: dict[str, "SplitScan"], k: int) -> Verdict:
    import numpy as np

    from ..audit.labels import cross_val_probs, label_issue_candidates

    cfg = ctx.exp.checks
    names = list(scans)
    train = scans[names[0]]
    if train.feat is None or train.y is None or train.y.ndim != 1 or k < 2:
        return Verdict("skip", "no features or class labels to fit a quick model on.")
    ok = _usable(train, k)
    y = train.y[ok].astype(np.int64)
    if len(y) < 2 * cfg.label_folds or len(np.unique(y)) < 2:
        return Verdict("skip", f"too few usable training samples ({len(y)}) for {cfg.label_folds}-fold cross-fitting.")
    others = {}
    for name in names[1:]:
        sc = scans[name]
        if sc.feat is not None and sc.y is not None and sc.y.ndim == 1:
            others[name] = sc.feat[_usable(sc, k)]
    probs, other_probs = cross_val_probs(train.feat[ok], y, k, folds=cfg.label_folds, seed=ctx.exp.train.seed,
                                         tick=ctx.tick, others=others)
    candidates = label_issue_candidates(names[0], y, probs, train.index[ok])
    count = {names[0]: len(candidates)}
    for name, p in other_probs.items():
        sc = scans[name]
        sel = _usable(sc, k)
        found = label_issue_candidates(name, sc.y[sel].astype(np.int64), p, sc.index[sel]) if len(p) else []
        candidates += found
        count[name] = len(found)
    candidates.sort(key=lambda c: c["score"])
    return judge(ctx, y, probs, candidates, count)


def judge(ctx: CheckContext, y: "np.ndarray", probs: "np.ndarray", candidates: list[dict[str, Any]],
          count: dict[str, int]) -> Verdict:
    """The verdict on the candidates (``count``: per split, the first being train) of the quick model's ``probs``."""
    import numpy as np

    from ..audit.labels import estimated_noise_rate

    cfg = ctx.exp.checks
    train = next(iter(count))
    acc = float((probs.argmax(1) == y).mean())
    majority = float(np.bincount(y).max() / len(y))
    noise = estimated_noise_rate(y, probs)
    frac = count[train] / len(y)
    m = {"candidates": candidates[: cfg.label_max_candidates], "count": count, "noise_rate": round(noise, 5),
         "flagged_fraction": round(frac, 5), "cv_accuracy": round(acc, 4), "majority_rate": round(majority, 4),
         "folds": cfg.label_folds, "method": "confident_joint", "score": "normalized_margin",
         "limit": cfg.label_issue_fraction}
    if acc < majority + NEAR_CHANCE * (1 - majority):
        return near_chance(m, acc, majority)
    per = ", ".join(f"{s} {n}" for s, n in count.items())
    desc = (f"{sum(count.values())} likely label error(s) ({per}) by confident learning; the quick model's "
            f"held-out accuracy is {acc:.1%}")
    look = "Look at the top candidates in the sample browser (key b, filter label issues)"
    if frac <= cfg.label_issue_fraction:
        return Verdict("pass", f"{desc}; {frac:.1%} of {train} flagged.", m, f"{look}; a few ambiguous samples are normal.")
    hint = f"{look}: relabel or drop the wrong ones. About {noise:.1%} of the training labels look wrong to the quick model."
    if acc < 0.7:  # a weak quick model: many candidates are its own mistakes
        hint += (" The quick model is weak on this data, so many candidates are its own mistakes: after "
                 "training, rank by your model's per-sample loss instead.")
    return Verdict("warn", f"{desc}; {frac:.1%} of {train} flagged (above {cfg.label_issue_fraction:.1%}).", m, hint)


def near_chance(m: dict[str, Any], acc: float, majority: float) -> Verdict:
    """A quick model about as good as always predicting the majority class: its flags are not label errors."""
    m.update(flags_ignored=sum(m["count"].values()), candidates=[], count={s: 0 for s in m["count"]},
             flagged_fraction=0.0, near_chance=True)
    return Verdict("warn", f"{NEAR_CHANCE_SUMMARY}: its held-out accuracy is {acc:.1%}, against {majority:.1%} for always "
                   f"predicting the most common class, so its {m['flags_ignored']} flag(s) are not counted as label errors.",
                   m, "After training, sort the samples by your own model's per-sample loss (the sample browser, key b, "
                   "largest loss first) and look at the top ones; fix the labels that are wrong.")
