"""Small CLI edges: a stage without automated items, and a reader that closes the pipe early."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipe_tui.tui.cli import EXIT_BROKEN_PIPE, main

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("stage", [4, 5, 6])
def test_a_stage_without_automated_items_says_so(stage, tmp_path, capsys):
    assert main(["check", "--stage", str(stage), "--json", "--runs", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["items"] == []
    assert f"stage {stage} (" in err and "has no automated items" in err
    assert main(["check", "--stage", str(stage), "--runs", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "has no automated items" in err


@pytest.mark.parametrize("argv", [["list", "--json"], ["list"], ["check", "--stage", "5", "--json"]])
def test_a_closed_pipe_ends_quietly(argv, tmp_path):
    exe = Path(sys.executable).with_name("recipe-tui")
    proc = subprocess.Popen([str(exe), *argv, "--runs", str(tmp_path / "runs")] if argv[0] == "check" else [str(exe), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    proc.stdout.close()  # `| head` that has read enough: the first write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err
