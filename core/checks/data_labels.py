"""Stage 1: label noise — confident learning on out-of-sample probabilities of a quick cross-fitted model."""
from __future__ import annotations

from typing import Any

from ..events import CheckResult
from . import check, result
from .context import CheckContext


@check("label-issues", "Label noise")
def label_issues_check(ctx: CheckContext) -> CheckResult:
    import numpy as np

    from ..audit.labels import cross_val_probs, estimated_noise_rate, label_issue_candidates
    from ..audit.pipeline import audit_scans, audit_splits, cached_check

    cfg, task = ctx.exp.checks, ctx.exp.task
    if task != "classification":
        return result("label-issues", "skip", f"{task}: confident learning needs one class label per sample.",
                      hint="After training, sort samples by their loss (the sample browser's loss filter) instead.")
    info = audit_splits(ctx).info
    params = {"folds": cfg.label_folds, "max": cfg.label_max_candidates, "warn": cfg.label_issue_fraction,
              "seed": ctx.exp.train.seed}

    def compute() -> CheckResult:
        scans = audit_scans(ctx)
        names = list(scans)
        train = scans[names[0]]
        k = info.num_classes or 0
        if train.feat is None or train.y is None or train.y.ndim != 1 or k < 2:
            return result("label-issues", "skip", "no features or class labels to fit a quick model on.")

        def usable(sc: Any) -> np.ndarray:  # finite, loaded, with a label in range
            y = sc.y
            return sc.finite & (y >= 0) & (y < k)

        ok = usable(train)
        y = train.y[ok].astype(np.int64)
        if len(y) < 2 * cfg.label_folds or len(np.unique(y)) < 2:
            return result("label-issues", "skip", f"too few usable training samples ({len(y)}) for "
                          f"{cfg.label_folds}-fold cross-fitting.")
        others = {}
        for name in names[1:]:
            sc = scans[name]
            if sc.feat is not None and sc.y is not None and sc.y.ndim == 1:
                others[name] = sc.feat[usable(sc)]
        probs, other_probs = cross_val_probs(train.feat[ok], y, k, folds=cfg.label_folds, seed=ctx.exp.train.seed,
                                             tick=ctx.tick, others=others)
        candidates = label_issue_candidates(names[0], y, probs, train.index[ok])
        count = {names[0]: len(candidates)}
        for name, p in other_probs.items():
            sc = scans[name]
            sel = usable(sc)
            found = label_issue_candidates(name, sc.y[sel].astype(np.int64), p, sc.index[sel]) if len(p) else []
            candidates += found
            count[name] = len(found)
        candidates.sort(key=lambda c: c["score"])
        acc = float((probs.argmax(1) == y).mean())
        noise = estimated_noise_rate(y, probs)
        frac = count[names[0]] / len(y)
        m = {"candidates": candidates[: cfg.label_max_candidates], "count": count, "noise_rate": round(noise, 5),
             "flagged_fraction": round(frac, 5), "cv_accuracy": round(acc, 4), "folds": cfg.label_folds,
             "method": "confident_joint", "score": "normalized_margin", "limit": cfg.label_issue_fraction}
        per = ", ".join(f"{s} {n}" for s, n in count.items())
        desc = (f"{sum(count.values())} likely label error(s) ({per}) by confident learning; the quick model's "
                f"held-out accuracy is {acc:.1%}")
        weak = acc < 0.7
        look = "Look at the top candidates in the sample browser (key b, filter label issues)"
        if frac > cfg.label_issue_fraction:
            hint = (f"{look}: relabel or drop the wrong ones. About {noise:.1%} of the training labels look wrong to "
                    "the quick model.")
            if weak:
                hint += (" The quick model is weak on this data, so many candidates are its own mistakes: after "
                         "training, rank by your model's per-sample loss instead.")
            return result("label-issues", "warn", f"{desc}; {frac:.1%} of {names[0]} flagged (above "
                          f"{cfg.label_issue_fraction:.1%}).", m, hint)
        return result("label-issues", "pass", f"{desc}; {frac:.1%} of {names[0]} flagged.", m,
                      f"{look}; a few ambiguous samples are normal.")

    return cached_check(ctx, "label-issues", params, compute)
