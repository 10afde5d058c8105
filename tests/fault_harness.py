"""Fault drills shared by the tests and ``benchmarks/faults.py``: a flood of events into a run dir and the screen,
key latency under it, and chained SIGKILLs of headless training with resumes.

A plain module (not conftest) so tests and the benchmark can import it; its name is unique across tests/.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recipe_tui.core.events import Finished, RunStarted, Step


def flood(emit: Callable[[Any], None], seconds: float, rate: float = 100_000.0, run_dir: str = "flood") -> int:
    """Emit ``Step`` events at up to ``rate`` a second for ``seconds`` (a run started and finished around them), as
    a tiny model logging every step would; returns how many steps were emitted."""
    emit(RunStarted(run_dir=run_dir, recipe="flood", device="cpu", steps=10**9))
    step, t0 = 0, time.perf_counter()
    end = t0 + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) * rate)  # catch up in bursts: the emitter never sleeps less than it must
        while step < due:
            step += 1
            emit(Step(step=step, loss=1.0 / step, lr=1e-3, grad_norm=0.5, steps_per_s=rate))
        time.sleep(0.001)
    emit(Finished(status="stopped", step=step))
    return step


async def key_latency(pilot: Any, moved: Callable[[], object], key: str = "j", timeout: float = 10.0) -> float:
    """Seconds from pressing ``key`` until ``moved()`` returns something new. The key is posted as the terminal
    driver posts it (``simulate_key``): ``Pilot.press`` would also wait for the app to go idle, which a flood
    never lets it."""
    before = moved()
    t0 = time.perf_counter()
    pilot.app.simulate_key(key)
    while moved() == before:
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"{key} had no effect within {timeout} s")
        await pilot.pause(0.001)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ kill loops


@dataclass
class KillReport:
    tried: int = 0  # SIGKILLs sent
    survived: int = 0  # kills after which the next resume worked
    redone: list[int] = field(default_factory=list)  # steps trained again after each kill
    problems: list[str] = field(default_factory=list)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recipe_tui.tui.cli", *args]


def train_until_killed(argv: list[str], cwd: Path, run_glob: str, min_new_steps: int, rng: random.Random,
                       env: dict[str, str]) -> tuple[Path | None, bool]:
    """Start ``recipe-tui train …``, wait until it logged ``min_new_steps`` more steps plus a random extra, and
    SIGKILL it. Returns (the run dir, whether it was killed rather than finished)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        start_lines, run = None, None
        target = min_new_steps + rng.randint(0, 3 * min_new_steps)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            runs = sorted(cwd.glob(run_glob))
            if runs:
                run = runs[-1]
                lines = _step_lines(run / "events.jsonl")
                start_lines = lines if start_lines is None else start_lines
                if lines - start_lines >= target:
                    break
            time.sleep(rng.uniform(0.001, 0.02))
        if proc.poll() is not None:
            return run, False
        os.kill(proc.pid, signal.SIGKILL)
        return run, True
    finally:
        proc.kill()
        proc.wait()


def _step_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b'"type":"step"')
    except FileNotFoundError:
        return 0


def audit_run_dir(run: Path) -> list[str]:
    """What is wrong in a run dir after a kill: unparsable events lines (a torn last one is allowed), damaged
    metrics.csv rows, an unloadable checkpoint."""
    import csv

    import torch

    problems = []
    lines = (run / "events.jsonl").read_bytes().split(b"\n")
    for n, line in enumerate(lines[:-1]):
        try:
            json.loads(line)
        except ValueError:
            problems.append(f"{run.name}: events.jsonl line {n + 1} does not parse")
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    complete = (run / "metrics.csv").read_bytes().endswith(b"\n")
    for row in rows[1:len(rows) if complete else -1]:
        if len(row) != 6:
            problems.append(f"{run.name}: metrics.csv row {row} is damaged")
    if (run / "checkpoint.pt").exists():
        try:
            torch.load(run / "checkpoint.pt", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            problems.append(f"{run.name}: checkpoint.pt does not load: {exc}")
    return problems


def losses(run: Path) -> dict[int, float]:
    """step → loss of the last time each step was logged (a step redone after a kill appears twice)."""
    out = {}
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "step":
            out[event["step"]] = round(event["loss"], 5)
    return out


def kill_loop(folder: Path, recipe: str, steps: int, checkpoint_every: int, kills: int, seed: int = 0,
              interrupt_with_sigint: bool = False, extra: tuple[str, ...] = ()) -> tuple[KillReport, Path]:
    """Train ``recipe`` headless with ``kills`` SIGKILLs at random moments (chained: each resume is killed again),
    optionally a ctrl+c (SIGINT) first, then let the last resume finish. Returns the report and the run dir."""
    rng = random.Random(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    report = KillReport()
    common = [*overrides(steps, checkpoint_every, extra)]
    first = cli("train", "--runs", "runs", "--recipe", recipe, *common)
    run_glob = f"runs/{recipe}/2*"
    run = None
    if interrupt_with_sigint:
        run = _interrupt(first, folder, run_glob, env)
    for _ in range(kills):
        argv = first if run is None else cli("train", "--resume", str(run))
        # The first run lives past its first checkpoint (a run without one cannot be resumed, by design).
        min_new = checkpoint_every + 1 if run is None else checkpoint_every // 2
        killed_run, killed = train_until_killed(argv, folder, run_glob, min_new, rng, env)
        run = run or killed_run
        if not killed or run is None:
            break
        report.tried += 1
        report.problems += audit_run_dir(run)
        # What the next resume trains again: the steps logged after the checkpoint it continues from.
        report.redone.append(max(0, max(_logged_steps(run), default=0) - (_last_checkpoint(run) or 0)))
    done = subprocess.run(cli("train", "--resume", str(run), "--json"), cwd=folder, capture_output=True, text=True,
                          env=env, timeout=600)
    if done.returncode == 0 and json.loads(done.stdout)["status"] == "completed":
        report.survived = report.tried
    else:
        report.problems.append(f"the last resume failed: {done.stderr[-500:]}")
    report.problems += audit_run_dir(run)
    return report, run


def overrides(steps: int, checkpoint_every: int, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``--set`` arguments of a kill loop's runs (and of the uninterrupted reference)."""
    sets = [f"train.steps={steps}", "train.log_every=1", f"train.checkpoint_every={checkpoint_every}",
            "train.eval_every=50", *extra]
    return [arg for kv in sets for arg in ("--set", kv)]


def _interrupt(argv: list[str], folder: Path, run_glob: str, env: dict[str, str]) -> Path:
    """Start training and stop it with SIGINT (ctrl+c) once it checkpointed: the run to continue."""
    proc = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            runs = sorted(folder.glob(run_glob))
            if runs and (runs[-1] / "checkpoint.pt").exists():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        assert proc.returncode == 130, proc.returncode
        return sorted(folder.glob(run_glob))[-1]
    finally:
        proc.kill()


def _logged_steps(run: Path) -> list[int]:
    steps = []
    for line in (run / "events.jsonl").read_bytes().split(b"\n"):
        if b'"type":"step"' in line:
            try:
                steps.append(json.loads(line)["step"])
            except ValueError:
                pass  # the torn last line
    return steps


def _last_checkpoint(run: Path | None) -> int | None:
    import torch

    if run is None or not (run / "checkpoint.pt").exists():
        return None
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["step"])
