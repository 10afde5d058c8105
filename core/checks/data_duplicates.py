"""Stage 1: duplicates and leakage — exact and near copies within and across splits, conflicting labels."""
from __future__ import annotations

from .context import CheckContext
from .verdict import Verdict


def check(ctx: CheckContext) -> Verdict:
    from ..audit.duplicates import find_duplicates
    from ..audit.pipeline import audit_scans, cached_check

    ratio = ctx.exp.checks.near_duplicate_ratio

    def compute() -> Verdict:
        m = find_duplicates(audit_scans(ctx), ratio=ratio, tick=ctx.tick)
        near_note = (f"near = closer than {ratio:g} × the median neighbour distance" if m["near_threshold"] is not None
                     else "exact copies only: no distance is meaningful for token sequences")
        leaked = {s: v["exact"] + v["near"] for s, v in m["leaked"].items() if v["exact"] + v["near"]}
        within = {s: v for s, v in m["within"].items() if v["exact"] + v["near"]}
        parts = []
        if leaked:
            parts.append("leakage: " + ", ".join(f"{n} {s} sample(s) also in train" for s, n in leaked.items()))
        if m["conflicting"]:
            parts.append(f"{m['conflicting']} group(s) of the same input with different labels")
        for s, v in within.items():
            kinds = [f"{v['exact']} exact" if v["exact"] else "", f"{v['near']} near" if v["near"] else ""]
            parts.append(f"{' + '.join(k for k in kinds if k)} extra cop{'y' if v['exact'] + v['near'] == 1 else 'ies'} within {s}")
        summary = (f"{m['exact_groups']} exact and {m['near_groups']} near-duplicate group(s) among {m['samples']:,} samples"
                   f" ({near_note})")
        if leaked:
            return Verdict("fail", f"{summary}: {'; '.join(parts)}.", m,
                           "Remove from val/test every input that is also in train (metrics.groups in --json lists them), "
                           "or re-split so copies stay together: leaked samples inflate the validation score.")
        if parts:
            hint = []
            if m["conflicting"]:
                hint.append("The same input with two labels is label noise: decide on one label (or drop the copies).")
            if within:
                hint.append("Copies within a split over-weight those samples: drop the extras unless the repetition is intended.")
            return Verdict("warn", f"{summary}: {'; '.join(parts)}.", m,
                           " ".join(hint) + " Step through the groups in the sample browser (key b).")
        return Verdict("pass", f"no duplicates: {summary}, no leakage between splits.", m,
                       "Each split holds distinct inputs and val/test share none with train.")

    return cached_check(ctx, "duplicates", {"ratio": ratio}, compute)
