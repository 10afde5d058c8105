"""The GPU options decide correctly and are no-ops on the CPU; the NVML/psutil monitor reads what there is and
never raises without a GPU; checks run on the recipe's device. (No GPU here: the CUDA paths themselves run in
benchmarks/gpu_check.sh on a CUDA machine.)"""
import os
import sys
import types

import pytest
import torch
import torch.nn as nn

from recipe_tui.core.checks import CheckContext
from recipe_tui.core.config import TrainConfig, load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import Step
from recipe_tui.core.gpu_monitor import GpuMonitor, format_reading, process_memory, read_once
from recipe_tui.core.gpu_options import Placement, ignored_options
from recipe_tui.core.models import build_model
from recipe_tui.core.trainer import Trainer, seed_everything

CNN = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(10))
MLP = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def test_options_apply_on_cuda_only_and_channels_last_to_convnets_only():
    cfg = TrainConfig()
    assert (cfg.pin_memory, cfg.channels_last, cfg.compile, cfg.nproc) == (True, True, False, 1)
    assert Placement.for_run(CNN, torch.device("cpu"), TrainConfig(compile=True)) == Placement(torch.device("cpu"))
    cuda = torch.device("cuda", 0)  # a device object only: nothing is allocated
    assert Placement.for_run(CNN, cuda, cfg) == Placement(cuda, pin_memory=True, channels_last=True, compile=False)
    assert not Placement.for_run(MLP, cuda, cfg).channels_last, "no Conv2d: nothing to gain"
    off = TrainConfig(pin_memory=False, channels_last=False, compile=True)
    assert Placement.for_run(CNN, cuda, off) == Placement(cuda, pin_memory=False, channels_last=False, compile=True)
    assert ignored_options(TrainConfig(compile=True), torch.device("cpu")) == \
        ["train.compile is for CUDA GPUs: ignored on cpu."]
    assert ignored_options(TrainConfig(compile=True), cuda) == [] and ignored_options(cfg, torch.device("cpu")) == []


def test_channels_last_reformats_only_4d_float_inputs():
    place = Placement(torch.device("cpu"), channels_last=True)
    x = torch.randn(2, 3, 8, 8)
    assert place.inputs(x).is_contiguous(memory_format=torch.channels_last) and torch.equal(place.inputs(x), x)
    tokens = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    assert place.inputs(tokens) is tokens and place.inputs(torch.randn(2, 5)).dim() == 2
    cpu = Placement(torch.device("cpu"), pin_memory=True)
    y = torch.zeros(2)
    assert cpu.batch(x, y)[0] is x, "the CPU copies nothing and pins nothing"


@pytest.mark.timeout(120)
def test_gpu_options_leave_a_cpu_run_unchanged():
    exp = load_recipes(shipped_recipes_path()).experiment("digits-cnn")
    splits = load_data(exp)

    def run(**opts):
        cfg = exp.replace("train", steps=12, log_every=4, **opts).train
        seed_everything(cfg.seed)
        events = []
        Trainer(build_model(exp, splits.info), exp.task, splits.train, None, cfg, RunControl(emit=events.append),
                device=torch.device("cpu")).fit()
        return [e.loss for e in events if isinstance(e, Step)]

    on = run(pin_memory=True, channels_last=True, compile=True)
    assert len(on) == 4 and on == run(pin_memory=False, channels_last=False, compile=False)  # steps 1, 4, 8, 12


def test_check_context_runs_on_the_recipes_device():
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    assert CheckContext(exp.replace("train", device="cpu")).device == torch.device("cpu")
    assert CheckContext(exp.replace("train", device="cuda:1")).device == torch.device("cuda", 1)
    assert CheckContext(exp.replace("train", device="cuda:1"), device_name="cpu").device == torch.device("cpu")


# ----------------------------------------------------------------------------- NVML / psutil


def test_monitor_without_a_gpu_reads_no_gpus_and_this_process_memory(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as on a machine without nvidia-ml-py
    monitor = GpuMonitor()
    assert monitor.start() is False
    r = monitor.read()
    assert r.gpus == () and r.pid == os.getpid() and r.process_rss > 10 * 2**20  # torch alone is more
    monitor.close()
    assert read_once().gpus == () or os.path.exists("/dev/nvidiactl"), "no GPUs where there is no driver"
    assert process_memory(children=True) >= process_memory() > 0
    assert process_memory(pid=2**22 + 12345) == 0, "a process that is gone is 0, not an error"
    assert format_reading(r).startswith("proc ")


def _fake_nvml(pid: int) -> types.ModuleType:
    """The pynvml calls the monitor makes, answering like an 80 GB card; utilisation unsupported (MIG)."""
    nv = types.ModuleType("pynvml")
    nv.NVML_TEMPERATURE_GPU = 0
    nv.nvmlInit = nv.nvmlShutdown = lambda: None
    nv.nvmlDeviceGetCount = lambda: 1
    nv.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"

    def unsupported(h):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
    nv.nvmlDeviceGetUtilizationRates = unsupported
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=12 * 2**30, total=80 * 2**30)
    nv.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    nv.nvmlDeviceGetTemperature = lambda h, sensor: 64
    nv.nvmlDeviceGetPowerUsage = lambda h: 310_500  # milliwatts
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [types.SimpleNamespace(pid=pid, usedGpuMemory=3 * 2**30),
                                                         types.SimpleNamespace(pid=1, usedGpuMemory=5 * 2**30)]
    return nv


def test_monitor_reads_each_gpu_through_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(os.getpid()))
    monitor = GpuMonitor()
    assert monitor.start() is True
    (g,) = monitor.read().gpus
    monitor.close()
    assert (g.index, g.name, g.util, g.temperature) == (0, "NVIDIA H100 80GB HBM3", None, 64.0)
    assert (g.mem_used, g.mem_total, g.process_mem) == (12 * 2**30, 80 * 2**30, 3 * 2**30), "only our own process"
    assert (g.power, g.power_limit) == (310.5, 700.0), "milliwatts → watts"
    assert monitor.read().gpus == (), "closed: no more readings"
    assert format_reading(read_once()).startswith("GPU0 NVIDIA H100 80GB HBM3 – 12.0/80.0G 64°C 310/700W  proc ")
