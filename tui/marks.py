"""Status marks of checklist items, shared by the checklist, the detail pane, the dataset pane and help;
and the helpers that style rich text with a widget's component classes.

Single-cell characters whose East-Asian width is not "ambiguous" where possible, so columns line up
in tmux and in terminals set to treat ambiguous characters as wide. Their colours are the
``mark--<status>`` component classes in app.tcss: a widget that shows marks lists ``MARK_CLASSES`` in
its ``COMPONENT_CLASSES`` and passes itself to ``mark``.
"""
from __future__ import annotations

from typing import Callable

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

# status → (mark, meaning)
MARKS: dict[str, tuple[str, str]] = {
    "pending": ("◌", "automated, not run yet"),
    "manual": ("☐", "manual, not ticked"),
    "running": ("⟳", "running"),
    "pass": ("✔", "passed"),
    "warn": ("!", "warning: look at the evidence"),
    "fail": ("✘", "failed"),
    "error": ("E", "error: the model or data raised (traceback in the log)"),
    "skip": ("-", "skipped (not automated yet, stopped, or not applicable)"),
    "ticked": ("☑", "manual, ticked"),
}
MARK_CLASSES = {f"mark--{status}" for status in MARKS}


def mark(status: str, widget: Widget) -> Text:
    """The mark of ``status`` in ``widget``'s colours (plain until the widget is mounted and styled)."""
    status = status if status in MARKS else "pending"
    return Text(MARKS[status][0], style=styled(widget, f"mark--{status}"))


def styled(widget: Widget, component: str) -> Style:
    """A component class's style, or no style before the widget has its CSS (before mount)."""
    return widget.get_component_rich_style(component, partial=True, default=Style.null())


def follow_theme(widget: Widget, redraw: Callable[[], object]) -> None:
    """Call ``redraw`` after the theme changed (call from ``on_mount``): text that a widget styled with
    its component classes keeps the old colours until it is built again."""
    widget.app.theme_changed_signal.subscribe(widget, lambda _: widget.call_after_refresh(redraw))
