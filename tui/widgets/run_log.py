"""The run log: what the worker reports, warnings and errors, tracebacks folded.

An entry with detail (a traceback) shows its first line and a ``▸`` marker; with the log focused
(tab), enter unfolds every detail, enter again folds them. Entries are kept (bounded) so the log can
be re-rendered when folding changes or the pane is resized (RichLog does not re-wrap by itself).
Levels are coloured by the ``run-log--<level>`` component classes in app.tcss.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.widgets import RichLog

from ..marks import follow_theme, styled

LEVELS = ("info", "warning", "error")  # each a component class run-log--<level> (app.tcss)
KEEP = 1000


@dataclass(frozen=True)
class Entry:
    time: float
    level: str
    message: str
    detail: str = ""


class RunLog(RichLog):
    COMPONENT_CLASSES = {f"run-log--{level}" for level in LEVELS}
    BINDINGS = [Binding("enter", "toggle_details", "Fold/unfold", id="log.details")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, min_width=20, max_lines=4 * KEEP)
        self.entries: deque[Entry] = deque(maxlen=KEEP)
        self.unfolded = False
        self._width = 0

    def add(self, message: str, level: str = "info", detail: str = "", when: float | None = None) -> None:
        entry = Entry(time.time() if when is None else when, level, message, detail)
        self.entries.append(entry)
        self.write(self._render_entry(entry))

    def on_mount(self) -> None:
        follow_theme(self, self._rewrite)

    def action_toggle_details(self) -> None:
        self.unfolded = not self.unfolded
        self._rewrite()

    def on_resize(self) -> None:
        if self.size.width != self._width:
            self._width = self.size.width
            self._rewrite()

    def _rewrite(self) -> None:
        self.clear()
        for entry in self.entries:
            self.write(self._render_entry(entry))

    def _render_entry(self, e: Entry) -> Text:
        first, _, rest = e.message.partition("\n")
        detail = "\n".join(x for x in (rest, e.detail) if x)
        text = Text.assemble((time.strftime("%H:%M:%S ", time.localtime(e.time)), "dim"),
                             (first, styled(self, f"run-log--{e.level if e.level in LEVELS else 'info'}")))
        if detail and self.unfolded:
            text.append("\n" + detail.rstrip(), style="dim")
        elif detail:
            text.append(" ▸ details: tab here, enter", style="dim italic")
        return text

    def messages(self) -> list[str]:
        """The messages logged so far (tests and the watch mode's summary read them)."""
        return [e.message for e in self.entries]
