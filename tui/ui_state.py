"""What the app remembers between launches about how it looked: the theme, the charts' modes (log-y,
smoothing, recent steps), and which checklist stages were unfolded (per experiment). One small JSON file, ``<runs>/ui-state.json``, saved atomically
(temp file + rename) whenever one of them changes. A missing or unreadable file means the defaults:
losing a theme choice is no reason to refuse to start. No Textual import: it is plain data.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UI_STATE_FILE = "ui-state.json"


@dataclass
class UiState:
    path: Path
    theme: str = ""  # empty: Textual's default
    log_y: bool | None = None  # None: auto (a chart whose values span a decade or more is drawn log)
    smooth: bool = True  # the loss chart's moving average (e)
    recent: bool = False  # the charts show the last quarter of the steps (w)
    expanded: dict[str, list[int]] = field(default_factory=dict)  # experiment → stage numbers unfolded
    warning: str = ""  # why the stored file was ignored, for the log
    read_only: bool = False  # watch mode writes nothing into the runs folder

    @classmethod
    def load(cls, runs_root: str | Path) -> "UiState":
        path = Path(runs_root) / UI_STATE_FILE
        state = cls(path)
        if not path.is_file():
            return state
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            state.theme = str(doc.get("theme") or "")
            # "log" / "linear" chosen with l; anything else (false, the default before auto existed) is auto
            state.log_y = {"log": True, True: True, "linear": False}.get(doc.get("log_y"))
            state.smooth, state.recent = bool(doc.get("smooth", True)), bool(doc.get("recent", False))
            state.expanded = {str(k): [int(n) for n in v] for k, v in dict(doc.get("expanded", {})).items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            state.warning = f"{path} was unreadable ({type(exc).__name__}); using the default look."
        return state

    def save(self) -> str:
        """Write the file; returns why it could not be written ("" when it was, or when read-only)."""
        if self.read_only:
            return ""
        log_y = {True: "log", False: "linear"}.get(self.log_y, "auto")  # type: ignore[arg-type]
        doc = {"theme": self.theme, "log_y": log_y, "smooth": self.smooth, "recent": self.recent,
               "expanded": self.expanded}
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)  # readers never see half a file
        except OSError as exc:
            return f"could not save the UI state to {self.path}: {exc}"
        return ""
