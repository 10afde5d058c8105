"""``recipe-tui train``: one process here (training in a thread, the main thread takes the signals), or N under
torchrun (``--nproc``, ``train.nproc``); progress lines on stderr, one JSON document with ``--json``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .shutdown import run_stoppable, say


def train(recipes: Any, args: argparse.Namespace) -> int:
    """Train here, or as one rank of a torchrun group; with train.nproc > 1 (``--nproc``) start that group."""
    from recipe_tui.core import launcher
    from recipe_tui.core.config import ConfigError
    from recipe_tui.core.jobs import planned_experiment

    overrides = tuple(args.overrides) + ((f"train.nproc={args.nproc}",) if args.nproc is not None else ()) \
        + (("train.steps=0",) if args.forever else ())
    exp = None if args.resume else recipes.experiment(args.recipe)
    if not launcher.in_group():
        nproc = planned_experiment(exp, args.resume, overrides, recipes.experiments).train.nproc
        if nproc > 1:
            return launcher.launch(nproc, _rank_args(recipes, args, overrides), as_json=args.json)
    try:
        return launcher.rank_exit_code(_train_here(recipes, args, exp, overrides))
    except ConfigError as exc:
        launcher.report(exit_code=EXIT_USAGE)
        if launcher.is_main() and not launcher.launched():
            raise
        if launcher.is_main():
            print(f"recipe-tui: {exc}", file=sys.stderr)
        return launcher.rank_exit_code(EXIT_USAGE)  # the other ranks leave the sentence to rank 0


def _rank_args(recipes: Any, args: argparse.Namespace, overrides: tuple[str, ...]) -> list[str]:
    """The same train command for every rank, paths made absolute."""
    out = ["train", "--file", str(Path(recipes.path).resolve()), "--runs", str(Path(args.runs).resolve())]
    if args.recipe:
        out += ["--recipe", args.recipe]
    if args.resume:
        out += ["--resume", str(Path(args.resume).resolve())]
    for o in overrides:
        out += ["--set", o]
    return out + (["--json"] if args.json else []) + (["--debug"] if args.debug else [])


def _train_here(recipes: Any, args: argparse.Namespace, exp: Any, overrides: tuple[str, ...]) -> int:
    """Training in a thread of its own; the main thread takes the signals (``run_stoppable``): SIGINT, SIGTERM
    and SIGHUP stop it cleanly (checkpoint, a ``finished`` event with status ``stopped``, exit 130)."""
    from recipe_tui.core import launcher
    from recipe_tui.core.control import RunControl
    from recipe_tui.core.jobs import describe_outcome, run_training

    progress = TrainProgress()

    def emit(event: Any) -> None:
        if event.type == "run_started":
            launcher.report(run_dir=event.run_dir)
        progress(event)

    stop = threading.Event()
    outcome = run_stoppable(
        lambda: run_training(exp, RunControl(emit=emit, stop=stop), runs_root=args.runs, resume=args.resume,
                             overrides=overrides, known=recipes.experiments),
        stop, lambda where: _training_stuck(progress, where, args), announce=launcher.is_main())
    code = EXIT_FAILED if outcome.status == "failed" else EXIT_INTERRUPTED if outcome.status == "stopped" else EXIT_OK
    launcher.report(exit_code=code)
    if not launcher.is_main():  # rank 0 speaks for the group; a rank's own failure may be the root cause
        if outcome.status == "failed":
            say(f"recipe-tui (rank {os.environ.get('RANK')}): training failed: {outcome.reason}")
        return code
    progress.done()
    doc = describe_outcome(outcome)
    if args.json:
        say(json.dumps(doc), file=sys.stdout)
    else:
        acc = doc["final"].get("accuracy")
        say(f"{outcome.status}: {outcome.steps} steps, final loss {doc['final']['loss']:.4f}"
            + (f", accuracy {acc:.2%}" if acc is not None else "") if doc["final"]["loss"] is not None
            else f"{outcome.status}: {outcome.steps} steps")
        if outcome.note:
            say(f"note: {outcome.note}")
        say(f"run dir: {outcome.run_dir}" if outcome.run_dir is not None
            else "run dir: none (the run stopped or failed before it started; nothing was recorded)")
    if outcome.status == "failed":
        say(f"training failed: {outcome.reason}")
    return code


def _training_stuck(progress: "TrainProgress", where: str, args: argparse.Namespace) -> None:
    """Training did not return after a stop (user code stuck): note it in the run dir, say so, print the JSON."""
    from .quitting import record_stuck, run_line
    from .shutdown import GRACE_S

    progress.done()
    message = (f"training did not return within {GRACE_S:g} s of the stop: the user's code is still running "
               f"(at {where}); exiting without it")
    say(f"recipe-tui: {message}.")
    run_dir = progress.run_dir
    if run_dir:
        record_stuck(run_dir, message)
        say(run_line(run_dir, "interrupted", progress.step, progress.total, progress.checkpoint, args.file))
    if args.json:
        say(json.dumps({"run_dir": run_dir or None, "status": "stopped", "steps": progress.checkpoint or 0,
                        "final": {"loss": None}, "reason": message}), file=sys.stdout)


class TrainProgress:
    """The stderr progress line of headless training: rewritten in place on a terminal, else a line every 10 %."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.run_dir = ""
        self.step = 0
        self.checkpoint: int | None = None  # the last checkpoint's step
        self.total = 0
        self.val: dict[str, float] = {}
        self.last_pct = -1
        self.t0 = time.perf_counter()
        self.start_step = 0

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "run_started":
            self.total, self.start_step, self.run_dir = event.steps, event.start_step, event.run_dir
            self.step = event.start_step
            self.checkpoint = event.start_step or None
            say(f"training {event.recipe} on {event.device} ({event.params:,} parameters) → {event.run_dir}")
        elif kind == "checkpoint":
            self.checkpoint = event.step
        elif kind == "eval":
            self.val = {"val_loss": event.loss, **{f"val_{k}": v for k, v in event.metrics.items()}}
        elif kind == "step":
            self.step = event.step
            # open-ended (total 0): a "percent" per 100 steps, so a line every 1,000 steps when not on a terminal
            pct = int(100 * event.step / max(1, self.total)) if self.total else event.step // 100
            rate = (event.step - self.start_step) / max(1e-9, time.perf_counter() - self.t0)
            eta = (self.total - event.step) / rate if rate > 0 else 0
            extra = "".join(f" {k} {v:.4f}" for k, v in self.val.items())
            where = f"{event.step}/{self.total} ({pct}%)" if self.total else f"{event.step} (open-ended)"
            line = f"step {where} loss {event.loss:.4f}{extra} {rate:.0f} steps/s" \
                + (f" ETA {eta:.0f}s" if self.total else "")
            if self.tty:
                self.tty = _rewrite_line(line)
            elif pct // 10 != self.last_pct // 10:
                say(line)
            self.last_pct = pct
        elif kind == "log" and event.level != "info":
            self.done()
            say(f"{event.level}: {event.message}")
        elif kind == "failed":
            self.done()

    def done(self) -> None:
        if self.tty:
            say("")
            self.tty = False


def _rewrite_line(line: str) -> bool:
    """The progress line, rewritten in place; False once the terminal is gone (a hangup), to stop trying."""
    try:
        print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        return True
    except (OSError, ValueError):
        return False

