"""The status line: run state, step, steps/s, ETA, device, and the machine's load.

Parts are ordered by importance; at 80 columns the tail (machine load) is what gets cut.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ..run_state import RunState
from ..sysinfo import SysReading, format_reading

STATE_STYLES = {"training": "bold green", "paused": "bold yellow", "stopping": "bold yellow", "failed": "bold red",
                "completed": "green", "stopped": "yellow", "interrupted": "yellow", "checking": "bold cyan",
                "idle": "dim", "watching": "bold cyan"}


class StatusLine(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.reading = SysReading()
        self.job = ""  # e.g. "checking init-loss (3/8)"; empty when idle or training
        self.watching = False
        self._shown: tuple[object, ...] = ()

    def show(self, state: RunState, reading: SysReading | None = None) -> None:
        """Redraw; from the 1 Hz timer with a new reading, else only when the state or job changed.

        Step counts and rates change on every drain, but redrawing them ten times a second costs the
        trainer GIL time for numbers nobody reads that fast.
        """
        signature = (state.status, self.job, state.run_dir)
        if reading is None and signature == self._shown:
            return
        self._shown = signature
        if reading is not None:
            self.reading = reading
        self.update(self.compose_text(state), layout=False)  # one fixed row: a relayout would repaint every pane

    def compose_text(self, state: RunState) -> Text:
        status = state.status
        text = Text()
        if self.watching:
            text.append("watch ", style=STATE_STYLES["watching"])
        if self.job:
            text.append(f"● {self.job}", style=STATE_STYLES["checking"])
        else:
            text.append(f"● {status}", style=STATE_STYLES.get(status, ""))
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
                text.append(f"  (no events for {_duration(age)})", style="yellow")
        if state.device:
            text.append(f"  {state.device}", style="dim")
        load = format_reading(self.reading)
        if load:
            text.append("  │ " + load, style="dim")
        text.no_wrap = True
        text.overflow = "ellipsis"
        return text


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
