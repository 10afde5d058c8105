"""Machine load for the status line: per-GPU utilisation and memory through NVML, else CPU and RAM through
psutil (Linux, macOS, Windows alike), and this process's own memory either way.

NVML start-up (library load, init) takes tens of milliseconds, so ``start`` is meant for a worker thread;
``sample`` is cheap (a few system calls) and runs on the UI thread from a 1 Hz timer.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import psutil

GiB = 1024 ** 3


@dataclass(frozen=True)
class GpuReading:
    index: int
    util: float | None  # percent
    mem_used: int  # bytes
    mem_total: int


@dataclass(frozen=True)
class SysReading:
    gpus: tuple[GpuReading, ...] = ()
    cpu: float | None = None  # percent of all cores since the previous sample
    ram_used: int | None = None  # bytes (total minus available)
    ram_total: int | None = None
    process_rss: int | None = None  # this process's resident memory (the app, and training inside it)


class SysSampler:
    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._process = psutil.Process()
        self._cpu_primed = False  # psutil's first cpu_percent() has nothing to compare with
        self._lock = threading.Lock()  # start() runs in a worker, sample() on the UI thread

    def start(self) -> None:
        """Bring up NVML if there is an NVIDIA driver; silently fall back to CPU/RAM if not."""
        try:
            import pynvml
            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no package, no driver, no device: all mean "no GPU readings"
            return
        with self._lock:
            self._nvml, self._handles = pynvml, handles

    def close(self) -> None:
        with self._lock:
            nvml, self._nvml, self._handles = self._nvml, None, []
        if nvml is not None:
            try:
                nvml.nvmlShutdown()
            except Exception:
                pass  # shutting down a library that is already gone is not worth a message

    @property
    def has_gpu(self) -> bool:
        return bool(self._handles)

    def sample(self) -> SysReading:
        rss = self._rss()
        with self._lock:
            gpus = tuple(self._gpu(i, h) for i, h in enumerate(self._handles)) if self._nvml else ()
        if gpus:
            return SysReading(gpus=gpus, process_rss=rss)
        cpu = psutil.cpu_percent(interval=None)  # since the previous call: never blocks
        cpu_known, self._cpu_primed = self._cpu_primed, True
        try:
            mem = psutil.virtual_memory()
            used, total = mem.total - mem.available, mem.total
        except (OSError, RuntimeError):
            used = total = None
        return SysReading(cpu=cpu if cpu_known else None, ram_used=used, ram_total=total, process_rss=rss)

    def _rss(self) -> int | None:
        try:
            return int(self._process.memory_info().rss)
        except (psutil.Error, OSError):
            return None

    def _gpu(self, index: int, handle: Any) -> GpuReading:
        nvml = self._nvml
        try:
            util: float | None = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:
            util = None  # some devices (MIG slices) do not report utilisation
        try:
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            used, total = int(mem.used), int(mem.total)
        except Exception:
            used = total = 0
        return GpuReading(index=index, util=util, mem_used=used, mem_total=total)


def format_reading(r: SysReading) -> str:
    """``GPU0 87% 12.3/80G`` per GPU, else ``CPU 42% RAM 3.1/15.6G``, then ``proc 1.2G`` (this process's
    memory); empty when nothing is known."""
    parts = []
    if r.gpus:
        parts += [f"GPU{g.index} {'–' if g.util is None else f'{g.util:.0f}%'} "
                  f"{g.mem_used / GiB:.1f}/{g.mem_total / GiB:.0f}G" for g in r.gpus]
    else:
        if r.cpu is not None:
            parts.append(f"CPU {r.cpu:.0f}%")
        if r.ram_used is not None and r.ram_total:
            parts.append(f"RAM {r.ram_used / GiB:.1f}/{r.ram_total / GiB:.1f}G")
    if r.process_rss is not None:
        parts.append(f"proc {r.process_rss / GiB:.1f}G")
    return "  ".join(parts)
