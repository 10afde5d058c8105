"""``python -m recipe_tui.tui.side_checks``: checks in a process of their own, which the app starts to run the
stage-1 data checks beside training (``bridge.check_process``).

A process, not a thread: torch's global random generator is one per process, and checks seed and draw from it
(every check starts from the training seed), so in a thread of the app they would change what the training run
draws next. Here they also get their own GIL, one intra-op thread and a lower priority (nice +10), so training
keeps the CPU it had. No Textual import: it starts as fast as torch allows.

Protocol: one JSON line on stdin, ``{"experiment": Experiment.to_dict(), "checks": [ids], "runs": dir}``; every
event as one JSON line on stdout (``Event.to_json``). stdin closing (the app stopped the job, or exited) stops
the checks at their next step.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

NICE = 10


def _stop_when_stdin_closes(stop: threading.Event) -> None:
    for _ in sys.stdin:
        pass
    stop.set()


def _emit(event: Any) -> None:
    sys.stdout.write(event.to_json() + "\n")
    sys.stdout.flush()


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    stop = threading.Event()
    threading.Thread(target=_stop_when_stdin_closes, args=(stop,), daemon=True).start()
    try:
        nice = os.nice(NICE) if hasattr(os, "nice") else 0
    except OSError:
        nice = 0
    import torch

    from recipe_tui.core.checks import CheckContext, run_checks
    from recipe_tui.core.config import experiment_from_dict
    from recipe_tui.core.control import RunControl
    from recipe_tui.core.events import LogLine

    torch.set_num_threads(1)
    _emit(LogLine(f"data checks in process {os.getpid()} (nice {nice}, 1 thread): the training run's random "
                  "numbers and CPU stay its own"))
    try:
        exp = experiment_from_dict(spec["experiment"])
        ctx = CheckContext(exp=exp, control=RunControl(emit=_emit, stop=stop), runs_root=spec["runs"])
        run_checks(list(spec["checks"]), ctx)
    except Exception as exc:  # the data failed to load, or bad config: one line, the app marks the items
        _emit(LogLine(f"data checks: {type(exc).__name__}: {exc}", level="error"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
