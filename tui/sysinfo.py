"""Machine load for the status line: each GPU's utilisation, memory, temperature and power through
``core.gpu_monitor`` (NVML), else CPU and RAM through psutil (Linux, macOS, Windows alike), and the run's own
memory either way: this process (the app, and training inside it), or, while the app follows a run in a process
of its own (``follow``), that process and every process under it (a torchrun group's ranks).

NVML start-up (library load, init) takes tens of milliseconds, so ``start`` is meant for a worker thread;
``sample`` is cheap (a few NVML and system calls) and runs on the UI thread from a 1 Hz timer.
"""
from __future__ import annotations

from dataclasses import dataclass

import psutil

from recipe_tui.core.gpu_monitor import GpuMonitor, GpuStat, format_gpu

GiB = 1024 ** 3


@dataclass(frozen=True)
class SysReading:
    gpus: tuple[GpuStat, ...] = ()
    cpu: float | None = None  # percent of all cores since the previous sample
    ram_used: int | None = None  # bytes (total minus available)
    ram_total: int | None = None
    process_rss: int | None = None  # resident memory of the run's process(es)
    tree: bool = False  # process_rss is a followed run's process tree (``run``), not this process (``proc``)


class SysSampler:
    def __init__(self) -> None:
        self.monitor = GpuMonitor()
        self._cpu_primed = False  # psutil's first cpu_percent() has nothing to compare with
        self.pid: int | None = None  # the followed run's top process; None: this process

    def start(self) -> None:
        """Bring up NVML if there is an NVIDIA driver; silently fall back to CPU/RAM if not."""
        self.monitor.start()

    def close(self) -> None:
        self.monitor.close()

    @property
    def has_gpu(self) -> bool:
        return self.monitor.has_gpu

    def follow(self, pid: int | None) -> None:
        """Count the memory of ``pid`` and its descendants (a run in processes of its own); None: this process."""
        self.pid = pid

    def sample(self) -> SysReading:
        tree = self.pid is not None
        r = self.monitor.read(self.pid, children=tree)
        rss = r.process_rss or None  # 0: the followed process is gone
        if r.gpus:
            return SysReading(gpus=r.gpus, process_rss=rss, tree=tree)
        cpu = psutil.cpu_percent(interval=None)  # since the previous call: never blocks
        cpu_known, self._cpu_primed = self._cpu_primed, True
        try:
            mem = psutil.virtual_memory()
            used, total = mem.total - mem.available, mem.total
        except (OSError, RuntimeError):
            used = total = None
        return SysReading(cpu=cpu if cpu_known else None, ram_used=used, ram_total=total, process_rss=rss, tree=tree)


def format_reading(r: SysReading) -> str:
    """Each GPU (``GPU0 87% 12.3/80G 64°C 310W``), else ``CPU 42% RAM 3.1/15.6G``; then the run's memory:
    ``proc 1.2G`` (this process) or ``run 1.2G`` (a followed run's processes), with ``+3.0G GPU`` when it holds
    GPU memory. Empty when nothing is known."""
    parts = []
    if r.gpus:
        parts += [format_gpu(g, short=True) for g in r.gpus]
    else:
        if r.cpu is not None:
            parts.append(f"CPU {r.cpu:.0f}%")
        if r.ram_used is not None and r.ram_total:
            parts.append(f"RAM {r.ram_used / GiB:.1f}/{r.ram_total / GiB:.1f}G")
    if r.process_rss is not None:
        own = f"{'run' if r.tree else 'proc'} {r.process_rss / GiB:.1f}G"
        on_gpus = sum(g.process_mem or 0 for g in r.gpus)
        parts.append(own + (f" +{on_gpus / GiB:.1f}G GPU" if on_gpus else ""))
    return "  ".join(parts)
