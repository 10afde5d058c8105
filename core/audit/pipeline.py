"""Glue for the stage-1 checks: the audited data, one scan per job, the expensive results cached under a digest
of everything the scan read."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..checks.verdict import Verdict
from .cache import AuditCache, cache_key, fingerprint_scans
from .scan import SplitScan, scan_splits

if TYPE_CHECKING:
    from ..checks.context import CheckContext
    from ..data import Splits

SPLITS_KEY, FINGERPRINT_KEY, SCANS_KEY = "audit.splits", "audit.fingerprint", "audit.scans"


def audit_splits(ctx: "CheckContext") -> "Splits":
    """The data as the audit sees it: with random augmentation off, which would hide exact copies."""
    if SPLITS_KEY not in ctx.cache:
        exp = ctx.exp
        if (exp.data.augment or exp.data.augmentation != "none") and not exp.data.factory:
            from ..data import load_data
            ctx.cache[SPLITS_KEY] = load_data(exp.replace("data", augment=False, augmentation="none"))
        else:
            ctx.cache[SPLITS_KEY] = ctx.splits()
    return ctx.cache[SPLITS_KEY]


def data_fingerprint(ctx: "CheckContext") -> str:
    """The digest of everything the scan read: exact, so a cached result is never stale."""
    if FINGERPRINT_KEY not in ctx.cache:
        ctx.cache[FINGERPRINT_KEY] = fingerprint_scans(audit_scans(ctx), audit_splits(ctx).info)
    return ctx.cache[FINGERPRINT_KEY]


def audit_scans(ctx: "CheckContext") -> dict[str, SplitScan]:
    """One pass over every split, shared by all stage-1 checks of a job. A dataset that augments as it is read
    draws from a fixed seed, and the caller's global RNG is left as it was: the scan is the same whichever check
    asks first."""
    if SCANS_KEY not in ctx.cache:
        from ..data.rng import seeded
        splits = audit_splits(ctx)
        with seeded(0):
            ctx.cache[SCANS_KEY] = scan_splits(splits, tick=ctx.tick)
    return ctx.cache[SCANS_KEY]


def cache_dir(ctx: "CheckContext") -> Path:
    from ..paths import inside
    return inside(ctx.runs_root, ".cache", "audit")


def cached_check(ctx: "CheckContext", name: str, params: dict[str, Any],
                 compute: Callable[[], Verdict]) -> Verdict:
    """``compute()`` unless a verdict for the same data (every byte the scan read), check ``name`` and ``params``
    is on disk; stores verdicts (pass, warn, fail), never skips or errors. For the expensive checks only
    (duplicates, label-issues): the rest is cheaper to recompute from the scan than to look up."""
    key = cache_key(data_fingerprint(ctx), name, params)
    cache = AuditCache(cache_dir(ctx))
    hit = cache.get(key)
    if hit is not None and hit.get("id") == name:
        return Verdict(hit["status"], hit["summary"], {**hit.get("metrics", {}), "cached": True}, hit.get("hint", ""))
    v = compute()
    if v.status in ("pass", "warn", "fail"):
        cache.put(key, {"id": name, "status": v.status, "summary": v.summary, "metrics": v.metrics, "hint": v.hint})
    return v
