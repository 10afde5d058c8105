"""Reliability figures (issue 14): what survives kills, bad recipes, faulty user code, quitting and floods.

    python benchmarks/faults.py [--quick] [--only kills,recipes,faulty,quit,flood]

* kills: headless training SIGKILLed at random moments, chained (each resume killed again), after a ctrl+c;
  digits-mlp and names-lm with dropout. Prints kills survived / tried, steps trained again per kill (against the
  checkpoint interval: at most one), damaged files, and whether the losses equal an uninterrupted run's.
* recipes: mutated copies of the shipped recipes.toml (the mutator of tests/core/test_config_strict.py) through
  ``list``, ``check data-stats`` and a 3-step ``train``; mishandled = a traceback, an exit code outside 0/1/2, or
  an exit 2 that is not one line.
* faulty: user code that raises, returns NaN or the wrong shape, allocates too much, a dataset that raises or
  mixes shapes or is empty: the headless exit code and cause, and in the app whether j still moved (latency).
* quit: ``recipe-tui`` in tmux, from the last key (q, or y when it asks) to the process's end: idle, after a
  failed job, during training (checkpoint written), with user code stuck in forward (grace period 5 s).
* flood: Step events at up to 100,000 a second for 10 s into the app's queue, alone and through a run dir like a
  training job's: events/s held against the emitter alone (baseline, same run), events.jsonl complete, the queue's
  high water, key latency against the idle app's (baseline, same run), the process's memory growth.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "core"), str(ROOT / "tests" / "tui")]
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fault_harness import flood, key_latency, kill_loop, losses, overrides  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# ----------------------------------------------------------------------------------------------- kills


def bench_kills(quick: bool) -> None:
    from recipe_tui.core.config import apply_overrides, load_recipes, shipped_recipes_path
    from recipe_tui.core.jobs import run_training

    kills, steps, every = (3, 300, 50) if quick else (8, 800, 50)
    print(f"kills: {kills} chained SIGKILLs at random moments after a ctrl+c, {steps} steps, checkpoint every {every}")
    for recipe, extra in (("digits-mlp", ("model.dropout=0.3",)), ("names-lm", ("model.dropout=0.1",))):
        with tempfile.TemporaryDirectory() as tmp:
            report, run = kill_loop(Path(tmp), recipe, steps, every, kills, seed=11, interrupt_with_sigint=True,
                                    extra=extra)
            exp = apply_overrides(load_recipes(shipped_recipes_path()).experiment(recipe),
                                  tuple(overrides(steps, every, extra)[1::2]))
            reference = losses(run_training(exp, runs_root=Path(tmp) / "reference").run_dir)
            same = losses(run) == reference
        redone = report.redone or [0]
        print(f"  {recipe:<11} kills survived {report.survived}/{report.tried}; steps redone per kill: median "
              f"{statistics.median(redone):.0f}, max {max(redone)} (interval {every}); damaged files "
              f"{len(report.problems)}; losses identical to an uninterrupted run: {'yes' if same else 'NO'}")
        for problem in report.problems:
            print(f"    ! {problem}")


# ----------------------------------------------------------------------------------------------- recipes


def run_main(argv: list[str]) -> tuple[int, str]:
    from recipe_tui.tui.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - anything escaping main is mishandled
            return -1, traceback.format_exc()
    return code, err.getvalue()


def mishandled(code: int, err: str, allowed: tuple[int, ...]) -> bool:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("…")]
    return code not in allowed or "Traceback" in err or (code == 2 and len(lines) != 1)


def bench_recipes(quick: bool) -> None:
    from hypothesis import HealthCheck, given, settings
    from test_config_strict import mutated_recipes

    from recipe_tui.core.config import load_recipes

    examples = 60 if quick else 300
    seen = {"tried": 0, "runs": 0, "refused": 0, "mishandled": 0}
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        path, runs = Path(tmp) / "recipes.toml", str(Path(tmp) / "runs")

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(text=mutated_recipes())
        def one(text: str) -> None:
            seen["tried"] += 1
            path.write_text(text, encoding="utf-8")
            commands = [(["list", "--file", str(path)], (0, 2))]
            code, err = run_main(commands[0][0])
            if code == 0:
                exp = load_recipes(path).experiments.get("digits-mlp")
                if exp is not None and exp.data.source == "digits" and not (exp.data.path or exp.data.factory):
                    common = ["--file", str(path), "--runs", runs, "--recipe", "digits-mlp"]
                    commands += [(["check", *common, "data-stats"], (0, 1, 2)),
                                 (["train", *common, "--set", "train.steps=3"], (0, 1, 2))]
            for argv, allowed in commands:
                code, err = run_main(argv) if argv is not commands[0][0] else (code, err)
                seen["runs"] += 1
                seen["refused"] += code == 2
                if mishandled(code, err, allowed):
                    seen["mishandled"] += 1
                    bad.append(f"{argv[0]}: exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")

        one()
    print(f"recipes: {seen['tried']} mutated recipes files, {seen['runs']} command runs (list, check data-stats, "
          f"train 3 steps): {seen['refused']} refused with exit 2 in one line, {seen['mishandled']} mishandled")
    for line in bad[:10]:
        print(f"  ! {line}")


# ----------------------------------------------------------------------------------------------- faulty code


async def app_case(folder: Path, recipes: Path) -> tuple[str, float]:
    """Train the faulty experiment in the app; (the train item's mark, j's latency once the job ended)."""
    from fault_harness import key_latency as latency
    from tui_helpers import wait_for

    from recipe_tui.tui.app import RecipeApp
    from recipe_tui.tui.widgets.checklist import Checklist

    app = RecipeApp(file=recipes, runs=folder / "app-runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.press("t")
        await wait_for(pilot, lambda: checklist.status("train") in ("fail", "error") and app.home.jobs.current is None,
                       timeout=120, what="the job to end")
        mark = checklist.status("train")
        return mark, await latency(pilot, checklist.selected)


def bench_faulty(quick: bool) -> None:
    from test_faults import FAULTY_CASES, FAULTY_TRAIN, faulty

    cases = [*FAULTY_CASES, ("dataset-length-0", "", "empty = true", "the train split is empty")]
    print("faulty user code: headless exit code and cause; in the app, the train mark and j's latency after it")
    for name, model, data, cause in cases[:3] if quick else cases:
        with tempfile.TemporaryDirectory() as tmp:
            recipes = faulty(Path(tmp), model=model, data=data, train=FAULTY_TRAIN)
            code, err = run_main(["train", "--file", str(recipes), "--runs", str(Path(tmp) / "runs")])
            named = cause in err and "Traceback" not in err
            mark, lag = asyncio.run(app_case(Path(tmp), recipes)) if code != 2 else ("-", 0.0)
        app = f"app mark {mark}, j moved in {ms(lag)}" if code != 2 else "app: refused before training (exit 2)"
        print(f"  {name:<20} exit {code}, cause named: {'yes' if named else 'NO'}; {app}")


# ----------------------------------------------------------------------------------------------- quit times


STUCK = '''
import time
import torch.nn as nn

class Stuck(nn.Module):
    def __init__(self):
        super().__init__()
        self.net, self.calls = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 0
    def forward(self, x):
        self.calls += self.training
        if self.calls >= 40:
            time.sleep(3600)  # a stuck DataLoader worker or collective
        return self.net(x)

def make():
    return Stuck()
'''


def quit_once(scenario: str, folder: Path) -> float:
    """Seconds from the last key to the end of ``recipe-tui`` in a tmux pane."""
    from test_tui_tmux import Tmux
    from tui_helpers import make_recipes

    recipes = make_recipes(folder, steps=500_000, checkpoint_every=1000, extra=False,
                           source="no-such-source" if scenario == "after a failed job" else "digits")
    recipes.write_text(recipes.read_text() + '\n[recipe.stuck]\ndata = { source = "digits" }\n'
                       'model = { factory = "stuck_model:make" }\ntrain = { steps = 100000, log_every = 1 }\n')
    (folder / "stuck_model.py").write_text(STUCK)
    marker = folder / f"exit-{time.monotonic_ns()}"
    recipe = "stuck" if scenario == "user code stuck" else "digits-mlp"
    exe = shlex.quote(str(Path(sys.executable).with_name("recipe-tui")))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)
    tmux = Tmux(env)
    try:
        tmux.run("new-session", "-d", "-s", "app", "-x", "120", "-y", "40",
                 f"cd {shlex.quote(str(folder))} && {exe} --file recipes.toml --recipe {recipe} --runs runs; "
                 f"touch {marker}; sleep 60")
        tmux.wait(lambda s: "q Quit" in s and ("image 1×8×8" in s or "load failed" in s), timeout=90, what="the app")
        keys = ["q"]
        if scenario != "idle":
            tmux.run("send-keys", "-t", "app", "t")
        if scenario == "after a failed job":
            tmux.wait(lambda s: "train failed" in s, what="the failure")
        elif scenario != "idle":
            tmux.wait(lambda s: "/100,000" in s or "/500,000" in s, what="training")
            time.sleep(1.0)
            tmux.run("send-keys", "-t", "app", "q")
            tmux.wait(lambda s: "Stop it and quit?" in s, what="the question")
            keys = ["y"]
        t0 = time.monotonic()
        tmux.run("send-keys", "-t", "app", *keys)
        while not marker.exists():
            if time.monotonic() - t0 > 60:
                raise AssertionError(f"{scenario}: the app did not exit")
            time.sleep(0.005)
        return time.monotonic() - t0
    finally:
        tmux.kill()


def bench_quit(quick: bool) -> None:
    if shutil.which("tmux") is None:
        print("quit: skipped (needs tmux)")
        return
    rounds = 1 if quick else 3
    goals = {"idle": "< 1 s", "after a failed job": "< 1 s", "during training": "< 2 s with the checkpoint",
             "user code stuck": "bounded: 5 s grace"}
    print(f"quit: from the last key to the process's end, recipe-tui in tmux (median of {rounds})")
    for scenario, goal in goals.items():
        times = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                times.append(quit_once(scenario, Path(tmp)))
        print(f"  {scenario:<20} {statistics.median(times):.2f} s (range {min(times):.2f}–{max(times):.2f}; goal {goal})")


# ----------------------------------------------------------------------------------------------- floods


def emitter_alone(seconds: float, record: bool, folder: Path) -> float:
    """Events/s of the emitter without the app (the baseline): into a plain list, or through a run dir."""
    from recipe_tui.core.control import RunControl
    from recipe_tui.core.rundir import RunDir

    sink: list = []
    control = RunControl(emit=sink.append)
    run = RunDir.create(folder / "baseline", "flood") if record else None
    if run is not None:
        control = control.also(run.record)
    n = flood(control.emit, seconds)
    if run is not None:
        run.close()
    return n / seconds


async def flood_in_app(seconds: float, record: bool, folder: Path) -> dict:
    import psutil
    from tui_helpers import make_recipes, wait_for

    from recipe_tui.core.control import RunControl
    from recipe_tui.core.rundir import RunDir
    from recipe_tui.tui.app import RecipeApp
    from recipe_tui.tui.widgets.checklist import Checklist

    app = RecipeApp(file=make_recipes(folder, extra=False), runs=folder / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, timeout=120, what="the data")
        checklist = app.query_one(Checklist)
        idle = [await key_latency(pilot, checklist.selected, k) for k in "jkjkjk"]
        run = RunDir.create(folder / "runs", "flood") if record else None
        control = RunControl(emit=home.queue.emit)
        control = control.also(run.record) if run is not None else control
        rss0, sent, lags = psutil.Process().memory_info().rss, [], []
        producer = threading.Thread(target=lambda: sent.append(flood(control.emit, seconds)))
        producer.start()
        while producer.is_alive():
            lags.append(await key_latency(pilot, checklist.selected, "jk"[len(lags) % 2]))
            await pilot.pause(0.2)
        rss1 = psutil.Process().memory_info().rss
        await wait_for(pilot, lambda: home.state.status == "stopped", timeout=60, what="the flood's end")
        lines = 0
        if run is not None:
            run.close()
            lines = (run.path / "events.jsonl").read_bytes().count(b"\n")
    return {"rate": sent[0] / seconds, "sent": sent[0], "lines": lines, "high": home.queue.high_water,
            "charted": len(home.state.series["train_loss"]),
            "limit": home.queue.limit, "idle": statistics.median(idle), "lags": lags, "rss": (rss1 - rss0) / 2**20}


def bench_flood(quick: bool) -> None:
    seconds = 3.0 if quick else 10.0
    print(f"flood: Step events at up to 100,000/s for {seconds:g} s into the app (key latency: j/k every 0.2 s)")
    for record in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            base = emitter_alone(seconds, record, Path(tmp))
            r = asyncio.run(flood_in_app(seconds, record, Path(tmp)))
        where = "through a run dir (events.jsonl + metrics.csv)" if record else "queue only (no run dir)"
        disk = f"; events.jsonl lines {r['lines']:,} of {r['sent'] + 2:,}" if record else ""
        print(f"  {where}: {r['rate']:,.0f} events/s held = {r['rate'] / base:.2f} × the emitter alone "
              f"({base:,.0f}/s){disk}; on the charts {r['charted'] / r['sent']:.0%} (folded for the screen: "
              f"{r['sent'] - r['charted']:,}); queue high water {r['high']:,} (limit {r['limit']:,}); memory "
              f"{r['rss']:+.0f} MiB")
        print(f"    key latency median {ms(statistics.median(r['lags']))}, max {ms(max(r['lags']))} over "
              f"{len(r['lags'])} presses; idle app {ms(r['idle'])} (ratio {statistics.median(r['lags']) / r['idle']:.1f})")


BENCHES = {"kills": bench_kills, "recipes": bench_recipes, "faulty": bench_faulty, "quit": bench_quit,
           "flood": bench_flood}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer kills, recipes and rounds")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES))
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    for name in args.only.split(","):
        t0 = time.monotonic()
        BENCHES[name](args.quick)
        print(f"  ({name}: {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
