"""``recipe-tui``: opens the app, or runs headless (list, train, check, runs, watch).

Exit codes: 0 ok · 1 a check or training failed · 2 bad usage or bad config · 130 interrupted.
``--json`` prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from .shutdown import say

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
        from .train_cli import train
        return train(recipes, args)
    if args.command == "check":
        from .check_cli import check
        return check(recipes, args)
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


if __name__ == "__main__":
    sys.exit(main())
