"""Training in processes of their own from the app (issue 12, the app half): ``train.nproc = 2`` starts torchrun
(gloo, CPU) as a child, followed like ``watch`` and steered through the run's control file; the quit question's
detach leaves it running, and a second app re-attaches to it; ``T`` does the same for one process; no process is
left behind."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import psutil
import pytest

from recipe_tui.core.launcher import kill_tree
from recipe_tui.core.rundir import read_events
from recipe_tui.core.runsummary import read_summary
from recipe_tui.tui import child_run
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.sysinfo import SysSampler, format_reading
from recipe_tui.tui.widgets.quit_screen import QuitScreen

from tui_helpers import app_process, make_recipes, screen_text, signal_after_checkpoint, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def no_orphans(tmp_path):
    """Whatever happens in a test, the training processes it started end with it."""
    yield
    for p in leftovers(tmp_path / "runs"):
        kill_tree(p.pid)


def leftovers(runs: Path) -> list[psutil.Process]:
    """Processes still running that were started for this test's runs folder (it is in their command line)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        if str(runs.resolve()) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def logged(app: RecipeApp, text: str) -> bool:
    return any(text in m for m in app.home.run_log.messages())


async def quit_answering(pilot, app: RecipeApp, key: str) -> None:
    """q while a run in processes of its own is going: the question offers to detach; answer ``key``."""
    await pilot.press("q")
    assert isinstance(app.screen, QuitScreen) and "Detach (d)" in screen_text(app)
    await pilot.press(key)
    await wait_for(pilot, lambda: app.return_code is not None, timeout=15, what="the app to exit")


async def test_two_processes_from_the_app_paused_detached_then_reattached_and_stopped(tmp_path):
    recipes = make_recipes(tmp_path, steps=1_000_000, extra=False, train_extra="nproc = 2")
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: app.home.state.step >= 20, timeout=90, what="steps from the torchrun group")
        child = app.home.apart
        run = child.run_dir
        assert child.popen is not None and run is not None and app.home.state.run_dir == str(run)
        started = next(e for e in read_events(run / "events.jsonl") if e.type == "run_started")
        assert started.world_size == 2
        assert (run / "output.log").is_file() and not list(runs.glob("digits-mlp/train-*.log")), "output moved in"
        assert logged(app, "training in 2 processes (torchrun)")
        await wait_for(pilot, lambda: app.home.status.reading.tree, what="the status line to follow the group")
        assert app.home.sampler.pid == child.popen.pid and " run " in app.home.status.compose_text(app.home.state).plain
        await pilot.press("p")
        await wait_for(pilot, lambda: logged(app, "paused at step"), what="the group to pause (control file)")
        await quit_answering(pilot, app, "d")
    line, = app.exit_lines
    assert "goes on in processes of its own; paused" in line and "re-attaches" in line
    writer = read_summary(run)["pid"]
    assert psutil.pid_exists(writer) and child.popen.poll() is None, "the run outlives the app"

    app2 = RecipeApp(file=recipes, runs=runs)  # the app opened again
    async with app2.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: logged(app2, "re-attached to"), timeout=30, what="the second app to re-attach")
        assert app2.home.apart.pid == writer and app2.home.state.status == "paused", "left paused, shown paused"
        assert app2.home.apart.top == child.popen.pid, "its processes, from rank 0 up through torchrun"
        await pilot.press("p")
        await wait_for(pilot, lambda: logged(app2, "resumed at step"), what="the group to resume")
        at = app2.home.state.step
        await wait_for(pilot, lambda: app2.home.state.step >= at + 20, timeout=30, what="steps after re-attaching")
        await pilot.press("s")
        await wait_for(pilot, lambda: app2.home.jobs.current is None, timeout=60, what="the run to stop")
        assert app2.home.state.status == "stopped"
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert events[-2].type == "checkpoint" and events[-2].step == events[-1].step and (run / "checkpoint.pt").is_file()
    assert read_summary(run)["status"] == "stopped"
    assert child.popen.wait(timeout=60) == 130, "the launcher reports the stop"
    assert leftovers(runs) == []


async def test_T_trains_in_a_process_of_its_own_and_stop_and_quit_writes_a_checkpoint(tmp_path):
    recipes = make_recipes(tmp_path, steps=1_000_000, extra=False)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("T")
        await wait_for(pilot, lambda: app.home.state.step >= 20, timeout=60, what="steps from the child")
        child = app.home.apart
        assert child.popen is not None and read_summary(child.run_dir)["pid"] == child.popen.pid
        assert logged(app, "training in a process of its own")
        await quit_answering(pilot, app, "y")
    events = list(read_events(child.run_dir / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert events[-2].type == "checkpoint" and events[-2].step == events[-1].step
    line, = app.exit_lines
    assert f"stopped at step {events[-1].step:,}" in line and "recipe-tui train --resume" in line
    assert child.popen.wait(timeout=30) == 130 and leftovers(runs) == []


async def test_a_child_killed_mid_run_is_shown_interrupted(tmp_path):
    recipes = make_recipes(tmp_path, steps=1_000_000, extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("T")
        await wait_for(pilot, lambda: app.home.state.step >= 20, timeout=60, what="steps from the child")
        app.home.apart.popen.kill()  # as the OOM killer would
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=30, what="the job to end")
        assert app.home.state.status == "interrupted" and app.home.sampler.pid is None
        assert logged(app, "(exit code -9) without recording how the run ended")


async def test_a_child_that_fails_before_its_run_starts_says_why(tmp_path):
    recipes = make_recipes(tmp_path, source="no-such-source", extra=False)
    runs = tmp_path / "runs"
    app = RecipeApp(file=recipes, runs=runs)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("T")
        await wait_for(pilot, lambda: app.home.jobs.current is None, timeout=60, what="the child to fail")
        assert app.home.state.status == "failed" and app.home.apart is None
        message = next(m for m in app.home.run_log.messages() if m.startswith("train failed"))
    log, = runs.glob("digits-mlp/train-*.log")  # no run dir: the output stays in the runs folder
    assert "exit code 2" in message and "no-such-source" in message and str(log) in message


def test_live_runs_are_found_by_the_pid_and_host_in_their_summary(tmp_path):
    parent = tmp_path / "digits-mlp"
    me = psutil.Process()
    gone = psutil.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    cases = {"live": {"pid": me.pid}, "dead": {"pid": gone.pid}, "elsewhere": {"pid": me.pid, "host": "other-box"},
             "done": {"pid": me.pid, "status": "completed"}, "capacity": {"pid": me.pid, "tag": {"kind": "capacity"}}}
    for name, fields in cases.items():
        (parent / name).mkdir(parents=True)
        s = {"version": 1, "status": "running", "tag": {}, "started": time.time(), "host": socket.gethostname(),
             **fields}
        (parent / name / "summary.json").write_text(json.dumps(s))
    (found, summary), = child_run.find_live(tmp_path, "digits-mlp")
    assert found.name == "live" and summary["pid"] == me.pid
    child = child_run.ChildRun.found(found, summary)
    assert child.attached and child.pid == me.pid and child.top == me.pid, "pytest's parent is not a launcher"
    assert child.asked() == "run" and not child.ended()
    child.ask("pause")
    assert (found / "control").read_text() == "pause\n" and child.asked() == "pause"
    assert child_run.find_live(tmp_path, "no-such-recipe") == []


def test_the_top_of_a_run_is_found_through_its_launchers():
    assert child_run._launches_training(["python", "-m", "torch.distributed.run", "--standalone"])
    assert child_run._launches_training(["python", "-m", "recipe_tui.tui.cli", "train", "--nproc", "2"])
    assert child_run._launches_training(["/venv/bin/python", "/venv/bin/recipe-tui", "train"])
    assert not child_run._launches_training(["/venv/bin/python", "/venv/bin/recipe-tui"]), "the app itself"
    assert not child_run._launches_training(["bash"])


# ----------------------------------------------------------------------------- the status line's readings


def fake_nvml(gpu_pids: dict[int, int]) -> types.ModuleType:
    """pynvml as the monitor calls it: two 80 GB cards; ``gpu_pids`` {pid: bytes} run on the first."""
    nv = types.ModuleType("pynvml")
    nv.NVML_TEMPERATURE_GPU = 0
    nv.nvmlInit = nv.nvmlShutdown = lambda: None
    nv.nvmlDeviceGetCount = lambda: 2
    nv.nvmlDeviceGetHandleByIndex = lambda i: i
    nv.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=[97, 3][h])
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=[40, 1][h] * 2**30, total=80 * 2**30)
    nv.nvmlDeviceGetName = lambda h: "NVIDIA H100"
    nv.nvmlDeviceGetTemperature = lambda h, sensor: [71, 35][h]
    nv.nvmlDeviceGetPowerUsage = lambda h: [612_400, 70_000][h]
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=p, usedGpuMemory=b)
                                                         for p, b in gpu_pids.items()] if h == 0 else []
    return nv


def test_status_line_reads_each_gpu_and_a_child_runs_process_tree(monkeypatch):
    # A run in processes of its own: a launcher (sh) and, under it, the "rank" that holds GPU memory.
    proc = psutil.Popen(["sh", "-c", f"{sys.executable} -c 'import time; time.sleep(60)'; :"])
    try:
        wait_until = time.monotonic() + 30
        while not proc.children() and time.monotonic() < wait_until:
            time.sleep(0.02)
        rank, = proc.children()
        monkeypatch.setitem(sys.modules, "pynvml", fake_nvml({rank.pid: 3 * 2**30, 1: 5 * 2**30}))
        sampler = SysSampler()
        sampler.start()
        assert sampler.has_gpu
        app_only = sampler.sample()
        sampler.follow(proc.pid)
        tree = sampler.sample()
        expected = proc.memory_info().rss + rank.memory_info().rss
    finally:
        proc.kill()
        kill_tree(proc.pid)
        proc.wait()
    sampler.close()
    g0, g1 = tree.gpus
    assert (g0.util, g0.temperature, g0.power) == (97.0, 71.0, 612.4)
    assert g0.process_mem == 3 * 2**30, "the rank's GPU memory, not pid 1's"
    assert app_only.gpus[0].process_mem is None and not app_only.tree, "the app's own process holds no GPU memory"
    assert tree.tree and abs(tree.process_rss - expected) < 8 * 2**20
    text = format_reading(tree)
    assert text.startswith("GPU0 97% 40.0/80G 71°C 612W  GPU1 3% 1.0/80G 35°C 70W  run ")
    assert text.endswith(" +3.0G GPU")
    assert format_reading(app_only).split("  ")[-1].startswith("proc ")


def test_status_line_without_nvml_shows_cpu_ram_and_the_runs_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no nvidia-ml-py, as on this machine
    sampler = SysSampler()
    sampler.start()
    assert not sampler.has_gpu
    sampler.sample()  # primes the CPU percentage
    sampler.follow(2**22 + 4321)  # a run whose processes are gone
    gone = sampler.sample()
    sampler.follow(None)
    mine = sampler.sample()
    assert gone.gpus == () and gone.process_rss is None and gone.cpu is not None and gone.ram_total
    assert mine.process_rss and abs(mine.process_rss - psutil.Process().memory_info().rss) < 16 * 2**20
    assert format_reading(mine).startswith("CPU ") and " proc " in format_reading(mine)


def test_the_app_takes_set_overrides_for_the_experiment_it_opens(tmp_path):
    recipes = make_recipes(tmp_path, extra=False)
    app = RecipeApp(file=recipes, runs=tmp_path / "runs", overrides=("train.nproc=2",))
    assert app.exp.train.nproc == 2 and app.home.overrides == ("train.nproc=2",)
    assert child_run.ChildRun.new(recipes, tmp_path, "digits-mlp", ("train.nproc=2",)).command[-2:] == \
        ["--set", "train.nproc=2"], "the child trains what the app opened"
    cli = [sys.executable, "-m", "recipe_tui.tui.cli", "--file", str(recipes)]
    bad = subprocess.run(cli + ["--set", "train.nproc=0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "train.nproc" in bad.stderr and "Traceback" not in bad.stderr
    misplaced = subprocess.run(cli + ["--set", "train.lr=1", "list"], capture_output=True, text=True, timeout=60)
    assert misplaced.returncode == 2 and "recipe-tui list --set train.lr=1" in misplaced.stderr


@pytest.mark.slow
def test_sighup_leaves_a_run_in_processes_of_its_own_going(tmp_path):
    recipes = make_recipes(tmp_path, steps=1_000_000, checkpoint_every=100, extra=False)
    runs = tmp_path / "runs"
    proc = app_process(tmp_path, recipes, runs, "T")
    out, err = signal_after_checkpoint(proc, runs, signal.SIGHUP)
    assert proc.returncode == 130, err
    run, = runs.glob("digits-mlp/2*")
    assert "goes on in processes of its own" in out and str(run) in out
    writer = psutil.Process(read_summary(run)["pid"])
    size = (run / "events.jsonl").stat().st_size
    deadline = time.monotonic() + 30
    while (run / "events.jsonl").stat().st_size == size and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (run / "events.jsonl").stat().st_size > size, "it goes on training after the app has gone"
    (run / "control").write_text("stop\n")  # what anyone (or the app, re-attached) does to stop it
    writer.wait(timeout=60)  # not our child: its exit code is its parent's (gone) business
    events = list(read_events(run / "events.jsonl"))
    assert events[-1].type == "finished" and events[-1].status == "stopped"
    assert leftovers(runs) == []
