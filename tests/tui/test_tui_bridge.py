"""The worker→UI bridge without a UI: the queue, the events.jsonl tail of watch mode, run state, machine load."""
from __future__ import annotations

import threading
import time

import pytest

import psutil

from recipe_tui.core.control import RunControl
from recipe_tui.core.events import Eval, Finished, LogLine, RunStarted, Step
from recipe_tui.tui.bridge import EventQueue, EventTail, watch_job
from recipe_tui.tui.run_state import RunState, replay
from recipe_tui.core.gpu_monitor import GpuStat
from recipe_tui.tui.sysinfo import GiB, SysReading, SysSampler, format_reading

pytestmark = pytest.mark.timeout(60)


def test_queue_keeps_every_event_of_every_producer_in_order():
    q = EventQueue()

    def produce(k: int) -> None:
        for i in range(20_000):
            q.emit((k, i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    got = []
    while any(t.is_alive() for t in threads) or len(q):
        got += q.drain()
    assert len(got) == 80_000
    for k in range(4):
        assert [i for kk, i in got if kk == k] == list(range(20_000))
    q.emit(1)
    q.emit(2)
    q.emit(3)
    assert q.drain(limit=2) == [1, 2] and q.drain() == [3] and q.drain() == []


def test_queue_wakes_the_consumer_once_per_drain_and_never_loses_a_wake_up():
    wakes = []
    q = EventQueue(wake=lambda: wakes.append(len(q)))
    for i in range(1000):  # a flood between two drains: one wake-up, at the first event
        q.emit(i)
    assert wakes == [1]
    assert len(q.drain()) == 1000 and wakes == [1]
    assert q.drain() == [] and wakes == [1]  # nothing emitted: nothing wakes the consumer
    q.emit("a")
    q.emit("b")
    assert wakes == [1, 1]
    # Four producers against a consumer that drains whenever it was woken: every event arrives, and
    # after the last drain nothing is left behind without a wake-up that would fetch it.
    woken = threading.Event()
    q = EventQueue(wake=woken.set)
    threads = [threading.Thread(target=lambda k=k: [q.emit((k, i)) for i in range(20_000)]) for k in range(4)]
    for t in threads:
        t.start()
    got: list = []
    while any(t.is_alive() for t in threads) or woken.is_set():
        if woken.wait(0.01):
            woken.clear()
            got += q.drain()
    assert len(got) == 80_000 and len(q) == 0


def _line(event) -> bytes:
    return (event.to_json() + "\n").encode()


def test_tail_waits_for_a_torn_line_and_skips_garbage(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet: nothing, no error
    step = _line(Step(step=10, loss=2.0, lr=1e-3))
    path.write_bytes(_line(RunStarted(run_dir="r", recipe="x", device="cpu", steps=100)) + step[:15])
    assert [e.type for e in tail.read_new()] == ["run_started"]  # half a line is a write in progress
    with open(path, "ab") as f:
        f.write(step[15:] + b"{garbage}\n")
    events = tail.read_new()
    assert [e.type for e in events] == ["step"] and events[0].loss == 2.0
    assert tail.bad_lines == 1
    path.write_bytes(_line(Step(step=1, loss=3.0, lr=1e-3)))  # replaced by a shorter file: start over
    assert [e.step for e in tail.read_new()] == [1]


def test_watch_job_sends_history_then_follows_until_stopped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(_line(RunStarted(run_dir=str(tmp_path), recipe="x", device="cpu", steps=100))
                     + _line(Step(step=10, loss=2.0, lr=1e-3)))
    q, control, history = EventQueue(), RunControl(), []
    control = control.with_emit(q.emit)
    worker = threading.Thread(target=watch_job, args=(tmp_path, control, history.append, 0.02))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not history and time.monotonic() < deadline:
            time.sleep(0.01)
        assert history[0].step == 10 and history[0].status == "training" and len(q) == 0
        with open(path, "ab") as f:
            f.write(_line(Step(step=20, loss=1.5, lr=1e-3)) + b"not json\n")
        got: list = []
        while len(got) < 2 and time.monotonic() < deadline:
            got += q.drain()
            time.sleep(0.01)
        assert isinstance(got[0], Step) and got[0].step == 20
        assert isinstance(got[1], LogLine) and got[1].level == "warning" and "unreadable" in got[1].message
    finally:
        control.stop.set()
        worker.join(5)
    assert not worker.is_alive() and len(history) == 1


def test_run_state_folds_a_run():
    events = [RunStarted(run_dir="r", recipe="x", device="cpu", steps=100),
              Step(step=10, loss=2.0, lr=1e-3, grad_norm=1.0, steps_per_s=100.0),
              Step(step=20, loss=1.0, lr=1e-3, grad_norm=0.5, steps_per_s=200.0),
              Eval(step=20, split="val", loss=1.2, metrics={"accuracy": 0.5}),
              Eval(step=20, split="test", loss=9.9, metrics={"accuracy": 0.1})]
    state = replay(events)
    assert state.status == "training" and state.step == 20 and state.metric_name == "accuracy"
    lengths = {k: len(s) for k, s in state.series.items()}
    assert lengths == {"train_loss": 2, "train_loss_ema": 2, "val_loss": 1, "metric": 1, "lr": 2, "grad_norm": 2}
    # The smoothed loss: a debiased moving average (β = 0.9), by hand: (0.9 × 0.2 + 0.1 × 1) / (1 − 0.9²).
    assert state.latest["train_loss_ema"] == pytest.approx(0.28 / 0.19)
    assert state.rate == pytest.approx(20 / (10 / 100 + 10 / 200))  # the mean over the first seconds
    assert state.eta_s() == pytest.approx(80 / state.rate)
    state.apply(Finished(status="stopped", step=20))
    assert state.status == "stopped" and state.eta_s() is None
    assert RunState().eta_s() is None


def test_the_eta_is_stable_through_an_evaluation():
    """40 s at 500 steps/s, then 10 steps that took half a second (an evaluation): the ETA grows by about the
    half second, where an instant rate (or a mean of seconds per step) would move it by minutes."""
    state = replay([RunStarted(run_dir="r", recipe="x", device="cpu", steps=100_000),
                    *(Step(step=s, loss=1.0, lr=1e-3, steps_per_s=500.0) for s in range(10, 20_001, 10))])
    before = state.eta_s()
    assert before == pytest.approx(80_000 / 500)
    state.apply(Step(step=20_010, loss=1.0, lr=1e-3, steps_per_s=20.0))
    assert before < state.eta_s() < before + 5
    state.apply(Step(step=20_020, loss=1.0, lr=1e-3, steps_per_s=500.0))
    assert state.rate == pytest.approx(492, abs=2)


def test_sampler_reads_cpu_ram_and_this_process_through_psutil():
    sampler = SysSampler()  # not started: no NVML, so CPU and RAM
    first = sampler.sample()
    assert first.cpu is None  # nothing to compare with yet
    total = psutil.virtual_memory().total
    assert first.ram_total == total and 0 < first.ram_used < total
    ballast = bytearray(64 * 1024 * 1024)  # this process's memory grows by 64 MiB (touched: resident)
    ballast[::4096] = b"x" * len(ballast[::4096])
    time.sleep(0.05)
    second = sampler.sample()
    assert second.cpu is not None and 0.0 <= second.cpu <= 100.0
    # This process's own memory, as the OS reports it now (a growth test is flaky: freed memory is reused).
    assert abs(second.process_rss - psutil.Process().memory_info().rss) < 16 * 1024 * 1024
    assert second.process_rss >= 64 * 1024 * 1024, "the ballast alone is resident"
    del ballast
    assert format_reading(SysReading(cpu=50.0, ram_used=3 * GiB, ram_total=16 * GiB)) == "CPU 50%  RAM 3.0/16.0G"
    assert (format_reading(SysReading(cpu=5.0, ram_used=GiB, ram_total=2 * GiB, process_rss=GiB // 2))
            == "CPU 5%  RAM 1.0/2.0G  proc 0.5G")
    gpus = (GpuStat(0, "A", 87.0, 12 * GiB, 80 * GiB, 64.0, 310.4, 700.0),
            GpuStat(1, "B", None, 0, 80 * GiB, None, None, None))
    assert format_reading(SysReading(gpus=gpus)) == "GPU0 87% 12.0/80G 64°C 310W  GPU1 – 0.0/80G"
    assert format_reading(SysReading(gpus=gpus[:1], process_rss=3 * GiB)) == "GPU0 87% 12.0/80G 64°C 310W  proc 3.0G"
    assert format_reading(SysReading()) == ""


def test_sampler_without_nvidia_driver_falls_back_to_cpu():
    sampler = SysSampler()
    sampler.start()  # must not raise whether or not this machine has a GPU
    reading = sampler.sample()
    assert bool(reading.gpus) == sampler.has_gpu
    if not sampler.has_gpu:
        assert reading.ram_total is None or reading.ram_total > 0
    sampler.close()
    assert not sampler.has_gpu

