"""The help screen (``?``): the keys, what the marks mean, and where things are written."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..marks import MARK_CLASSES, MARKS, mark

KEYS = [
    ("↑/↓  j/k", "move in the checklist"),
    ("g / G", "first / last line of the focused pane"),
    ("enter", "run the selected item (on a stage heading: every automated item of the stage)"),
    ("space", "tick / untick the selected manual item (on a stage heading: fold it)"),
    ("/", "filter the checklist (or the log, when it has the focus); escape clears the filter"),
    ("t", "train the experiment (live charts, log and status); with train.nproc > 1 in that many processes "
          "(torchrun), which can be left running like T's"),
    ("T", "train in a process of its own: q then offers to detach (quit and leave it running); opening the app "
          "again re-attaches to it"),
    ("s", "stop the running job (training writes a checkpoint)"),
    ("p", "pause / resume training"),
    ("l", "charts' y axis: auto (logarithmic when the values span more than a decade) or the other scale"),
    ("e", "the loss chart's smoothing on / off (a moving average, the raw curve faint behind it)"),
    ("w", "the charts show the last quarter of the steps / the whole run"),
    ("b", "browse samples: duplicates, outliers, label issues, largest losses after training"),
    ("r", "runs view: every run of the experiment with its differences from the recipe; space selects, enter lays "
          "the selected runs over the charts, o opens one alone, x clears the overlays, escape closes"),
    ("c", "change and train: a form of the --set keys with their current values; enter checks the edits and starts "
          "a run with them, escape cancels"),
    ("z", "zoom: the focused pane fills the screen (z or escape again to go back)"),
    ("?", "this help"),
    ("q", "quit (while a job runs it asks first: y stops the job and quits, n goes back, d detaches a run in "
          "processes of its own)"),
    ("tab", "move focus: checklist → item → dataset → log (↑/↓ scroll; in the log enter folds tracebacks)"),
    ("ctrl+p", "command palette: every action by name, themes, a screenshot (saved in the runs folder)"),
]


class HelpScreen(ModalScreen[None]):
    COMPONENT_CLASSES = MARK_CLASSES
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, notes: str = "") -> None:
        super().__init__()
        self.notes = notes

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(id="help-body")

    def on_mount(self) -> None:
        """Filled in once mounted: the marks take their colours from app.tcss."""
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, what in KEYS:
            keys.add_row(key, what)
        marks = Table.grid(padding=(0, 2))
        marks.add_column(no_wrap=True)
        marks.add_column()
        for status, (_, meaning) in MARKS.items():
            marks.add_row(mark(status, self), meaning)
        body = Group(Text("recipe-tui: Karpathy's recipe for training neural networks", style="bold"), Text(""),
                     keys, Text(""), Text("marks", style="bold"), marks, Text(""), Text(self.notes, style="dim"),
                     Text("escape closes this help", style="dim"))
        self.query_one("#help-body", Static).update(body)
