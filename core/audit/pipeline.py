"""Glue for the stage-1 checks: the audited data, one scan per job, results cached by data fingerprint."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..events import CheckResult
from .cache import AuditCache, cache_key, fingerprint_splits
from .scan import SplitScan, scan_splits

if TYPE_CHECKING:
    from ..checks.context import CheckContext
    from ..data import Splits

SPLITS_KEY, FINGERPRINT_KEY, SCANS_KEY = "audit.splits", "audit.fingerprint", "audit.scans"


def audit_splits(ctx: "CheckContext") -> "Splits":
    """The data as the audit sees it: with random augmentation off, which would hide exact copies."""
    if SPLITS_KEY not in ctx.cache:
        exp = ctx.exp
        if exp.data.augment and not exp.data.factory:
            from ..data import load_data
            ctx.cache[SPLITS_KEY] = load_data(exp.replace("data", augment=False))
        else:
            ctx.cache[SPLITS_KEY] = ctx.splits()
    return ctx.cache[SPLITS_KEY]


def data_fingerprint(ctx: "CheckContext") -> str:
    if FINGERPRINT_KEY not in ctx.cache:
        ctx.cache[FINGERPRINT_KEY] = fingerprint_splits(audit_splits(ctx), tick=ctx.tick)
    return ctx.cache[FINGERPRINT_KEY]


def audit_scans(ctx: "CheckContext") -> dict[str, SplitScan]:
    """One pass over every split, shared by all stage-1 checks of a job."""
    if SCANS_KEY not in ctx.cache:
        ctx.cache[SCANS_KEY] = scan_splits(audit_splits(ctx), tick=ctx.tick)
    return ctx.cache[SCANS_KEY]


def cache_dir(ctx: "CheckContext") -> Path:
    from ..paths import inside
    return inside(ctx.runs_root, ".cache", "audit")


def cached_check(ctx: "CheckContext", check_id: str, params: dict[str, Any],
                 compute: Callable[[], CheckResult]) -> CheckResult:
    """``compute()`` unless a result for the same data, check and ``params`` is on disk; stores verdicts."""
    key = cache_key(data_fingerprint(ctx), check_id, params)
    cache = AuditCache(cache_dir(ctx))
    hit = cache.get(key)
    if hit is not None and hit.get("id") == check_id:
        return CheckResult(id=check_id, status=hit["status"], summary=hit["summary"],
                           metrics={**hit.get("metrics", {}), "cached": True}, hint=hit.get("hint", ""))
    res = compute()
    if res.status in ("pass", "warn", "fail"):
        cache.put(key, res.public())
    return res
