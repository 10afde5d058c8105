"""Stage 1: outliers — samples whose simple statistics sit far from their class or from the data."""
from __future__ import annotations

from .context import CheckContext
from .verdict import Verdict


def check(ctx: CheckContext) -> Verdict:
    from ..audit.outliers import find_outliers
    from ..audit.pipeline import audit_scans

    z = ctx.exp.checks.outlier_z
    m = find_outliers(audit_scans(ctx), z_limit=z)
    if "note" in m:
        return Verdict("skip", m["note"] + ".", m, "Look through the few samples by hand (key b).")
    total = sum(m["count"].values())
    per = ", ".join(f"{s} {n}" for s, n in m["count"].items() if n)
    if not total:
        return Verdict("pass", f"no sample has a robust z-score above {z:g} on "
                       f"{', '.join(m.get('stats', []))} (overall or within its class).", m,
                       "Still sort by these statistics in the sample browser and look at both ends.")
    top = m["outliers"][0]
    return Verdict("warn",
                   f"{total} sample(s) with a robust z-score above {z:g} ({per}); the most extreme: {top['split']} "
                   f"#{top['index']} ({top['stat']} = {top['value']:.4g}, z {top['score']:.1f} vs its "
                   f"{'class' if top['reference'] == 'class' else 'data'}).", m,
                   "Look at them (sample browser, key b, filter outliers): outliers almost always uncover a data "
                   "quality or preprocessing bug — blank, corrupted, mis-scaled or mislabelled samples.")
