"""How many intra-op threads torch uses on the CPU (``train.threads``; 0 = auto).

torch starts with one thread per physical core. For a tiny model every op is too small to split, and on a
busy machine the threads wait for cores that other jobs hold: digits-mlp ran at ~10 steps/s with 2 threads
on a loaded 2-core box, ~700 with one. For a big model the threads pay off. So "auto" times a few real
training steps with 1 thread and with torch's own count, on a copy of the model (the run's weights and
random numbers stay untouched), and keeps the faster, the fewer on a near tie. It is decided once, before
the run starts, never again during it. The thread count changes the order of floating-point sums only:
losses differ in the last bits, no more (tests/core/test_threads.py).
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

# torch's own count (cores, or OMP_NUM_THREADS) before any run here changed it: the "N" that auto tries.
PROCESS_DEFAULT = torch.get_num_threads()
ROUNDS = 3  # timed rounds per count, alternating the order of the counts
MIN_TIMED_S = 0.005  # a timing covers at least this long (a tiny model's step is ~0.5 ms) …
MAX_TIMED_STEPS = 16  # … or this many steps
BUDGET_S = 2.0  # the rounds stop after this long; a count whose one step takes a quarter of it is kept untimed
NEAR_TIE = 1.05  # fewer threads unless more are at least 5 % faster: they leave cores to the app and other jobs


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    how: str  # "recipe" (train.threads), "auto" (timed), "resumed" (the checkpoint's count), "default" (torch's)
    ms_per_step: dict[int, float] = field(default_factory=dict)  # auto: the timings it chose by
    note: str = ""  # why auto did not time

    def describe(self) -> str:
        """e.g. ``torch threads: 1 (auto: 1 thread 0.52 ms/step, 2 threads 11.3 ms/step)``."""
        what = {"recipe": "train.threads", "resumed": "as the checkpoint's run", "default": "torch's default"}
        if self.how == "auto":
            timings = ", ".join(f"{n} thread{'s' if n > 1 else ''} {_ms(ms)} ms/step" for n, ms in self.ms_per_step.items())
            detail = "auto: " + "; ".join(part for part in (timings, self.note) if part)
        else:
            detail = what[self.how]
        return f"torch threads: {self.threads} ({detail})"


def candidates() -> list[int]:
    """The counts auto compares: one thread and torch's own count."""
    return sorted({1, PROCESS_DEFAULT})


def choose(setting: int, step: Callable[[], Any] | None, options: Sequence[int] | None = None,
           budget_s: float = BUDGET_S) -> ThreadChoice:
    """Set torch's thread count: ``setting`` when > 0; else (auto) the faster of ``options`` (default
    ``candidates()``) for ``step``, one training step on a copy (``scratch_step``). ``step`` None: nothing to time
    (not on the CPU, or under torchrun, which gives each process its share): torch's count stays."""
    if setting > 0:
        torch.set_num_threads(setting)
        return ThreadChoice(setting, "recipe")
    options = sorted(set(options or candidates()))
    if step is None or len(options) == 1:
        if len(options) == 1 and step is not None:
            torch.set_num_threads(options[0])
        return ThreadChoice(torch.get_num_threads(), "default")
    from .data.rng import preserved
    with preserved():  # dropout or augmentation in the timed steps must not move the run's random numbers
        timings, note = time_counts(step, options, budget_s)
    fastest = min(timings.values())
    best = min(n for n, t in timings.items() if t <= fastest * NEAR_TIE)
    torch.set_num_threads(best)
    return ThreadChoice(best, "auto", {n: t * 1e3 for n, t in sorted(timings.items())}, note)


def time_counts(step: Callable[[], Any], options: Sequence[int], budget_s: float) -> tuple[dict[int, float], str]:
    """Seconds per step with each thread count (median of ``ROUNDS``), and a note when it stopped early."""
    warm = {}
    for n in reversed(options):  # most threads first: a big model shows itself at once
        torch.set_num_threads(n)
        t0 = time.perf_counter()
        step()  # the thread pool starts, buffers are allocated: not timed
        warm[n] = time.perf_counter() - t0
        if warm[n] > budget_s / 4:
            return {n: warm[n]}, "a step takes too long to time every count"
    times: dict[int, list[float]] = {n: [] for n in options}
    deadline = time.perf_counter() + budget_s
    for r in range(ROUNDS):
        for n in (options if r % 2 == 0 else list(reversed(options))):
            torch.set_num_threads(n)
            times[n].append(_per_step(step))
        if time.perf_counter() > deadline:
            break
    return {n: statistics.median(v) for n, v in times.items()}, ""


def _per_step(step: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    count, elapsed = 0, 0.0
    while count < MAX_TIMED_STEPS and (count == 0 or elapsed < MIN_TIMED_S):
        step()
        count += 1
        elapsed = time.perf_counter() - t0
    return elapsed / count


def scratch_step(model: torch.nn.Module, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 optimizer: Callable[[torch.nn.Module], torch.optim.Optimizer], x: torch.Tensor, y: torch.Tensor,
                 autocast: Callable[[], Any] | None = None) -> Callable[[], None] | None:
    """One training step (forward, loss, backward, optimizer step) of a copy of ``model`` on (x, y), for ``choose``
    to time; None when the model cannot be copied (then auto keeps torch's count)."""
    from contextlib import nullcontext

    from .tasks import first_tensor
    try:
        twin = copy.deepcopy(model)
    except Exception:
        return None
    twin.train()
    opt = optimizer(twin)
    context = autocast or nullcontext

    def step() -> None:
        with context():
            out = loss(first_tensor(twin(x)), y)
        out.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def _ms(ms: float) -> str:
    return f"{ms:.3g}"
