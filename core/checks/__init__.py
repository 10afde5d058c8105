"""Automated checklist items. Each check is a function ``(ctx: CheckContext) -> CheckResult``
registered under its public id with ``@check("id")``.

Every module in this package is imported on first use of the registry, so a new check is a new
module (stage 1: ``data_*.py``, stage 2: ``skeleton_*.py``) and nothing else changes.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from ..events import CheckResult, CheckStarted, LogLine
from .context import CheckContext, CheckStopped

CheckFn = Callable[[CheckContext], CheckResult]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    fn: CheckFn
    title: str = ""


STOPPED = "stopped before it finished."  # the summary of a check the user stopped (a skip, not a verdict)
_REGISTRY: dict[str, CheckSpec] = {}
_loaded = False
_lock = threading.Lock()


def check(check_id: str, title: str = "") -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in _REGISTRY and _REGISTRY[check_id].fn is not fn:
            raise ValueError(f"check id {check_id!r} registered twice")
        _REGISTRY[check_id] = CheckSpec(check_id, fn, title or (fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return register


def registry() -> dict[str, CheckSpec]:
    global _loaded
    with _lock:
        if not _loaded:
            for mod in pkgutil.iter_modules(__path__):
                if mod.name.startswith(("data_", "skeleton_")):
                    importlib.import_module(f"{__name__}.{mod.name}")
            _loaded = True
    return _REGISTRY


def result(check_id: str, status: str, summary: str, metrics: dict[str, Any] | None = None, hint: str = "") -> CheckResult:
    assert status in ("pass", "warn", "fail", "error", "skip"), status
    return CheckResult(id=check_id, status=status, summary=summary, metrics=metrics or {}, hint=hint)


def run_check(check_id: str, ctx: CheckContext) -> CheckResult:
    """Run one check; anything it raises (the user's code included) becomes an ``error`` result."""
    spec = registry().get(check_id)
    ctx.emit(CheckStarted(id=check_id))
    t0 = time.perf_counter()
    if spec is None:
        res = result(check_id, "skip", "not automated yet: this item has no check in this version.",
                     hint="Work through it by hand, using the item's guidance.")
    else:
        try:
            res = spec.fn(ctx)
        except CheckStopped:
            res = result(check_id, "skip", STOPPED)
        except Exception as exc:
            tb = traceback.format_exc()
            ctx.emit(LogLine(f"{check_id}: {type(exc).__name__}: {exc}", level="error", detail=tb))
            res = result(check_id, "error", f"{type(exc).__name__}: {exc}",
                         hint="The model or data raised; the traceback is in the log.")
    res = CheckResult(id=res.id, status=res.status, summary=res.summary,
                      metrics={**res.metrics, "seconds": round(time.perf_counter() - t0, 3)}, hint=res.hint)
    ctx.emit(res)
    return res


def run_checks(check_ids: list[str], ctx: CheckContext) -> list[CheckResult]:
    results = []
    for check_id in check_ids:
        if ctx.stop.is_set():
            break
        results.append(run_check(check_id, ctx))
    return results


__all__ = ["CheckContext", "CheckStopped", "CheckResult", "check", "registry", "result", "run_check", "run_checks"]
