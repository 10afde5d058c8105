"""The question ``q`` asks while a job runs: stop it and quit, or go back. Dismisses with True (quit) or False."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[bool]):
    # q again answers yes: "q q" quits; n / escape go back to the running job.
    BINDINGS = [
        Binding("y,q", "answer(True)", "Stop and quit", id="quit.yes"),
        Binding("n,escape", "answer(False)", "Cancel", id="quit.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static(self.question, id="quit-question")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop and quit (y)", id="quit-yes", variant="error")
                yield Button("Cancel (n)", id="quit-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quit-no", Button).focus()  # enter on the default keeps the job running

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")

    def action_answer(self, quit_: bool) -> None:
        self.dismiss(quit_)
