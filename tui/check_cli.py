"""``recipe-tui check``: which items to run (``select_items``), progress lines on stderr while they run, the
results as lines or one JSON document (``print_results``, shared with ``tune``)."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from .cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .shutdown import run_stoppable, say


def check(recipes: Any, args: argparse.Namespace) -> int:
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

