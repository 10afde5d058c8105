"""``recipe-tui train --nproc N``: N training processes on this machine through torchrun, reported like one.

The launcher runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m recipe_tui.tui.cli train …``
as a child in a session of its own, so a ctrl+c in the terminal reaches the launcher only, which passes it on
exactly once to every rank; the ranks agree to stop at the same step and rank 0 writes a checkpoint. A second
ctrl+c (or SIGTERM) kills the whole group. Rank 0 reports its run dir and exit code through a small outcome file,
so the exit-code contract (0 ok · 1 failed · 2 bad config · 130 interrupted) holds through torchrun, whose own exit
code only says whether every worker exited 0 (ranks that reported exit 0, so torchrun stays quiet unless a rank
failed); a group that dies without reporting (a rank killed, a crash) still leaves a ``failed`` event at the end
of the run's events.jsonl.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from .distributed import DistEnv, under_torchrun
from .events import Failed
from .jobs import TrainOutcome, describe_outcome
from .rundir import RunDir

OUTCOME_ENV = "RECIPE_TUI_OUTCOME"
WORKER_MODULE = "recipe_tui.tui.cli"
EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
_RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def in_group() -> bool:
    """This process is one rank of a torchrun group (so it must not start another)."""
    return under_torchrun()


def is_main() -> bool:
    return DistEnv.from_env().rank == 0


def launched() -> bool:
    """This rank was started by ``launch`` (which turns rank 0's report into the exit code)."""
    return in_group() and bool(os.environ.get(OUTCOME_ENV))


def rank_exit_code(code: int) -> int:
    """What a rank exits with: its code, except under ``launch``, where only a failure is torchrun's business."""
    return code if not launched() or code == EXIT_FAILED else 0


def torchrun_command(nproc: int, train_args: list[str]) -> list[str]:
    """The command that starts ``nproc`` ranks of ``recipe-tui <train_args>`` on this machine (loopback
    rendezvous on a free port: ``--standalone``)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", WORKER_MODULE, *train_args]


def report(**fields: Any) -> None:
    """Rank 0 under the launcher: add ``fields`` (``run_dir``, ``exit_code``) to the outcome file. No-op otherwise."""
    path = os.environ.get(OUTCOME_ENV)
    if not path or not is_main():
        return
    data = {**_read(Path(path)), **fields}
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def launch(nproc: int, train_args: list[str], as_json: bool = False) -> int:
    """Run the torchrun group to its end and return the exit code rank 0 reported (1 or 130 when none did)."""
    with tempfile.TemporaryDirectory(prefix="recipe-tui-launch-") as tmp:
        outcome = Path(tmp) / "outcome.json"
        print(f"starting {nproc} training processes with torchrun (DistributedDataParallel)…", file=sys.stderr, flush=True)
        proc = subprocess.Popen(torchrun_command(nproc, train_args), env={**os.environ, OUTCOME_ENV: str(outcome)},
                                start_new_session=True)
        with _Relay(proc) as relay:
            rc = proc.wait()
        return _conclude(_read(outcome), rc, relay.received, as_json)


class _Relay:
    """Passes the first ctrl+c / SIGTERM / SIGHUP to torchrun (a stop: it forwards it to every rank); a second one
    kills torchrun and every process under it."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.received: list[int] = []

    def __enter__(self) -> "_Relay":
        self._old = {s: signal.signal(s, self._on_signal) for s in _RELAYED}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            print("\nstopping every rank (ctrl+c again to kill them)…", file=sys.stderr, flush=True)
            stop = signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM
            for pid in _ranks(self.proc.pid) or [self.proc.pid]:  # torchrun itself would forward it, noisily
                _send(pid, stop)
        else:
            kill_tree(self.proc.pid)


def _ranks(pid: int) -> list[int]:
    """The rank processes torchrun started (its direct children)."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def _send(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process under it (torchrun starts each rank in a session of its own, so a
    process-group kill would miss them)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _conclude(outcome: dict[str, Any], rc: int, received: list[int], as_json: bool) -> int:
    if "exit_code" in outcome:
        return int(outcome["exit_code"])  # rank 0 printed its summary (and --json document) itself
    if len(received) > 1:
        reason = "killed by a second signal before the ranks had stopped"
    else:
        reason = (f"the torchrun group ended (exit code {rc}) before rank 0 reported an outcome: a rank failed or "
                  "was killed; its messages are above")
    run_dir = outcome.get("run_dir")
    step = record_end(Path(run_dir), reason) if run_dir else 0
    if as_json:
        print(json.dumps(describe_outcome(TrainOutcome(Path(run_dir or ""), "failed", step, {}, reason))))
    print(f"training failed: {reason}", file=sys.stderr)
    if run_dir:
        print(f"run dir: {run_dir}", file=sys.stderr)
    return EXIT_INTERRUPTED if received else EXIT_FAILED


def record_end(run_dir: Path, reason: str) -> int:
    """Append a ``failed`` event to a run that ended without one (nothing else writes it any more); the last
    step it recorded."""
    try:
        run = RunDir.open(run_dir)
        events = run.events()
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    steps = [e.step for e in events if e.type in ("step", "checkpoint")]
    step = max(steps, default=0)
    if not events or events[-1].type not in ("finished", "failed"):
        run.record(Failed(step=step, reason=reason))
        run.close()
    return step


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
