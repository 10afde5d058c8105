"""Training throughput with the app open (charts live) against headless training, same process.

    python benchmarks/tui_overhead.py [--steps 12000] [--rounds 7] [--size 160x50]

The default recipe (digits-mlp) is trained for a fixed number of steps, in rounds: headless
(``run_training`` with no UI, in the calling thread and in a worker thread) and inside the app, the order
reversed every other round, (``App.run_test`` — the headless Textual driver: the
app composes, drains the queue, rebuilds the charts and renders frames; only the terminal write is
skipped), so both see the same machine load. Steps/s is measured between the RunStarted and Finished
events, i.e. the training loop only (imports, data and model building excluded).

Runs last ~10 s (12,000 steps at ~1,200 steps/s on 2 cores): the app's one-off work when a run starts (the first
log line's layout pass, the chart process's first answer: ~60 ms) is a real but fixed cost, which a 3-s run would
count as 2 % of the throughput; watched runs last minutes.

Budget (DESIGN.md): with the app open ≥ 0.97 × headless throughput. Prints the median ratio, the UI thread's CPU
time as a share of the training time, and the charts' refresh rate during training (the loss chart's redraws a
second from the first step's event to the end).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def recipes_file(folder: Path, steps: int) -> Path:
    """The shipped recipes with the first experiment's step count replaced."""
    from recipe_tui.core.config import shipped_recipes_path

    text = shipped_recipes_path().read_text()
    text = text.replace("steps = 1500, seed = 1337, eval_every = 100 }",
                        f"steps = {steps}, seed = 1337, eval_every = 100, checkpoint_every = {steps * 2} }}", 1)
    path = folder / "recipes.toml"
    path.write_text(text)
    return path


class Clock:
    """An emit that notes when the training loop started, first logged a step, and ended; ``probe`` (a callable
    returning numbers) is read at those moments too, from the trainer's thread: the app's side is measured over
    exactly the training loop, however late the UI thread gets to look."""

    def __init__(self, inner=None, probe=None) -> None:
        self.inner, self.probe = inner, probe
        self.t0 = self.t1 = self.t_data = None
        self.at: dict[str, tuple[float, ...]] = {}  # "start", "data", "end" → probe()
        self.steps = 0
        self.start_step = 0
        self.done = threading.Event()

    def __call__(self, event) -> None:
        if event.type == "run_started":
            self.t0, self.start_step = time.perf_counter(), event.start_step
            self._note("start")
        elif event.type == "step" and self.t_data is None:
            self.t_data = time.perf_counter()  # the charts have something to draw from here on
            self._note("data")
        elif event.type in ("finished", "failed"):
            self.t1, self.steps = time.perf_counter(), event.step
            self._note("end")
            self.done.set()
        if self.inner is not None:
            self.inner(event)

    def _note(self, moment: str) -> None:
        if self.probe is not None:
            self.at[moment] = self.probe()

    @property
    def rate(self) -> float:
        return (self.steps - self.start_step) / (self.t1 - self.t0)


def headless(file: Path, runs: Path, in_thread: bool = False) -> float:
    """``recipe-tui train``'s loop; ``in_thread``: in a worker thread, as the app runs it, with no UI."""
    from recipe_tui.core.config import load_recipes
    from recipe_tui.core.control import RunControl
    from recipe_tui.core.jobs import run_training

    clock = Clock()
    job = lambda: run_training(load_recipes(file).experiment(None), RunControl(emit=clock), runs_root=runs)  # noqa: E731
    if in_thread:
        worker = threading.Thread(target=job)
        worker.start()
        worker.join()
    else:
        job()
    return clock.rate


async def with_app(file: Path, runs: Path, size: tuple[int, int]) -> tuple[float, int, float, float, float]:
    """Steps/s with the app open, chart builds, the UI thread's CPU time as a share of the training wall
    time (the part of the GIL the UI can take from the trainer), event-queue drains per second, and the loss
    chart's redraws per second from the first step's event to the end (the charts' refresh rate during training)."""
    from recipe_tui.tui.app import RecipeApp

    app = RecipeApp(file=file, runs=runs)
    async with app.run_test(size=size) as pilot:
        home = app.home
        while home.splits is None:  # the background load (history, registry, data) is not measured
            await asyncio.sleep(0.05)
        ui_clock = time.pthread_getcpuclockid(threading.get_ident())  # this coroutine runs on the UI thread
        charts = home.charts

        def probe() -> tuple[float, ...]:  # read from the trainer's thread: plain reads, no UI work
            return time.clock_gettime(ui_clock), charts.loss.builds, charts.builds, home.drains

        clock = Clock(home.queue.emit, probe)
        home.queue.emit = clock  # the trainer's emit goes through the clock, then into the screen's queue
        await pilot.press("t")
        # Wait in another thread: polling here would wake the UI thread far more often than the app does.
        await asyncio.get_running_loop().run_in_executor(None, clock.done.wait)
        (cpu0, _, builds0, drains0), (cpu1, loss1, builds1, drains1) = clock.at["start"], clock.at["end"]
        wall = clock.t1 - clock.t0
        ui_share, builds, drains = (cpu1 - cpu0) / wall, builds1 - builds0, (drains1 - drains0) / wall
        data = clock.at.get("data", clock.at["start"])
        refresh = (loss1 - data[1]) / (clock.t1 - (clock.t_data or clock.t0))
        await pilot.press("q")
    return clock.rate, builds, ui_share, drains, refresh


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", default="160x50", help="terminal size of the app, WxH")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        file = recipes_file(folder, args.steps)
        headless(file, folder / "warmup")  # first-run costs (imports, allocator) out of the comparison
        ratios, thread_ratios, shares, refreshes = [], [], [], []
        for r in range(args.rounds):
            # The order alternates (headless first, then the app first): a load that rises or falls over a round
            # favours neither side.
            if r % 2 == 0:
                base = headless(file, folder / f"h{r}")
                threaded = headless(file, folder / f"t{r}", in_thread=True)
            live, builds, ui, drains, refresh = asyncio.run(with_app(file, folder / f"a{r}", size))
            if r % 2 == 1:
                threaded = headless(file, folder / f"t{r}", in_thread=True)
                base = headless(file, folder / f"h{r}")
            ratios.append(live / base)
            thread_ratios.append(live / threaded)
            shares.append(ui)
            refreshes.append(refresh)
            print(f"round {r + 1}: headless {base:,.0f} · headless in a thread {threaded:,.0f} · app open {live:,.0f} "
                  f"steps/s ({builds} chart builds, loss chart {refresh:.2f} redraws/s, {drains:.1f} drains/s, "
                  f"UI thread busy {ui:.1%}) · ratio {live / base:.3f}", flush=True)
    ratio = statistics.median(ratios)
    print(f"throughput with the app open / headless: {ratio:.3f} (median of {args.rounds}; budget ≥ 0.97) "
          f"{'OK' if ratio >= 0.97 else 'OVER BUDGET'}")
    print(f"  of which the UI (app open / the same loop in a worker thread without UI): "
          f"{statistics.median(thread_ratios):.3f}; UI thread CPU during training {statistics.median(shares):.1%} "
          f"of the wall time; loss chart {statistics.median(refreshes):.2f} redraws/s during training; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
