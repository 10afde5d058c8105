"""The app under faults (issue 14 holes 5 and 11, "Measured"): a flood of events, user code that fails, a watched
run with a bad line or a deleted run dir, a folder that is not a run dir, a stdout that is not a terminal."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from recipe_tui.core.config import ConfigError
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Eval, RunStarted, Step
from recipe_tui.core.rundir import RunDir
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.bridge import EventQueue, watch_job, watch_target
from recipe_tui.tui.widgets.checklist import Checklist

from fault_harness import flood, key_latency
from tui_helpers import make_recipes, wait_for

pytestmark = pytest.mark.timeout(120)


async def test_a_flood_keeps_memory_bounded_every_event_on_disk_and_keys_responsive(recipes, tmp_path):
    """Step events as fast as a job can record them (up to 100,000 a second; a tiny model logging every step) for
    2 s, written to a run dir like a training job's: events.jsonl gets every one, the screen's queue never holds
    more than its limit (set low here so that it must fold), and j still moves at once."""
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.home
        await wait_for(pilot, lambda: home.splits is not None, timeout=60, what="the data to load")
        home.queue.limit = 2_000  # the default, 50,000, is more than this box can record in 0.2 s
        run = RunDir.create(tmp_path / "runs", "flood")
        control = RunControl(emit=home.queue.emit).also(run.record)
        sent: list[int] = []
        producer = threading.Thread(target=lambda: sent.append(flood(control.emit, 2.0, run_dir=str(run.path))))
        producer.start()
        checklist = app.query_one(Checklist)
        latencies = []
        while producer.is_alive():
            latencies.append(await key_latency(pilot, checklist.selected, "j" if len(latencies) % 2 else "k"))
            await pilot.pause(0.1)
        producer.join()
        await wait_for(pilot, lambda: home.state.status == "stopped", what="the flood's end on screen")
        run.close()
    lines = (run.path / "events.jsonl").read_text().splitlines()
    assert len(lines) == sent[0] + 2 and json.loads(lines[-1])["type"] == "finished"
    assert home.queue.high_water <= 2_000 + 1  # the run's end is never folded
    folded = home.queue.folded + sum(int(m.split()[0].replace(",", "")) for m in home.run_log.messages()
                                     if "faster than the screen draws" in m)
    assert folded > 0 and len(home.state.series["train_loss"]) + folded == sent[0] == home.state.step
    assert len(latencies) >= 5 and max(latencies) < 1.0, latencies  # generous: benchmarks/faults.py measures
    print(f"flood: {sent[0] / 2:,.0f} events/s, key latency max {max(latencies) * 1000:.0f} ms over {len(latencies)}")


def test_the_queue_folds_only_routine_events_once_full():
    queue = EventQueue(limit=3)
    for step in range(1, 6):
        queue.emit(Step(step=step, loss=1.0, lr=1e-3))
    queue.emit(Eval(step=5, split="val", loss=0.5))
    assert [e.step for e in queue.drain()] == [1, 2, 3, 5] and queue.take_folded() == 2


FAULTY_MODEL = '''
import torch.nn as nn


class Faulty(nn.Module):
    def __init__(self, fault):
        super().__init__()
        if fault == "init":
            raise RuntimeError("init failed on purpose")
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.fault, self.calls = fault, 0

    def forward(self, x):
        self.calls += self.training
        if self.fault == "forward" and self.calls == 20:
            raise ValueError("forward failed on purpose")
        out = self.net(x)
        return out * float("nan") if self.fault == "nan" and self.calls >= 30 else out


def make(fault=""):
    return Faulty(fault)
'''


@pytest.mark.parametrize("fault, cause", [("init", "init failed on purpose"), ("forward", "forward failed on purpose"),
                                          ("nan", "loss became nan")])
async def test_faulty_user_code_is_a_result_and_keys_keep_working(tmp_path, fault, cause):
    path = make_recipes(tmp_path, extra=False)
    path.write_text(path.read_text() + f'\n[recipe.faulty]\ndata = {{ source = "digits" }}\n'
                    f'model = {{ factory = "faulty_model:make", kwargs = {{ fault = "{fault}" }} }}\n'
                    'train = { steps = 200, log_every = 1, batch_size = 16 }\n')
    (tmp_path / "faulty_model.py").write_text(FAULTY_MODEL)
    app = RecipeApp(file=path, recipe="faulty", runs=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        checklist = app.query_one(Checklist)
        await pilot.press("t")
        await wait_for(pilot, lambda: checklist.status("train") == "fail" and app.home.jobs.current is None,
                       what="the fail mark")
        assert cause in " ".join(app.home.run_log.messages())
        assert await key_latency(pilot, checklist.selected) < 1.0  # generous: j moves at once
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")


def test_watch_skips_a_wrongly_typed_line_and_says_when_the_run_dir_is_deleted(tmp_path):
    run = tmp_path / "runs" / "digits-mlp" / "20260101-000000"
    run.mkdir(parents=True)
    good = [RunStarted(run_dir=str(run), recipe="digits-mlp", device="cpu", steps=100).to_json(),
            Step(step=10, loss=1.0, lr=1e-3).to_json(), Step(step=20, loss=0.5, lr=1e-3).to_json()]
    (run / "events.jsonl").write_text("\n".join([good[0], good[1], '{"type":"step","step":15,"loss":"oops","lr":1}',
                                                 good[2]]) + "\n")
    histories, logs, stop = [], [], threading.Event()

    def emit(event):
        if event.type == "log":
            logs.append(event.message)
            if "deleted" in event.message:
                stop.set()

    thread = threading.Thread(target=watch_job, args=(run, RunControl(emit=emit, stop=stop), histories.append, 0.02))
    thread.start()
    while not histories:
        thread.join(0.01)
    state = histories[0]
    assert state.step == 20 and len(state.series["train_loss"]) == 2  # the charts keep the good lines
    shutil.rmtree(run)
    thread.join(10)
    assert not thread.is_alive()
    assert logs[0] == f"skipped 1 unreadable line(s) in {run / 'events.jsonl'}"
    assert logs[1] == f"the run dir {run} was deleted: nothing more to follow"


def test_watch_takes_a_run_dir_or_a_recipes_folder_of_runs_and_refuses_anything_else(tmp_path):
    runs = tmp_path / "runs"
    older, newer = runs / "digits-mlp" / "20260101-000000", runs / "digits-mlp" / "20260102-000000"
    for run in (older, newer):
        run.mkdir(parents=True)
        (run / "events.jsonl").write_text("")
    assert watch_target(older) == (older, "")
    chosen, note = watch_target(runs / "digits-mlp")
    assert chosen == newer and note == f"{runs / 'digits-mlp'} holds 2 run(s); watching the newest, {newer}"
    with pytest.raises(ConfigError, match="holds the runs of digits-mlp: watch one of them"):
        watch_target(runs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is not a run directory"):
        watch_target(tmp_path / "empty")
    app = RecipeApp(watch=runs / "digits-mlp", runs=runs)
    assert app.home.run_dir == newer


def test_the_app_refuses_to_draw_when_stdout_is_not_a_terminal(tmp_path):
    out = subprocess.run([sys.executable, "-m", "recipe_tui.tui.cli", "--runs", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "recipe-tui: the app needs a terminal, but stdin and stdout and stderr are not one: run it in a terminal "
        "(tmux works), or headless with `recipe-tui train` or `check`."]
