"""CPU used by the idle app: ``recipe-tui`` open in a real terminal (tmux), nothing running.

    python benchmarks/idle_cpu.py [--settle 20] [--seconds 30]

Starts the app in a tmux pane of its own tmux server (120×40), waits ``--settle`` seconds for the
background load (torch, data, the last run) to finish, then measures the process's CPU time (user +
system, all threads) over ``--seconds`` with psutil. Budget (DESIGN.md): ~0 % — nothing polls while
nothing runs; only the status line's 1 Hz machine-load reading may wake the UI.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil


def app_process(tmux: list[str]) -> psutil.Process:
    """The recipe-tui process inside the pane (the pane's shell runs it as a child, or execs it)."""
    pane_pid = int(subprocess.run(tmux + ["display-message", "-p", "-t", "idle", "#{pane_pid}"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    pane = psutil.Process(pane_pid)
    for proc in [pane, *pane.children(recursive=True)]:
        if any("recipe-tui" in part for part in proc.cmdline()):
            return proc
    raise RuntimeError("recipe-tui is not running in the pane")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("idle app: skipped (needs tmux)")
        return 0
    exe = Path(sys.executable).with_name("recipe-tui")
    tmux = ["tmux", "-L", f"recipe-tui-idle-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    with tempfile.TemporaryDirectory() as tmp:
        command = f"exec {shlex.quote(str(exe))} --runs {shlex.quote(str(Path(tmp) / 'runs'))}"
        subprocess.run(tmux + ["new-session", "-d", "-s", "idle", "-x", "120", "-y", "40", command], env=env,
                       check=True)
        try:
            time.sleep(args.settle)
            proc = app_process(tmux)
            t0, c0 = time.monotonic(), proc.cpu_times()
            time.sleep(args.seconds)
            t1, c1 = time.monotonic(), proc.cpu_times()
            cpu = (c1.user - c0.user) + (c1.system - c0.system)
            threads = proc.num_threads()
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)
    print(f"idle app: {cpu:.2f} s of CPU in {t1 - t0:.1f} s = {100 * cpu / (t1 - t0):.2f} % of one core "
          f"({threads} threads; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
