"""Helpers for the app tests: a small recipes file, test-only checks, waiting on app state, the screen as text.

A plain module (not conftest) so test files can import it; its name is unique across tests/.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from recipe_tui.core.checks import Verdict
from recipe_tui.core.config import shipped_recipes_path

# Checks that exist only in the tests: a pass with evidence and progress, one that raises; and two manual items.
EXTRA_ITEMS = """
[[stage.item]]
id = "tui-pass"
title = "A check that passes"
check = "tui-test-pass"
guidance = "Registered by the TUI tests."

[[stage.item]]
id = "tui-missing"
title = "A check nobody wrote"
check = "tui-test-not-registered"
guidance = "No check has this id."

[[stage.item]]
id = "tui-boom"
title = "A check that raises"
check = "tui-test-boom"
guidance = "Its check raises RuntimeError."

[[stage.item]]
id = "tui-manual"
title = "A manual item"
guidance = "Ticked by hand (every item of the shipped recipe is automated)."

[[stage.item]]
id = "tui-manual-2"
title = "Another manual item"
guidance = "Ticked by hand."

"""


def passing_check(ctx: Any):
    ctx.tick("tui-test-pass", 1, 2)
    return Verdict("pass", "all good here", {"evidence_value": 1.5}, hint="Nothing to do.")


def raising_check(ctx: Any):
    raise RuntimeError("boom from the test check")


def make_recipes(folder: Path, steps: int = 1500, lr: str = "3e-3", source: str = "digits", extra: bool = True,
                 eval_every: int = 100, checkpoint_every: int = 500, train_extra: str = "") -> Path:
    """The shipped recipes text, first experiment changed as asked (the rest untouched)."""
    text = shipped_recipes_path().read_text()
    old = "train = { lr = 3e-3, batch_size = 64, steps = 1500, seed = 1337, eval_every = 100 }"
    assert old in text
    new = (f"train = {{ lr = {lr}, batch_size = 64, steps = {steps}, seed = 1337, eval_every = {eval_every}, "
           f"checkpoint_every = {checkpoint_every}{', ' + train_extra if train_extra else ''} }}")
    text = text.replace(old, new, 1)
    text = text.replace('data = { source = "digits", val_fraction = 0.2 }',
                        f'data = {{ source = "{source}", val_fraction = 0.2 }}', 1)
    if extra:
        marker = "# " + "-" * 94 + " experiments"
        assert marker in text
        text = text.replace(marker, EXTRA_ITEMS + marker, 1)
    path = folder / "recipes.toml"
    path.write_text(text)
    return path


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``condition`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def screen_text(app: Any) -> str:
    """What the screen shows, as plain text (the compositor's current strips)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def plain(renderable: Any, width: int = 300) -> str:
    """A rich renderable as plain text on one wide line per row (no wrapping surprises in asserts)."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def detail_text(app: Any) -> str:
    """The item detail pane's content, unwrapped."""
    return plain(app.query_one("#detail").body.content)


APP_SCRIPT = '''
import sys
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.shutdown import fast_exit

app = RecipeApp(file=sys.argv[1], runs=sys.argv[2])


async def press(pilot):
    await pilot.press(sys.argv[3])

app.run(headless=True, size=(100, 30), auto_pilot=press)
for line in app.exit_lines:
    print(line)
fast_exit(app.return_code)  # as the CLI ends: child processes are ended (a run in processes of its own is spared)
'''


def app_process(folder: Path, recipes: Path, runs: Path, key: str) -> subprocess.Popen:
    """The app in a process of its own (headless, so that a test can send it signals), pressing ``key`` once
    it is up; what it prints after exit comes on stdout."""
    script = folder / "app_script.py"
    script.write_text(APP_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), str(recipes), str(runs), key], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def signal_after_checkpoint(proc: subprocess.Popen, runs: Path, sig: int, timeout: float = 90) -> tuple[str, str]:
    """Send ``sig`` to the app in ``proc`` once its run has written a checkpoint; its stdout and stderr."""
    try:
        deadline = time.monotonic() + timeout
        while not list(runs.glob("*/*/checkpoint.pt")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(sig)
        return proc.communicate(timeout=30)
    finally:
        proc.kill()
