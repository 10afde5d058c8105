"""The status line: run state, step, steps/s, ETA (both smoothed: ``RunState``), device (on the CPU with its
torch thread count), and the machine's load.

Parts are ordered by importance; at 80 columns the tail (machine load) is what gets cut. Colours are
the ``status-line--*`` component classes in app.tcss.
"""
from __future__ import annotations

import time

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ..marks import styled
from ..run_state import RunState
from ..sysinfo import SysReading, format_reading

STATES = ("training", "paused", "stopping", "failed", "completed", "stopped", "interrupted", "idle")


class StatusLine(Widget):
    COMPONENT_CLASSES = {*(f"status-line--{s}" for s in STATES), "status-line--job", "status-line--watching",
                         "status-line--quiet", "status-line--stale"}

    job: reactive[str] = reactive("")  # e.g. "checking init-loss (3/8)"; empty when idle or training
    watching: reactive[bool] = reactive(False)
    # Every new reading redraws (step, rate and ETA with it), even when the machine's load is unchanged.
    reading: reactive[SysReading] = reactive(SysReading, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = RunState()
        self._shown: tuple[object, ...] = ()

    def show(self, state: RunState) -> None:
        """Redraw when the run's status or run dir changed; steps, rate and ETA follow the 1 Hz reading.

        Step counts and rates change on every drain, but redrawing them ten times a second costs the
        trainer GIL time for numbers nobody reads that fast.
        """
        self.state = state
        signature = (state.status, state.run_dir)
        if signature != self._shown:
            self._shown = signature
            self.refresh()

    def render(self) -> Text:
        return self.compose_text(self.state)

    def _style(self, name: str) -> Style:
        return styled(self, f"status-line--{name}")

    def compose_text(self, state: RunState) -> Text:
        status = state.status
        text = Text()
        if self.watching:
            text.append("watch ", style=self._style("watching"))
        if self.job:
            text.append(f"● {self.job}", style=self._style("job"))
        else:
            text.append(f"● {status}", style=self._style(status) if status in STATES else "")
        if state.total:
            pct = 100 * state.step / max(1, state.total)
            text.append(f"  step {state.step:,}/{state.total:,} ({pct:.0f}%)")
        running = state.status == "training"  # paused: no rate and no ETA, the clock is stopped
        if state.rate and running:
            text.append(f"  {state.rate:,.0f} steps/s")
        eta = state.eta_s() if running else None
        if eta is not None:
            text.append(f"  ETA {_duration(eta)}")
        if self.watching and state.last_event_time is not None and state.active:
            age = time.time() - state.last_event_time
            if age > 10:
                text.append(f"  (no events for {_duration(age)})", style=self._style("stale"))
        if state.device:
            threads = f" · {state.threads} thread{'s' if state.threads > 1 else ''}" \
                if state.threads and state.device.startswith("cpu") else ""  # train.threads, or auto's choice
            text.append(f"  {state.device}{threads}", style=self._style("quiet"))
        load = format_reading(self.reading)
        if load:
            text.append("  │ " + load, style=self._style("quiet"))
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
