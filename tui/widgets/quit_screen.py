"""The question ``q`` asks while a job runs: stop it and quit, go back, or (training in processes of its own)
detach: quit and leave it running. Dismisses with ``"stop"``, ``"detach"`` or None (cancel)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str | None]):
    # q again answers yes: "q q" quits; n / escape go back to the running job; d detaches (when it can).
    BINDINGS = [
        Binding("y,q", "answer('stop')", "Stop and quit", id="quit.yes"),
        Binding("d", "answer('detach')", "Detach", id="quit.detach"),
        Binding("n,escape", "answer('')", "Cancel", id="quit.no"),
    ]

    def __init__(self, question: str, detach: bool = False) -> None:
        super().__init__()
        self.question = question
        self.detach = detach

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static(self.question, id="quit-question")
            with Horizontal(id="quit-buttons"):
                yield Button("Stop and quit (y)", id="quit-stop", variant="error")
                if self.detach:
                    yield Button("Detach (d)", id="quit-detach", variant="warning")
                yield Button("Cancel (n)", id="quit-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quit-no", Button).focus()  # enter on the default keeps the job running

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.detach or parameters != ("detach",)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer((event.button.id or "").removeprefix("quit-").replace("no", ""))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer or None)
