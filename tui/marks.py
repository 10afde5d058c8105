"""Status marks of checklist items, shared by the checklist, the detail pane, the dataset pane and help.

Single-cell characters whose East-Asian width is not "ambiguous" where possible, so columns line up
in tmux and in terminals set to treat ambiguous characters as wide.
"""
from __future__ import annotations

from rich.text import Text

# status → (mark, style, meaning)
MARKS: dict[str, tuple[str, str, str]] = {
    "pending": ("◌", "dim", "automated, not run yet"),
    "manual": ("☐", "dim", "manual, not ticked"),
    "running": ("⟳", "bold cyan", "running"),
    "pass": ("✔", "bold green", "passed"),
    "warn": ("!", "bold yellow", "warning: look at the evidence"),
    "fail": ("✘", "bold red", "failed"),
    "error": ("E", "bold magenta", "error: the model or data raised (traceback in the log)"),
    "skip": ("-", "dim", "skipped (not automated yet, stopped, or not applicable)"),
    "ticked": ("☑", "bold cyan", "manual, ticked"),
}


def mark(status: str) -> Text:
    char, style, _ = MARKS.get(status, MARKS["pending"])
    return Text(char, style=style)
