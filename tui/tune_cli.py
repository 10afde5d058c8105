"""``recipe-tui tune``: the ``tune`` item headless, with N worker processes sharing one Optuna study.

``--workers 1`` (the default) is ``recipe-tui check tune``. With N > 1 this process starts N workers
(``recipe-tui tune --worker I …``, each in a session of its own) — one per GPU of ``CUDA_VISIBLE_DEVICES`` (or every
GPU torch sees) when there are GPUs, else on the CPU with the cores shared out — prints each trial as it finishes,
whoever ran it, and the verdict once the budget is spent. More machines join the same study with the same command
and ``--storage URL --study NAME``. A stop (ctrl+c, SIGTERM, SIGHUP) reaches every worker once: each stops its trial
(tried again next time) and exits; the study keeps every finished trial.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CheckProgress, print_results
from .shutdown import run_stoppable, say

POLL_S = 1.0


def add_parser(subs: Any, common: Any) -> None:
    p = subs.add_parser("tune", help="random search over the recipe's tune space (Optuna), with N workers")
    common(p, sub=True)
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes sharing the study (one per GPU when there are GPUs; default 1)")
    p.add_argument("--storage", metavar="URL", help="the study's storage: a journal file, or an RDB URL "
                   "(sqlite:///tune.db, postgresql://…); same as --set tune.storage=URL")
    p.add_argument("--study", metavar="NAME", help="the study's name (default: <recipe>-tune-<digest>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # a worker started by --workers N
    p.add_argument("--json", action="store_true")


def tune(recipes: Any, args: argparse.Namespace) -> int:
    from recipe_tui.core.checks import CheckContext
    from recipe_tui.core.config import ConfigError, apply_overrides
    from recipe_tui.core.control import RunControl

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected 1 or more worker processes.")
    exp = recipes.experiment(args.recipe)
    overrides = [*args.overrides, *([f"tune.storage={_toml(args.storage)}"] if args.storage else []),
                 *([f"tune.study={_toml(args.study)}"] if args.study else [])]
    exp = apply_overrides(exp, overrides) if overrides else exp
    stop = threading.Event()
    if args.worker is not None:
        return _worker(exp, args, RunControl(emit=_WorkerLog(args.worker), stop=stop))
    progress = CheckProgress()
    ctx = CheckContext(exp=exp, control=RunControl(emit=progress, stop=stop), runs_root=args.runs)
    if args.workers == 1:
        from recipe_tui.core.checks import run_checks
        results = run_stoppable(lambda: run_checks(["tune"], ctx), stop, lambda where: None)
    else:
        results = run_stoppable(lambda: [_lead(ctx, recipes, args, overrides)], stop, lambda where: None)
    print_results(exp.name, results, args.json)
    if stop.is_set():
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(r.status in ("fail", "error") for r in results) else EXIT_OK


def _worker(exp: Any, args: argparse.Namespace, control: Any) -> int:
    """One worker process: trials until the budget is spent or it is stopped."""
    from recipe_tui.core.checks import CheckContext
    from recipe_tui.core.checks.tune import work
    from recipe_tui.core.tune import open_study, study_place

    ctx = CheckContext(exp=exp, control=control, runs_root=args.runs)
    place = study_place(exp, args.runs)
    run_stoppable(lambda: work(ctx, open_study(exp, place, worker=args.worker), place), control.stop,
                  lambda where: None, announce=False)
    return EXIT_INTERRUPTED if control.stop.is_set() else EXIT_OK


def _lead(ctx: Any, recipes: Any, args: argparse.Namespace, overrides: list[str]) -> Any:
    """Start the workers, show the trials as they finish, and give the verdict on the study."""
    from recipe_tui.core.checks.tune import new_rows, refused, summarise
    from recipe_tui.core.events import CheckResult, CheckStarted
    from recipe_tui.core.tune import open_study, study_place

    ctx.emit(CheckStarted(id="tune"))
    refusal = refused(ctx)
    if refusal is not None:
        result = CheckResult(id="tune", status=refusal.status, summary=refusal.summary, metrics=refusal.metrics,
                             hint=refusal.hint)
        ctx.emit(result)
        return result
    place = study_place(ctx.exp, ctx.runs_root)
    study = open_study(ctx.exp, place)
    procs = _start(recipes, args, overrides, place, ctx.exp.name)
    shown: set[int] = set()
    t0, signalled = time.perf_counter(), False
    while any(p.poll() is None for p in procs):
        if ctx.stop.wait(POLL_S) and not signalled:
            signalled = True
            for p in procs:
                _signal(p, signal.SIGTERM)
        new_rows(ctx, study, shown)
    new_rows(ctx, study, shown)
    codes = [p.returncode for p in procs]
    v = summarise(ctx, study, place)
    bad = [f"worker {i} exited {c}" for i, c in enumerate(codes) if c not in (0, EXIT_INTERRUPTED)]
    status = "error" if bad and v.status == "pass" else v.status
    summary = v.summary + (f" ({'; '.join(bad)}: its output is above)" if bad else "")
    metrics = {**v.metrics, "workers": len(procs), "seconds": round(time.perf_counter() - t0, 3)}
    result = CheckResult(id="tune", status=status, summary=summary, metrics=metrics, hint=v.hint)
    ctx.emit(result)
    return result


def _start(recipes: Any, args: argparse.Namespace, overrides: list[str], place: Any,
           name: str) -> list[subprocess.Popen]:
    devices = _gpus()
    n = args.workers
    say(f"tune: {n} workers on {'GPUs ' + ', '.join(devices) if devices else 'the CPU'} sharing study "
        f"'{place.name}' ({place.storage})")
    if devices and n > len(devices):
        say(f"tune: {n} workers for {len(devices)} GPUs: some GPUs run two")
    procs = []
    for i in range(n):
        env = dict(os.environ)
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices[i % len(devices)]
        else:
            env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n)))
        cmd = [sys.executable, "-m", "recipe_tui.tui.cli", "tune", "--file", str(Path(recipes.path).resolve()),
               "--runs", str(Path(args.runs).resolve()), "--recipe", name,
               "--storage", place.storage, "--study", place.name, "--worker", str(i)]
        for o in overrides:
            cmd += ["--set", o]
        procs.append(subprocess.Popen(cmd, env=env, start_new_session=True))  # our ctrl+c is relayed once
    return procs


def _gpus() -> list[str]:
    """The GPUs to put one worker each on: CUDA_VISIBLE_DEVICES's entries, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _signal(p: subprocess.Popen, sig: int) -> None:
    try:
        p.send_signal(sig)
    except (ProcessLookupError, OSError):
        pass


def _toml(text: str) -> str:
    import json
    return json.dumps(text)


class _WorkerLog:
    """A worker's stderr: its warnings and errors, prefixed (the lead prints the trials)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, event: Any) -> None:
        if event.type == "log" and event.level != "info":
            say(f"worker {self.index}: {event.level}: {event.message}")
