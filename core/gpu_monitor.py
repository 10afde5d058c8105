"""GPU and process load for a status line: per-GPU utilisation, memory, temperature and power through NVML
(nvidia-ml-py, imported as ``pynvml``), and a process's own memory through psutil. UI-free.

Where there is no NVML (no package, no driver, no NVIDIA GPU) a reading simply has no GPUs: nothing here
raises for a missing GPU. NVML start-up takes tens of milliseconds, so a status line keeps one ``GpuMonitor``
open and calls ``read`` once a second; ``read_once`` is for scripts.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class GpuStat:
    index: int
    name: str
    util: float | None  # percent of the last sample period a kernel ran
    mem_used: int | None  # bytes, all processes
    mem_total: int | None
    temperature: float | None  # °C
    power: float | None  # watts drawn now
    power_limit: float | None  # watts
    process_mem: int | None = None  # bytes this process (``pid``) holds on this GPU


@dataclass(frozen=True)
class MachineReading:
    gpus: tuple[GpuStat, ...]
    process_rss: int  # bytes of RAM the process (and, if asked, its children) holds
    pid: int


def _processes(pid: int | None, children: bool) -> list[Any]:
    """``pid`` (default: this process) and, when ``children``, its descendants; [] when it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return [proc] + (proc.children(recursive=True) if children else [])
    except psutil.Error:
        return []


def process_memory(pid: int | None = None, children: bool = False) -> int:
    """Resident memory of ``pid`` (default: this process), plus its descendants' when ``children``; 0 if gone."""
    return _rss(_processes(pid, children))


def _rss(procs: list[Any]) -> int:
    import psutil

    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass  # a DataLoader worker that just exited
    return total


def _maybe(fn: Callable[[], T]) -> T | None:
    """One NVML query; None where the device does not support it (MIG slices, some laptops)."""
    try:
        return fn()
    except Exception:
        return None


class GpuMonitor:
    """An open NVML session: ``read`` is cheap (a few NVML calls per GPU)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Bring up NVML; False (and every later reading without GPUs) where there is none."""
        try:
            import pynvml
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no package, no driver, no device: all mean "no GPU readings"
            return False
        with self._lock:
            self._nvml, self._handles = pynvml, handles
        return True

    def close(self) -> None:
        with self._lock:
            nvml, self._nvml, self._handles = self._nvml, None, []
        if nvml is not None:
            _maybe(nvml.nvmlShutdown)

    @property
    def has_gpu(self) -> bool:
        """NVML is up and sees at least one GPU."""
        return bool(self._handles)

    def read(self, pid: int | None = None, children: bool = False) -> MachineReading:
        """Every GPU now, and the memory of ``pid`` (default this process; with its children if asked: RAM and
        each GPU's ``process_mem`` then count the whole process tree, e.g. a torchrun group's ranks)."""
        pid = os.getpid() if pid is None else pid
        procs = _processes(pid, children)
        pids = {p.pid for p in procs} or {pid}
        with self._lock:
            gpus = tuple(self._gpu(i, h, pids) for i, h in enumerate(self._handles)) if self._nvml else ()
        return MachineReading(gpus=gpus, process_rss=_rss(procs), pid=pid)

    def _gpu(self, index: int, h: Any, pids: set[int]) -> GpuStat:
        nv = self._nvml
        util = _maybe(lambda: float(nv.nvmlDeviceGetUtilizationRates(h).gpu))
        mem = _maybe(lambda: nv.nvmlDeviceGetMemoryInfo(h))
        name = _maybe(lambda: nv.nvmlDeviceGetName(h))
        temp = _maybe(lambda: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)))
        power = _maybe(lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)  # milliwatts
        limit = _maybe(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0)
        procs = _maybe(lambda: nv.nvmlDeviceGetComputeRunningProcesses(h)) or []
        mine = [p.usedGpuMemory for p in procs if p.pid in pids and p.usedGpuMemory is not None]
        return GpuStat(index=index, name=name.decode() if isinstance(name, bytes) else str(name or f"GPU {index}"),
                       util=util, mem_used=None if mem is None else int(mem.used),
                       mem_total=None if mem is None else int(mem.total), temperature=temp, power=power,
                       power_limit=limit, process_mem=sum(mine) if mine else None)


def read_once(pid: int | None = None, children: bool = False) -> MachineReading:
    monitor = GpuMonitor()
    monitor.start()
    try:
        return monitor.read(pid, children)
    finally:
        monitor.close()


def format_gpu(g: GpuStat, short: bool = False) -> str:
    """``GPU0 H100 87% 12.3/80.0G 64°C 310/700W``; ``short`` (a status line): ``GPU0 87% 12.3/80G 64°C 310W``.
    Only what the device reports."""
    gib = 1024 ** 3
    bits = [f"GPU{g.index}" if short else f"GPU{g.index} {g.name}", "–" if g.util is None else f"{g.util:.0f}%"]
    if g.mem_used is not None and g.mem_total:
        bits.append(f"{g.mem_used / gib:.1f}/{g.mem_total / gib:{'.0f' if short else '.1f'}}G")
    if g.temperature is not None:
        bits.append(f"{g.temperature:.0f}°C")
    if g.power is not None:
        bits.append(f"{g.power:.0f}" + (f"/{g.power_limit:.0f}W" if g.power_limit and not short else "W"))
    return " ".join(bits)


def format_reading(r: MachineReading) -> str:
    """``format_gpu`` per GPU, then ``proc 1.2G``."""
    return "  ".join([*(format_gpu(g) for g in r.gpus), f"proc {r.process_rss / 1024 ** 3:.2f}G"])
