"""The worker→UI bridge without a UI: the queue, the events.jsonl tail of watch mode, run state, machine load."""
from __future__ import annotations

import threading
import time

import pytest

from recipe_tui.core.events import Eval, Finished, LogLine, RunStarted, Step
from recipe_tui.tui.bridge import EventQueue, EventTail, HistoryLoaded, watch_job
from recipe_tui.tui.run_state import RunState, replay
from recipe_tui.tui.sysinfo import GiB, GpuReading, SysReading, SysSampler, format_reading

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
    q, stop = EventQueue(), threading.Event()
    worker = threading.Thread(target=watch_job, args=(tmp_path, q.emit, stop, 0.02))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        got: list = []
        while not got and time.monotonic() < deadline:
            got += q.drain()
            time.sleep(0.01)
        assert isinstance(got[0], HistoryLoaded) and got[0].state.step == 10 and got[0].state.status == "training"
        with open(path, "ab") as f:
            f.write(_line(Step(step=20, loss=1.5, lr=1e-3)) + b"not json\n")
        while len(got) < 3 and time.monotonic() < deadline:
            got += q.drain()
            time.sleep(0.01)
        assert isinstance(got[1], Step) and got[1].step == 20
        assert isinstance(got[2], LogLine) and got[2].level == "warning" and "unreadable" in got[2].message
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()


def test_run_state_folds_a_run():
    events = [RunStarted(run_dir="r", recipe="x", device="cpu", steps=100),
              Step(step=10, loss=2.0, lr=1e-3, grad_norm=1.0, steps_per_s=100.0),
              Step(step=20, loss=1.0, lr=1e-3, grad_norm=0.5, steps_per_s=200.0),
              Eval(step=20, split="val", loss=1.2, metrics={"accuracy": 0.5}),
              Eval(step=20, split="test", loss=9.9, metrics={"accuracy": 0.1})]
    state = replay(events)
    assert state.status == "training" and state.step == 20 and state.metric_name == "accuracy"
    lengths = {k: len(s) for k, s in state.series.items()}
    assert lengths == {"train_loss": 2, "val_loss": 1, "metric": 1, "lr": 2, "grad_norm": 2}
    assert state.rate == pytest.approx(130.0)  # smoothed: 0.7 × 100 + 0.3 × 200
    assert state.eta_s() == pytest.approx(80 / 130.0)
    state.apply(Finished(status="stopped", step=20))
    assert state.status == "stopped" and state.eta_s() is None
    assert RunState().eta_s() is None


def test_sampler_reads_cpu_and_ram_from_proc(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal:       16000000 kB\nMemFree: 1 kB\nMemAvailable:    4000000 kB\n")
    (tmp_path / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n")
    sampler = SysSampler(proc=tmp_path)
    first = sampler.sample()
    assert first.cpu is None  # nothing to compare with yet
    assert first.ram_total == 16000000 * 1024 and first.ram_used == 12000000 * 1024
    (tmp_path / "stat").write_text("cpu  175 0 125 900 0 0 0 0 0 0\n")  # +100 busy, +100 idle
    assert sampler.sample().cpu == pytest.approx(50.0)
    assert format_reading(SysReading(cpu=50.0, ram_used=3 * GiB, ram_total=16 * GiB)) == "CPU 50%  RAM 3.0/16.0G"
    gpus = (GpuReading(0, 87.0, 12 * GiB, 80 * GiB), GpuReading(1, None, 0, 80 * GiB))
    assert format_reading(SysReading(gpus=gpus)) == "GPU0 87% 12.0/80G  GPU1 – 0.0/80G"
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

