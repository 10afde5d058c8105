"""Status marks of checklist items, shared by the checklist, the detail pane, the dataset pane and help;
and the helpers that style rich text with a widget's component classes.

Single-cell characters whose East-Asian width is not "ambiguous" where possible, so columns line up
in tmux and in terminals set to treat ambiguous characters as wide. Their colours are the
``mark--<status>`` component classes in app.tcss: a widget that shows marks lists ``MARK_CLASSES`` in
its ``COMPONENT_CLASSES`` and passes itself to ``mark``.
"""
from __future__ import annotations

from typing import Any, Callable

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
    "skip": ("-", "skipped (not automated yet, or not applicable)"),
    "stopped": ("◧", "stopped part-way (training: a checkpoint was saved; t trains again)"),
    "ticked": ("☑", "manual, ticked"),
}
MARK_CLASSES = {f"mark--{status}" for status in MARKS}


def mark(status: str, widget: Widget) -> Text:
    """The mark of ``status`` in ``widget``'s colours (plain until the widget is mounted and styled)."""
    status = status if status in MARKS else "pending"
    return Text(MARKS[status][0], style=styled(widget, f"mark--{status}"))


def status_of(result: Any) -> str:
    """The mark a stored result shows: its status, except a training run that was stopped part-way
    (recorded as ``skip`` with ``metrics["state"] == "stopped"``), which has a mark of its own."""
    metrics = getattr(result, "metrics", None) or {}
    return "stopped" if metrics.get("state") == "stopped" else result.status


def finding_count(result: Any) -> int:
    """How many things a result flagged (label issues, outliers, duplicate groups), shown beside its
    mark so that a pass with findings does not read as "nothing here". 0 when it names no count."""
    metrics = getattr(result, "metrics", None) or {}
    count = metrics.get("count")
    if isinstance(count, dict):
        count = sum(v for v in count.values() if isinstance(v, int) and not isinstance(v, bool))
    if isinstance(count, int) and not isinstance(count, bool):
        return max(0, count)
    groups = [v for k, v in metrics.items() if k.endswith("_groups") and isinstance(v, int)]  # duplicates
    return sum(groups)


def styled(widget: Widget, component: str) -> Style:
    """A component class's style, or no style before the widget has its CSS (before mount)."""
    return widget.get_component_rich_style(component, partial=True, default=Style.null())


def follow_theme(widget: Widget, redraw: Callable[[], object]) -> None:
    """Call ``redraw`` after the theme changed (call from ``on_mount``): text that a widget styled with
    its component classes keeps the old colours until it is built again."""
    widget.app.theme_changed_signal.subscribe(widget, lambda _: widget.call_after_refresh(redraw))
