"""Machine load for the status line: per-GPU utilisation and memory through NVML, else CPU and RAM.

CPU and RAM come from /proc (Linux) so there is no psutil dependency; on systems without /proc the
reading is simply empty. NVML start-up (library load, init) takes tens of milliseconds, so ``start``
is meant for a worker thread; ``sample`` is cheap enough for a 1 Hz timer on the UI thread.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class SysSampler:
    def __init__(self, proc: str | Path = "/proc") -> None:
        self.proc = Path(proc)
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._prev_cpu: tuple[int, int] | None = None
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
        with self._lock:
            gpus = tuple(self._gpu(i, h) for i, h in enumerate(self._handles)) if self._nvml else ()
        if gpus:
            return SysReading(gpus=gpus)
        used, total = self._ram()
        return SysReading(cpu=self._cpu(), ram_used=used, ram_total=total)

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

    def _cpu(self) -> float | None:
        try:
            fields = (self.proc / "stat").read_text().split("\n", 1)[0].split()[1:]
            values = [int(v) for v in fields]
        except (OSError, ValueError, IndexError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already inside user/nice
        prev, self._prev_cpu = self._prev_cpu, (idle, total)
        if prev is None or total <= prev[1]:
            return None  # the first reading has nothing to compare with
        return 100.0 * (1 - (idle - prev[0]) / (total - prev[1]))

    def _ram(self) -> tuple[int | None, int | None]:
        try:
            info = {}
            for line in (self.proc / "meminfo").read_text().splitlines():
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
            return info["MemTotal"] - info["MemAvailable"], info["MemTotal"]
        except (OSError, ValueError, KeyError, IndexError):
            return None, None


def format_reading(r: SysReading) -> str:
    """``GPU0 87% 12.3/80G`` per GPU, else ``CPU 42% RAM 3.1/15.6G``; empty when nothing is known."""
    if r.gpus:
        return "  ".join(f"GPU{g.index} {'–' if g.util is None else f'{g.util:.0f}%'} "
                         f"{g.mem_used / GiB:.1f}/{g.mem_total / GiB:.0f}G" for g in r.gpus)
    parts = []
    if r.cpu is not None:
        parts.append(f"CPU {r.cpu:.0f}%")
    if r.ram_used is not None and r.ram_total:
        parts.append(f"RAM {r.ram_used / GiB:.1f}/{r.ram_total / GiB:.1f}G")
    return "  ".join(parts)
