"""Small CLI edges: a stage without automated items, and a reader that closes the pipe early."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_tui.tui.cli import EXIT_BROKEN_PIPE, main

pytestmark = pytest.mark.timeout(120)


def manual_stage_6(folder: Path) -> Path:
    """The shipped recipes with stage 6's items manual (every shipped item is automated)."""
    from recipe_tui.core.config import shipped_recipes_path

    text = shipped_recipes_path().read_text()
    for check in ('check = "ensemble"\n', 'check = "distill"\n'):
        assert check in text
        text = text.replace(check, "")
    path = folder / "recipes.toml"
    path.write_text(text)
    return path


def test_a_stage_without_automated_items_says_so(tmp_path, capsys):
    file = str(manual_stage_6(tmp_path))
    assert main(["check", "--stage", "6", "--json", "--runs", str(tmp_path), "--file", file]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["items"] == []
    assert "stage 6 (" in err and "has no automated items" in err
    assert main(["check", "--stage", "6", "--runs", str(tmp_path), "--file", file]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "has no automated items" in err


@pytest.mark.parametrize("argv", [["list", "--json"], ["list"], ["check", "--stage", "6", "--json"]])
def test_a_closed_pipe_ends_quietly(argv, tmp_path):
    exe = Path(sys.executable).with_name("recipe-tui")
    extra = ["--runs", str(tmp_path / "runs"), "--file", str(manual_stage_6(tmp_path))] if argv[0] == "check" else []
    proc = subprocess.Popen([str(exe), *argv, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # `| head` that has read enough: the first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err
