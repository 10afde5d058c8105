"""The footer: Textual's, with the keys a new user looks for first (``?`` help, ``q`` quit) and the
palette key pinned to its right end, so that a narrow terminal cuts the context keys in the middle,
never these. Below 120 columns it switches to Textual's compact style (less padding).
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widget import Widget
from textual.widgets import Footer

PINNED_KEYS = ("question_mark", "q")
COMPACT_BELOW = 120


class KeysFooter(Footer):
    DEFAULT_CSS = """
    KeysFooter > #footer-pinned {
        dock: right;
        width: auto;
        height: 1;
        padding-left: 1;
        background: $footer-background;
    }
    KeysFooter > #footer-pinned > FooterKey.-command-palette {
        dock: none;
    }
    """

    def compose(self) -> ComposeResult:
        pinned: list[Widget] = []
        for widget in super().compose():  # FooterKeys carry their binding's key (the class is not public)
            if getattr(widget, "key", None) in PINNED_KEYS or widget.has_class("-command-palette"):
                pinned.append(widget)
            else:
                yield widget
        if pinned:
            pinned.sort(key=lambda w: w.has_class("-command-palette"))  # the palette key last, as in Textual
            with HorizontalGroup(id="footer-pinned"):
                yield from pinned

    def on_resize(self) -> None:
        self.compact = self.size.width < COMPACT_BELOW
