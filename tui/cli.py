"""``recipe-tui``: opens the app, or runs headless (list, train, check, runs, watch).

Exit codes: 0 ok · 1 a check or training failed · 2 bad usage or bad config · 130 interrupted.
``--json`` prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from .shutdown import run_stoppable, say

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
    parser.add_argument("--set", dest="app_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="the app: override a key of the experiment it opens, e.g. train.nproc=2")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = subs.add_parser("list", help="list the experiments and checklist items of the recipes file")
    common(p, sub=True)
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("train", help="train headless into a run dir")
    common(p, sub=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-3")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--nproc", type=_positive_int, metavar="N",
                   help="train with N processes (torchrun + DDP) on this machine; same as --set train.nproc=N")
    p.add_argument("--forever", action="store_true",
                   help="train open-ended until stopped, keeping best.pt (leave it training); same as --set train.steps=0")
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("check", help="run checklist items headless")
    common(p, sub=True)
    p.add_argument("items", nargs="*", metavar="ITEM", help="item ids (default: all automated items of stages 1 and 2)")
    p.add_argument("--stage", type=int, action="append", metavar="N", help="all automated items of stage N")
    p.add_argument("--fix", action="store_true", help="apply the fixes that checks offer (e.g. init-bias)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")

    from .tune_cli import add_parser
    add_parser(subs, common)

    p = subs.add_parser("runs", help="list the runs of the experiment, with what differs from the recipe")
    common(p, sub=True)
    p.add_argument("--json", action="store_true")

    p = subs.add_parser("watch", help="show a run dir that another process is writing")
    common(p, sub=True)
    p.add_argument("run_dir", metavar="RUN_DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns its exit code. Called without ``argv`` (the installed ``recipe-tui``, ``python -m``),
    it ends the process itself once the command is done (``fast_exit``): every file is written by then, and the
    interpreter's teardown would add about a second once torch is imported, or wait for a thread stuck in user
    code."""
    code = _main(argv)
    if argv is None:
        from .shutdown import fast_exit, jobs_left_behind
        fast_exit(code, run_atexit=not jobs_left_behind())
    return code


def _main(argv: Sequence[str] | None) -> int:
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
    from recipe_tui.core.config import ConfigError, load_recipes

    if args.command and args.app_overrides:
        raise ConfigError(f"--set before the command sets a key for the app; for {args.command} put it after the "
                          f"command: recipe-tui {args.command} --set {args.app_overrides[0]}.")
    if args.command == "watch":
        from .app import run_app
        from .bridge import watch_target
        watch_target(args.run_dir)  # a bad folder is refused first (exit 2), terminal or not
        need_terminal()
        return run_app(watch=args.run_dir, runs=args.runs)
    recipes = load_recipes(args.file)
    if args.command == "list":
        return _list(recipes, args.json)
    if args.command == "train":
        return _train(recipes, args)
    if args.command == "check":
        return _check(recipes, args)
    if args.command == "runs":
        return _runs(recipes, args)
    if args.command == "tune":
        from .tune_cli import tune
        return tune(recipes, args)
    from recipe_tui.core.config import apply_overrides
    exp = apply_overrides(recipes.experiment(args.recipe), args.app_overrides)  # validate before the app opens
    from .app import run_app
    need_terminal()
    return run_app(file=args.file, recipe=exp.name, runs=args.runs, overrides=tuple(args.app_overrides))


def need_terminal() -> None:
    """The app draws a full screen and reads keys: refuse (exit 2) when it would draw into a file or a pipe."""
    from recipe_tui.core.config import ConfigError

    pipes = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))
             if stream is None or not stream.isatty()]
    if pipes:
        raise ConfigError(f"the app needs a terminal, but {' and '.join(pipes)} {'is' if len(pipes) == 1 else 'are'} "
                          "not one: run it in a terminal (tmux works), or headless with `recipe-tui train` or `check`.")


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


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes ≥ 1, got {text!r}")
    return int(text)


def _train(recipes: Any, args: argparse.Namespace) -> int:
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
            say(f"stage {n} ({stage.title}) has no automated items: its items are ticked by hand in the app.")
    progress, stop = CheckProgress(), threading.Event()
    ctx = CheckContext(exp=exp, control=RunControl(emit=progress, stop=stop), fix=args.fix, runs_root=args.runs)
    results = run_stoppable(lambda: run_checks(ids, ctx), stop,
                            lambda where: _checks_stuck(exp.name, progress.results, where, args.json))
    print_results(exp.name, results, args.json)
    if stop.is_set():
        return EXIT_INTERRUPTED  # the remaining items did not run: not a pass
    failed = any(r.status in ("fail", "error") for r in results)
    return EXIT_FAILED if failed else EXIT_OK


def _runs(recipes: Any, args: argparse.Namespace) -> int:
    from recipe_tui.core.runs import list_runs

    exp = recipes.experiment(args.recipe)
    rows = list_runs(args.runs, exp.name, exp)
    if args.json:
        say(json.dumps({"recipe": exp.name, "runs_dir": str(args.runs), "runs": rows}, default=str), file=sys.stdout)
        return EXIT_OK
    if not rows:
        say(f"no runs of {exp.name} under {args.runs}/{exp.name} yet")
        return EXIT_OK
    metric = next((r["metric"]["name"] for r in rows if r["metric"]["name"]), None) or "metric"
    say(f"{'run':<20} {'status':<11} {'steps':>9} {'train':>8} {'val':>8} {metric[:8]:>8} {'time':>7}  origin / changes", file=sys.stdout)
    for r in rows:
        origin = r["tag"].get("label") and f"{r['tag'].get('kind', '')} {r['tag']['label']}"
        changes = " ".join(f"{k}={v}" for k, v in r["changes"].items())
        say(f"{r['name']:<20} {r['status']:<11} {r['steps']:>9,} {_num(r['train_loss']['final']):>8} "
              f"{_num(r['val_loss']['best']):>8} {_num(r['metric']['best']):>8} {r['seconds']:>6.0f}s  "
              f"{' · '.join(x for x in (origin, changes) if x)}", file=sys.stdout)
    return EXIT_OK


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def print_results(recipe: str, results: list[Any], as_json: bool) -> None:
    if as_json:
        say(json.dumps({"recipe": recipe, "items": [r.public() for r in results]}, default=str), file=sys.stdout)
        return
    width = max((len(r.id) for r in results), default=4)
    for r in results:
        say(f"{r.status.upper():<5}  {r.id:<{width}}  {r.summary}", file=sys.stdout)
        if r.hint and r.status in ("warn", "fail", "error"):
            say(f"{'':<5}  {'':<{width}}  → {r.hint}", file=sys.stdout)


def _checks_stuck(recipe: str, results: list[Any], where: str, as_json: bool) -> None:
    """A check did not return after a stop (user code stuck): the results so far, and why the rest is missing."""
    from .shutdown import GRACE_S

    print_results(recipe, results, as_json)
    say(f"recipe-tui: the check did not return within {GRACE_S:g} s of the stop: the user's code is still running "
        f"(at {where}); exiting without it.")


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
    """stderr lines while checks run; keeps the results (printed as they are if a check never returns)."""

    def __init__(self) -> None:
        self.results: list[Any] = []

    def __call__(self, event: Any) -> None:
        if event.type == "check_started":
            say(f"… {event.id}")
        elif event.type == "check_row":
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in event.row.items()
                              if isinstance(v, (int, float, str)) and k not in ("run_dir",))
            say(f"  {event.id} {event.table}: {shown}")
        elif event.type == "check_result":
            self.results.append(event)
        elif event.type == "log" and event.level == "error":
            say(f"  {event.message}")


if __name__ == "__main__":
    sys.exit(main())
