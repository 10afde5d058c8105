"""The overrides form (``c``): every key ``--set`` can change, with the experiment's current value, to edit and start
a new training run without editing recipes.toml. Each edit is parsed and type-checked by the same code as ``--set``
(``core.overrides.parse_override``) as it is typed, its error under the field; ``enter`` (or the Start button)
checks the edits together (``config.apply_overrides``) and answers with them as ``--set`` strings, or shows why not
and starts nothing. ``escape`` cancels. ``/``-style filtering: the first field narrows the list to matching keys.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from recipe_tui.core.config import ConfigError, Experiment, apply_overrides
from recipe_tui.core.overrides import OverridableKey, overridable_keys, parse_override


class OverridesForm(ModalScreen[tuple[str, ...] | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="form.cancel")]

    def __init__(self, exp: Experiment, edits: dict[str, str] | None = None) -> None:
        """``edits``: key → text typed last time (the form opens with them, so a change can be tried again)."""
        super().__init__()
        self.exp = exp
        self.keys = overridable_keys(exp)
        self.start_edits = dict(edits or {})
        self.inputs: dict[str, Input] = {}
        self.errors: dict[str, Static] = {}
        self.problem = Static("", id="form-problem")

    def compose(self) -> ComposeResult:
        with Vertical(id="form-box"):
            yield Static(f"[b]Change and train {self.exp.name}[/b] — the keys of --set, with their current values. "
                         "enter starts a run with the changed ones (checked first); escape cancels.", id="form-head")
            yield Input(placeholder="filter keys (e.g. lr)", id="form-filter", compact=True)
            with VerticalScroll(id="form-fields"):
                for k in self.keys:
                    yield from self._field(k)
            yield self.problem
            yield Button("Start run", id="form-start", variant="primary", compact=True)

    def _field(self, k: OverridableKey) -> ComposeResult:
        value = Input(self.start_edits.get(k.key, k.text), id=_id(k.key), compact=True, classes="form-input")
        self.inputs[k.key] = value
        error = Static("", classes="form-error")
        error.display = False
        self.errors[k.key] = error
        about = " ".join(x for x in (k.kind, k.range, " | ".join(k.choices)) if x)
        with Vertical(classes="form-row", id=f"row-{_id(k.key)}"):
            with Horizontal(classes="form-line"):
                yield Label(k.key, classes="form-key")
                yield value
            yield Label(about, classes="form-about")
            yield error

    def on_mount(self) -> None:
        first = next((self.inputs[k] for k in self.start_edits if k in self.inputs), None)
        (first or self.inputs["train.lr"]).focus()

    # -- checking ---------------------------------------------------------------------------------------
    def changed(self) -> dict[str, str]:
        """key → text of every field that differs from the experiment's value."""
        return {k.key: self.inputs[k.key].value.strip() for k in self.keys
                if self.inputs[k.key].value.strip() != k.text}

    def check_field(self, key: str) -> bool:
        """Parse one field like ``--set key=text``; show the error under it. True when it is fine (or unchanged)."""
        text = self.inputs[key].value.strip()
        original = next(k.text for k in self.keys if k.key == key)
        message = ""
        if text != original:
            try:
                parse_override(self.exp, key, text)
            except ConfigError as exc:
                message = str(exc).removeprefix("--set: ")
        self.errors[key].update(message)
        self.errors[key].display = bool(message)
        self.inputs[key].set_class(bool(message), "-invalid-value")
        return not message

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "form-filter":
            self._filter(event.value.strip().lower())
            return
        key = next((k for k, i in self.inputs.items() if i is event.input), None)
        if key is not None:
            self.check_field(key)
            self.problem.update("")

    def _filter(self, text: str) -> None:
        for k in self.keys:
            self.query_one(f"#row-{_id(k.key)}").display = text in k.key.lower()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "form-filter":
            self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-start":
            self.submit()

    def submit(self) -> None:
        """Every changed field checked, then all of them together (a key may only be wrong beside another)."""
        edits = self.changed()
        bad = [key for key in edits if not self.check_field(key)]
        if bad:
            self.problem.update(f"Nothing started: {len(bad)} value(s) are not allowed ({', '.join(bad)}).")
            self.inputs[bad[0]].focus()
            return
        overrides = tuple(f"{k}={v}" for k, v in edits.items())
        try:
            apply_overrides(self.exp, overrides)
        except ConfigError as exc:
            self.problem.update(f"Nothing started: {exc}")
            return
        self.dismiss(overrides)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _id(key: str) -> str:
    return "field-" + key.replace(".", "-").replace("_", "-")
