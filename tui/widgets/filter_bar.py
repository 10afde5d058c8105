"""The filter bar: ``/`` in the checklist or the log opens it under the panes; typing filters live,
enter keeps the filter and goes back to the pane, escape clears it. The pane it filters implements
``set_filter(text)``; the bar knows nothing else about it.
"""
from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input


class FilterRequested(Message):
    """A pane asks for the filter bar (its ``/`` key)."""

    def __init__(self, target: Widget, text: str, placeholder: str) -> None:
        super().__init__()
        self.target = target
        self.text = text
        self.placeholder = placeholder


class FilterBar(Input):
    BINDINGS = [Binding("escape", "cancel", "Clear filter", id="filter.clear")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.target: Widget | None = None
        self.display = False

    def open(self, target: Widget, text: str, placeholder: str) -> None:
        self.target = target
        self.placeholder = placeholder
        self.value = text
        self.display = True
        self.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.target is not None and self.display:
            self.target.set_filter(event.value)  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._close()

    def action_cancel(self) -> None:
        if self.target is not None:
            self.target.set_filter("")  # type: ignore[attr-defined]
        self._close()

    def _close(self) -> None:
        self.display = False
        if self.target is not None:
            self.target.focus()
