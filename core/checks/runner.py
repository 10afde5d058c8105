"""Running checks: each verdict becomes the public ``CheckResult`` event, stamped with the check's id."""
from __future__ import annotations

import time
import traceback
from typing import Callable

from ..config import ConfigError
from ..events import CheckResult, CheckStarted, LogLine
from .context import CheckContext, CheckStopped
from .verdict import Verdict

Check = Callable[[CheckContext], Verdict]

STOPPED = "stopped before it finished."  # the summary of a check the user stopped (a skip, not a verdict)
NOT_AUTOMATED = Verdict("skip", "not automated yet: this item has no check in this version.",
                        hint="Work through it by hand, using the item's guidance.")


def registry() -> dict[str, Check]:
    """Every check by its public id (stages.py lists them). Imported on first use: checks import torch."""
    from .stages import CHECKS
    return CHECKS


def verdict_of(check: Check | None, check_id: str, ctx: CheckContext) -> Verdict:
    """The check's verdict; anything it raises (the user's code included) becomes an ``error`` verdict.
    ``ConfigError`` is bad configuration, not a verdict: it propagates (the CLI exits 2 with its sentence)."""
    if check is None:
        return NOT_AUTOMATED
    try:
        ctx.restart()  # every check starts from the same global state, whatever ran before it
        return check(ctx)
    except CheckStopped:
        return Verdict("skip", STOPPED)
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() in the user's code is an error of this check, not the end
        what = f"the code called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"
        ctx.emit(LogLine(f"{check_id}: {what}", level="error", detail=traceback.format_exc()))
        return Verdict("error", what, hint="The model or data raised; the traceback is in the log.")


def run_check(check_id: str, ctx: CheckContext) -> CheckResult:
    """Run one check and emit its result (``CheckStarted`` first); the result's metrics gain ``seconds``."""
    ctx.emit(CheckStarted(id=check_id))
    t0 = time.perf_counter()
    v = verdict_of(registry().get(check_id), check_id, ctx)
    res = CheckResult(id=check_id, status=v.status, summary=v.summary,
                      metrics={**v.metrics, "seconds": round(time.perf_counter() - t0, 3)}, hint=v.hint)
    ctx.emit(res)
    return res


def run_checks(check_ids: list[str], ctx: CheckContext) -> list[CheckResult]:
    settle_threads(check_ids, ctx)
    results = []
    for check_id in check_ids:
        if ctx.stop.is_set():
            break
        results.append(run_check(check_id, ctx))
    return results


def settle_threads(check_ids: list[str], ctx: CheckContext) -> None:
    """Checks from stage 2 on train small models: torch's CPU thread count is chosen once per job as a training run
    chooses it (``core.threads``: ``train.threads``, else the faster of 1 and torch's count for a step of the recipe's
    model), and kept for every check of the job, so that checks which compare two runs (``seed``) compare alike."""
    from .stages import STAGE_1
    if "threads" in ctx.cache or all(c in STAGE_1 for c in check_ids) or ctx.device.type != "cpu":
        return
    from ..threads import choose, scratch_step
    from ..trainer import make_optimizer
    from .common import first_batch
    try:
        x, y = first_batch(ctx, ctx.exp.train.batch_size)
        step = scratch_step(ctx.new_model(), ctx.task.loss, lambda m: make_optimizer(m, ctx.exp.train), x, y)
    except Exception:  # the user's model or data: its own check reports it
        step = None
    choice = choose(ctx.exp.train.threads, step)
    ctx.cache["threads"] = choice
    if choice.how != "default":
        ctx.log(f"{choice.describe()}, for these checks")
