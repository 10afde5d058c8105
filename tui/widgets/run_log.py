"""The run log: what the worker reports, warnings and errors, tracebacks folded.

- It follows new lines only while it is scrolled to the bottom: scrolled up to read, it stays put.
- Lines wrap at the pane's width and re-wrap when it changes (entries are kept, lines rebuilt).
- Routine lines (``add(..., key="checkpoint")``, eval summaries) fold into one updating line: while
  no other line came after it, the next one of the same key replaces it (``(×3)`` says how many), so a
  long run's checkpoints do not push its warnings out of view.
- An entry with detail (a traceback) shows its first line and a ``▸`` marker; with the log focused,
  enter unfolds every detail, enter again folds them.
- ``/`` filters the entries (any case; the detail too); escape clears the filter.

Levels are coloured by the ``run-log--<level>`` component classes in app.tcss.
"""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..marks import follow_theme, styled
from .filter_bar import FilterRequested

LEVELS = ("info", "warning", "error")  # each a component class run-log--<level> (app.tcss)
KEEP = 1000


@dataclass(frozen=True)
class Entry:
    time: float
    level: str
    message: str
    detail: str = ""
    key: str = ""  # routine lines of one key fold into one updating line
    count: int = 1  # how many routine lines this one stands for


class RunLog(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {f"run-log--{level}" for level in LEVELS}
    BINDINGS = [
        Binding("enter", "toggle_details", "Fold/unfold", id="log.details"),
        Binding("slash", "filter", "Filter", key_display="/", show=False, id="log.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="log.clear-filter"),
    ]
    DEFAULT_CSS = """
    RunLog { background: $surface; color: $foreground; overflow-y: scroll; overflow-x: hidden; }
    RunLog:focus { background-tint: $foreground 5%; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: deque[Entry] = deque(maxlen=KEEP)
        self.unfolded = False
        self.filter_text = ""
        self._shown: list[Entry] = []  # the entries that pass the filter, oldest first
        self._spans: list[int] = []  # lines of each shown entry
        self._lines: list[Strip] = []
        self._width = 0  # the width the lines are wrapped at; 0 until the size is known
        self._style: Style | None = None  # rich_style, kept (``_base_style``)
        self._batch: dict[str, tuple[Entry, Entry]] | None = None  # key → (shown entry, its latest) in a ``batch``

    # -- public -------------------------------------------------------------------------------------
    def add(self, message: str, level: str = "info", detail: str = "", when: float | None = None,
            key: str = "") -> None:
        entry = Entry(time.time() if when is None else when, level, message, detail, key)
        if key:
            i = self._routine_index(key)
            if i is not None:
                old = self.entries[i]
                new = self.entries[i] = replace(entry, count=old.count + 1)
                if self._batch is None:
                    self._replace_shown(old, new)
                else:  # shown once, at the batch's end
                    self._batch[key] = (self._batch.get(key, (old,))[0], new)
                return
        self._show_batched()
        dropped = self.entries[0] if len(self.entries) == self.entries.maxlen else None
        self.entries.append(entry)
        following = self._following()
        if dropped is not None and self._shown and self._shown[0] is dropped:
            self._drop_first()
        if self._matches(entry):
            self._shown.append(entry)
            strips = self._strips(entry)
            self._spans.append(len(strips))
            self._lines.extend(strips)
            self._resized(following)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within it, a routine line that replaces its predecessor is rendered once, at the end (the screen's drain
        may bring a dozen evaluations: one repaint, not twelve)."""
        self._batch = {}
        try:
            yield
        finally:
            self._show_batched()
            self._batch = None

    def _show_batched(self) -> None:
        if self._batch:
            pending, self._batch = self._batch, {}
            for shown, latest in pending.values():
                self._replace_shown(shown, latest)

    def messages(self) -> list[str]:
        """The messages logged so far (tests and the watch mode's summary read them)."""
        return [e.message for e in self.entries]

    def lines_text(self) -> list[str]:
        """The wrapped lines as plain text, as the pane shows them (tests read them)."""
        return [strip.text for strip in self._lines]

    def set_filter(self, text: str) -> None:
        text = text.strip()
        if text != self.filter_text:
            self.filter_text = text
            self.border_subtitle = f"/{text}  esc clears" if text else ""
            self._relayout(follow=True)

    # -- keys ---------------------------------------------------------------------------------------
    def action_toggle_details(self) -> None:
        self.unfolded = not self.unfolded
        self._relayout(follow=self._following())

    def action_filter(self) -> None:
        self.post_message(FilterRequested(self, self.filter_text, "filter the log"))

    def action_clear_filter(self) -> None:
        self.set_filter("")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return bool(self.filter_text) if action == "clear_filter" else True

    # -- layout -------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        follow_theme(self, lambda: self._relayout(self._following()))

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:
            following = self._following() or not self._width
            self._width = width
            self._relayout(following)  # re-wrap at the new width

    def _following(self) -> bool:
        """At the bottom (or nothing to scroll): new lines scroll into view."""
        return self.scroll_offset.y >= self.max_scroll_y

    def _matches(self, e: Entry) -> bool:
        needle = self.filter_text.lower()
        return not needle or needle in e.message.lower() or needle in e.detail.lower()

    def _relayout(self, follow: bool) -> None:
        self._shown = [e for e in self.entries if self._matches(e)]
        rendered = [self._strips(e) for e in self._shown]
        self._spans = [len(s) for s in rendered]
        self._lines = [strip for s in rendered for strip in s]
        self._resized(follow)

    def _resized(self, follow: bool) -> None:
        self.virtual_size = Size(self._width, len(self._lines))
        self.refresh()
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def _routine_index(self, key: str) -> int | None:
        """The entry of this key among the trailing routine entries (nothing else came after it)."""
        for i in range(len(self.entries) - 1, -1, -1):
            e = self.entries[i]
            if not e.key:
                return None
            if e.key == key:
                return i
        return None

    def _replace_shown(self, old: Entry, new: Entry) -> None:
        following = self._following()
        pos = next((i for i in range(len(self._shown) - 1, -1, -1) if self._shown[i] is old), None)
        if pos is None or not self._matches(new):
            self._relayout(following)
            return
        start = sum(self._spans[:pos])
        strips = self._strips(new)
        same = len(strips) == self._spans[pos]
        self._lines[start:start + self._spans[pos]] = strips
        self._shown[pos], self._spans[pos] = new, len(strips)
        if same:  # nothing moves: repaint the entry's lines only (an eval line updates several times a second)
            self.refresh_lines(start, len(strips))
        else:
            self._resized(following)

    def _drop_first(self) -> None:
        n = self._spans.pop(0)
        self._shown.pop(0)
        del self._lines[:n]
        if not self._following():
            self.scroll_to(y=max(0, self.scroll_offset.y - n), animate=False, immediate=True)  # the view stays put

    def _strips(self, e: Entry) -> list[Strip]:
        if self._width <= 0:
            return []  # not laid out yet: on_resize renders everything
        console = self.app.console
        lines = console.render_lines(self._render_entry(e), console.options.update_width(self._width), pad=False)
        return [Strip(line) for line in lines]

    def _render_entry(self, e: Entry) -> Text:
        first, _, rest = e.message.partition("\n")
        detail = "\n".join(x for x in (rest, e.detail) if x)
        text = Text.assemble((time.strftime("%H:%M:%S ", time.localtime(e.time)), "dim"),
                             (first, styled(self, f"run-log--{e.level if e.level in LEVELS else 'info'}")))
        if e.count > 1:
            text.append(f" (×{e.count})", style="dim")
        if detail and self.unfolded:
            text.append("\n" + detail.rstrip(), style="dim")
        elif detail:
            text.append(" ▸ details: tab here, enter", style="dim italic")
        return text

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        strip = self._lines[index] if index < len(self._lines) else Strip.blank(width)
        style = self._base_style()
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)

    def _base_style(self) -> Style:
        """``rich_style`` walks every ancestor's CSS on each access (a tenth of the UI thread's time while training,
        two accesses a painted line): kept until the styles change (theme, focus)."""
        if self._style is None:
            self._style = self.rich_style
        return self._style

    def notify_style_update(self) -> None:
        self._style = None
        super().notify_style_update()
