"""``recipe-tui``: opens the app, or runs headless (list, train, check, watch).

Exit codes: 0 ok · 1 a check or training failed · 2 bad usage or bad config · 130 interrupted.
``--json`` prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


def build_parser() -> argparse.ArgumentParser:
    def common(p: argparse.ArgumentParser, sub: bool) -> None:
        # Sub-commands take the same options; SUPPRESS keeps `--file F train` from being reset.
        d = argparse.SUPPRESS if sub else None
        p.add_argument("--file", "-f", default=d, metavar="F", help="recipes file (default: ./recipes.toml, else the shipped one)")
        p.add_argument("--recipe", "-r", default=d, metavar="NAME", help="experiment (default: the first in the file)")
        p.add_argument("--runs", default=argparse.SUPPRESS if sub else "runs", metavar="DIR", help="where run dirs go (default: ./runs)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if sub else False, help="show tracebacks")

    parser = argparse.ArgumentParser(prog="recipe-tui", description="Karpathy's recipe for training neural networks, in the terminal.")
    common(parser, sub=False)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = subs.add_parser("list", help="list the experiments and checklist items of the recipes file")
    common(p, sub=True)
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("train", help="train headless into a run dir")
    common(p, sub=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-3")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("check", help="run checklist items headless")
    common(p, sub=True)
    p.add_argument("items", nargs="*", metavar="ITEM", help="item ids (default: all automated items of stages 1 and 2)")
    p.add_argument("--stage", type=int, action="append", metavar="N", help="all automated items of stage N")
    p.add_argument("--fix", action="store_true", help="apply the fixes that checks offer (e.g. init-bias)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("watch", help="show a run dir that another process is writing")
    common(p, sub=True)
    p.add_argument("run_dir", metavar="RUN_DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from recipe_tui.core.config import ConfigError
        if args.debug:
            raise
        if isinstance(exc, ConfigError):
            print(f"recipe-tui: {exc}", file=sys.stderr)
        else:
            print(f"recipe-tui: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED


def _closed_pipe() -> int:
    """The reader went away (``recipe-tui list --json | head``): stop quietly, as Unix tools do. Python's
    own flush of stdout at exit would raise again, so stdout is pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (tests): nothing left to flush
        pass
    return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace) -> int:
    from recipe_tui.core.config import load_recipes

    if args.command == "watch":
        from .app import run_app
        return run_app(watch=args.run_dir, runs=args.runs)
    recipes = load_recipes(args.file)
    if args.command == "list":
        return _list(recipes, args.json)
    if args.command == "train":
        return _train(recipes, args)
    if args.command == "check":
        return _check(recipes, args)
    exp = recipes.experiment(args.recipe)  # validate before the app opens
    from .app import run_app
    return run_app(file=args.file, recipe=exp.name, runs=args.runs)


def _list(recipes: Any, as_json: bool) -> int:
    if as_json:
        doc = {"file": str(recipes.path),
               "recipes": [{"name": e.name, "task": e.task, "description": e.description} for e in recipes.experiments.values()],
               "stages": [{"number": s.number, "title": s.title,
                           "items": [{"id": i.id, "title": i.title, "automated": i.check is not None} for i in s.items]}
                          for s in recipes.stages]}
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"{recipes.path}")
    for i, e in enumerate(recipes.experiments.values()):
        print(f"  {e.name:<22} {e.task:<15} {e.description}{'  (default)' if i == 0 else ''}")
    for s in recipes.stages:
        print(f"{s.number}. {s.title}")
        for item in s.items:
            print(f"     {item.id:<20} {'auto' if item.check else 'manual'}  {item.title}")
    return EXIT_OK


class _StopOnSigint:
    """First ctrl+c asks the job to stop cleanly (checkpoint written); a second one aborts."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def __enter__(self) -> threading.Event:
        def handler(signum: int, frame: Any) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            print("\nstopping (ctrl+c again to abort)…", file=sys.stderr)
            self.stop.set()
        self._old = signal.signal(signal.SIGINT, handler)
        return self.stop

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._old)


def _train(recipes: Any, args: argparse.Namespace) -> int:
    from recipe_tui.core.control import RunControl
    from recipe_tui.core.jobs import describe_outcome, run_training

    exp = None if args.resume else recipes.experiment(args.recipe)
    progress = TrainProgress()
    with _StopOnSigint() as stop:
        outcome = run_training(exp, RunControl(emit=progress, stop=stop), runs_root=args.runs, resume=args.resume,
                               overrides=tuple(args.overrides), known=recipes.experiments)
    progress.done()
    doc = describe_outcome(outcome)
    if args.json:
        print(json.dumps(doc))
    else:
        acc = doc["final"].get("accuracy")
        print(f"{outcome.status}: {outcome.steps} steps, final loss {doc['final']['loss']:.4f}"
              + (f", accuracy {acc:.2%}" if acc is not None else "") if doc["final"]["loss"] is not None
              else f"{outcome.status}: {outcome.steps} steps", file=sys.stderr)
        print(f"run dir: {outcome.run_dir}", file=sys.stderr)
    if outcome.status == "failed":
        print(f"training failed: {outcome.reason}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_INTERRUPTED if outcome.status == "stopped" else EXIT_OK


class TrainProgress:
    """The stderr progress line of headless training: rewritten in place on a terminal, else a line every 10 %."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.total = 0
        self.val: dict[str, float] = {}
        self.last_pct = -1
        self.t0 = time.perf_counter()
        self.start_step = 0

    def __call__(self, event: Any) -> None:
        kind = event.type
        if kind == "run_started":
            self.total, self.start_step = event.steps, event.start_step
            print(f"training {event.recipe} on {event.device} ({event.params:,} parameters) → {event.run_dir}", file=sys.stderr)
        elif kind == "eval":
            self.val = {"val_loss": event.loss, **{f"val_{k}": v for k, v in event.metrics.items()}}
        elif kind == "step":
            pct = int(100 * event.step / max(1, self.total))
            rate = (event.step - self.start_step) / max(1e-9, time.perf_counter() - self.t0)
            eta = (self.total - event.step) / rate if rate > 0 else 0
            extra = "".join(f" {k} {v:.4f}" for k, v in self.val.items())
            line = f"step {event.step}/{self.total} ({pct}%) loss {event.loss:.4f}{extra} {rate:.0f} steps/s ETA {eta:.0f}s"
            if self.tty:
                print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
            elif pct // 10 != self.last_pct // 10:
                print(line, file=sys.stderr, flush=True)
            self.last_pct = pct
        elif kind == "log" and event.level != "info":
            self.done()
            print(f"{event.level}: {event.message}", file=sys.stderr)
        elif kind == "failed":
            self.done()

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)
            self.tty = False


def _check(recipes: Any, args: argparse.Namespace) -> int:
    from recipe_tui.core.checks import CheckContext, run_checks
    from recipe_tui.core.config import apply_overrides
    from recipe_tui.core.control import RunControl

    exp = recipes.experiment(args.recipe)
    if args.overrides:
        exp = apply_overrides(exp, tuple(args.overrides))
    ids = select_items(recipes, args.items, args.stage)
    for n in args.stage or []:
        stage = next(s for s in recipes.stages if s.number == n)
        if not any(i.check for i in stage.items):
            print(f"stage {n} ({stage.title}) has no automated items: its items are ticked by hand in the app.",
                  file=sys.stderr)
    with _StopOnSigint() as stop:
        ctx = CheckContext(exp=exp, control=RunControl(emit=CheckProgress(), stop=stop), fix=args.fix, runs_root=args.runs)
        results = run_checks(ids, ctx)
    if args.json:
        print(json.dumps({"recipe": exp.name, "items": [r.public() for r in results]}, default=str))
    else:
        width = max((len(r.id) for r in results), default=4)
        for r in results:
            print(f"{r.status.upper():<5}  {r.id:<{width}}  {r.summary}")
            if r.hint and r.status in ("warn", "fail", "error"):
                print(f"{'':<5}  {'':<{width}}  → {r.hint}")
    if stop.is_set():
        return EXIT_INTERRUPTED  # the remaining items did not run: not a pass
    failed = any(r.status in ("fail", "error") for r in results)
    return EXIT_FAILED if failed else EXIT_OK


def select_items(recipes: Any, items: list[str], stages: list[int] | None) -> list[str]:
    """Item ids to run: the named ones, then those of ``--stage``; default all automated of stages 1–2."""
    from recipe_tui.core.config import ConfigError
    from recipe_tui.core.validate import suggest

    automated = {i.id: i for i in recipes.items() if i.check}
    known = {i.id for i in recipes.items()}
    chosen: list[str] = []
    for item in items:
        if item not in known:
            raise ConfigError(f"{recipes.path}: no checklist item '{item}'{suggest(item, known)}.")
        if item == "train":
            raise ConfigError(f"{recipes.path}: item 'train' is training itself: run `recipe-tui train`.")
        if item not in automated:
            raise ConfigError(f"{recipes.path}: item '{item}' is manual (no automated check); tick it in the app.")
        chosen.append(automated[item].check)
    wanted_stages = stages if stages else ([] if items else [1, 2])
    numbers = {s.number for s in recipes.stages}
    for n in wanted_stages:
        if n not in numbers:
            raise ConfigError(f"--stage {n}: the recipe has stages {min(numbers)}–{max(numbers)}." if numbers
                              else f"--stage {n}: {recipes.path} has no checklist stages.")
        chosen += [i.check for s in recipes.stages if s.number == n for i in s.items if i.check]
    return list(dict.fromkeys(chosen))


class CheckProgress:
    """stderr lines while checks run."""

    def __call__(self, event: Any) -> None:
        if event.type == "check_started":
            print(f"… {event.id}", file=sys.stderr, flush=True)
        elif event.type == "log" and event.level == "error":
            print(f"  {event.message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
