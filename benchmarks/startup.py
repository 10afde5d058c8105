"""Time from launching ``recipe-tui`` to its first frame, beside a bare ``python -c "import torch"``.

    python benchmarks/startup.py [--rounds 5]

The app runs in a pseudo-terminal (100×30) like in a real terminal; the first frame is the moment the
checklist's first stage title reaches the terminal. torch and the data load in a worker after that,
so the first frame must not wait for them. Budget (DESIGN.md): ≤ 1 s. Prints medians.
"""
from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

MARKER = b"Inspect the data"


def first_frame_seconds(exe: Path, runs: Path, timeout: float = 30.0) -> float:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(exe), "--runs", str(runs)], stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        while MARKER not in seen:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("no first frame")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                seen = seen[-4096:] + os.read(master, 65536)
        elapsed = time.perf_counter() - t0
        time.sleep(0.5)
        os.write(master, b"q")
        end = time.monotonic() + 15
        while proc.poll() is None and time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 65536)  # keep draining so the app never blocks on a full pty
                except OSError:
                    break
        return elapsed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


def command_seconds(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    exe = Path(sys.executable).with_name("recipe-tui")
    frames, torches = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            frames.append(first_frame_seconds(exe, Path(tmp) / f"runs{r}"))
            torches.append(command_seconds([sys.executable, "-c", "import torch"]))
            print(f"round {r + 1}: first frame {frames[-1]:.2f} s · python -c 'import torch' {torches[-1]:.2f} s")
    frame, torch_s = statistics.median(frames), statistics.median(torches)
    print(f"launch → first frame: {frame:.2f} s (median of {args.rounds}; budget ≤ 1 s) "
          f"{'OK' if frame <= 1.0 else 'OVER BUDGET'}; bare `import torch`: {torch_s:.2f} s "
          f"(ratio {frame / torch_s:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
