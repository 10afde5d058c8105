"""The real thing: ``recipe-tui`` in a tmux pane (a real terminal, the real driver and stderr guard), keys
sent with ``send-keys``, the screen read with ``capture-pane``."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from tui_helpers import make_recipes

STAGES = ("Inspect the data", "Set up the skeleton", "Overfit", "Regularize", "Tune", "Squeeze out the juice")
HEADINGS = tuple(f"{n} {title}" for n, title in enumerate(STAGES, 1))
STEP = re.compile(r"step ([\d,]+)/200,000")
BRAILLE = re.compile("[\u2801-\u28ff]")  # plotext's line dots

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """One tmux server of our own (unique socket name), so nothing touches the user's sessions."""

    def __init__(self, env: dict[str, str]) -> None:
        self.base = ["tmux", "-L", f"recipe-tui-test-{uuid.uuid4().hex[:10]}", "-f", "/dev/null"]
        self.env = env

    def run(self, *args: str) -> str:
        return subprocess.run(self.base + list(args), env=self.env, capture_output=True, text=True,
                              timeout=10, check=True).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app")

    def wait(self, condition: Callable[[str], object], timeout: float = 40.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(self.base + ["kill-server"], env=self.env, capture_output=True, timeout=10)


def launch(folder: Path, size: tuple[int, int], args: str = "", home: Path | None = None) -> Tmux:
    """``recipe-tui --file recipes.toml --runs runs ARGS`` in ``folder``, in a tmux pane of ``size``; the
    pane then prints ``__EXIT__ <code>`` and stays open a minute so that the end can be read."""
    env = {**os.environ, "HOME": str(home or folder), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    env.pop("TMUX", None)  # started from inside tmux, tmux would refuse to nest
    exe = Path(sys.executable).with_name("recipe-tui")
    command = (f"cd {shlex.quote(str(folder))} && {shlex.quote(str(exe))} --file recipes.toml --runs runs {args}; "
               "echo __EXIT__ $?; sleep 60")
    tmux = Tmux(env)
    tmux.run("new-session", "-d", "-s", "app", "-x", str(size[0]), "-y", str(size[1]), command)
    return tmux


def _chart(screen: str) -> str:
    """The charts area: everything right of the checklist column, above the bottom panes."""
    return "\n".join(line[42:] for line in screen.splitlines()[:30])


def _step(screen: str) -> int:
    m = STEP.search(screen)
    return int(m.group(1).replace(",", "")) if m else -1


def test_recipe_tui_in_tmux_trains_live_and_quits(tmp_path: Path):
    make_recipes(tmp_path, steps=200_000, eval_every=50, extra=False)  # writes tmp_path/recipes.toml
    home = tmp_path / "home"
    home.mkdir()
    tmux = launch(tmp_path, (160, 72), home=home)
    try:
        screen = tmux.wait(lambda s: all(stage in s for stage in STAGES) and "q Quit" in s,
                           what="the six stages and the footer")
        assert "t Train" in screen and "Per-split statistics" in screen
        tmux.run("send-keys", "-t", "app", "t")
        first = tmux.wait(lambda s: _step(s) > 0 and BRAILLE.search(_chart(s)), what="training to start and draw")
        later = tmux.wait(lambda s: _step(s) > _step(first) and _chart(s) != _chart(first),
                          what="the step count and the chart to change")
        assert _step(later) > _step(first)
        tmux.run("send-keys", "-t", "app", "q")  # asks first: the run goes on until answered
        asked = tmux.wait(lambda s: "Stop it and quit?" in s, what="the quit question")
        assert "Training is running" in asked and "Stop and quit (y)" in asked and "Cancel (n)" in asked
        tmux.run("send-keys", "-t", "app", "n")
        tmux.wait(lambda s: "Stop it and quit?" not in s and _step(s) > _step(asked), what="training to go on")
        tmux.run("send-keys", "-t", "app", "q")
        tmux.wait(lambda s: "Stop it and quit?" in s, what="the quit question again")
        tmux.run("send-keys", "-t", "app", "y")
        end = tmux.wait(lambda s: "__EXIT__" in s, timeout=20, what="the process to end")
        assert "__EXIT__ 0" in end
        runs = list((tmp_path / "runs" / "digits-mlp").glob("*/checkpoint.pt"))
        assert len(runs) == 1  # quitting mid-run stopped the trainer, which wrote its checkpoint
        run = runs[0].parent.relative_to(tmp_path)
        # One line on the terminal after exit: the run, its state and how to resume it.
        line = tmux.run("capture-pane", "-p", "-J", "-t", "app")  # -J: wrapped lines joined
        assert f"run {run} stopped at step" in line and f"recipe-tui train --resume {run} --file recipes.toml" in line
    finally:
        tmux.kill()


NOISY_FACTORY = '''
import os

import torch

from recipe_tui.core.data import TensorPairs


def make():
    os.write(2, b"RAW-STDERR-NOISE written below Python, as C code would\\n")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 1, 8, 8, generator=g), torch.randint(0, 4, (256,), generator=g)
    return {"train": TensorPairs(x[:200], y[:200]), "val": TensorPairs(x[200:], y[200:])}
'''

NOISY_RECIPE = '''
[recipe.noisy]
task = "classification"
data = { factory = "noisy_data:make" }
model = { name = "mlp", width = 16 }
'''


def test_raw_writes_to_fd2_go_to_the_log_not_the_screen(tmp_path: Path):
    recipes = make_recipes(tmp_path, extra=False)
    recipes.write_text(recipes.read_text() + NOISY_RECIPE)
    (tmp_path / "noisy_data.py").write_text(NOISY_FACTORY)
    tmux = launch(tmp_path, (120, 40), "--recipe noisy")
    try:
        screen = tmux.wait(lambda s: "image 1×8×8" in s, what="the factory's data in the dataset pane")
        assert "RAW-STDERR-NOISE" not in screen
        tmux.run("send-keys", "-t", "app", "q")
        end = tmux.wait(lambda s: "__EXIT__" in s, timeout=20, what="the process to end")
        assert "__EXIT__ 0" in end and "low-level stderr output were kept in runs/noisy/stderr.log" in end
        assert "RAW-STDERR-NOISE" in (tmp_path / "runs" / "noisy" / "stderr.log").read_text()
    finally:
        tmux.kill()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_first_frame_at_120x40_and_80x24(tmp_path: Path, size: tuple[int, int]):
    """At 120×40 the first frame that shows the checklist shows all six stage headings (the stages that
    are not current are folded); at 80×24 the footer still shows ? and q."""
    make_recipes(tmp_path, extra=False)
    tmux = launch(tmp_path, size)
    try:
        first = tmux.wait(lambda s: "Inspect the data" in s, what="the first frame with the checklist")
        lines = first.splitlines()
        if size == (120, 40):
            assert all(heading in first for heading in HEADINGS), first
            assert "Causal dependencies" not in first  # stage 2 is folded on a first launch
        else:
            footer = tmux.wait(lambda s: "q Quit" in s.splitlines()[-1], what="the footer").splitlines()[-1]
            assert "? Help" in footer and "q Quit" in footer and "t Train" in footer, footer
            assert max(len(line) for line in lines) <= 80
        tmux.run("send-keys", "-t", "app", "q")
        assert "__EXIT__ 0" in tmux.wait(lambda s: "__EXIT__" in s, timeout=20, what="the process to end")
    finally:
        tmux.kill()
