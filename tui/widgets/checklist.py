"""The checklist pane: the recipe's stages and items, each item with its status mark.

It only shows state and turns keys into requests (messages); the screen decides what running or
ticking means and calls ``set_status`` back. Colours: the ``mark--*`` and ``checklist--*`` component
classes in app.tcss.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from recipe_tui.core.config import RecipesFile

from ..marks import MARK_CLASSES, follow_theme, mark, styled

DONE = ("pass", "ticked")


@dataclass(frozen=True)
class Ref:
    """What a tree node stands for: a stage (``item`` empty) or one item of it."""

    stage: int
    item: str = ""


class Checklist(Tree[Ref]):
    COMPONENT_CLASSES = {*MARK_CLASSES, "checklist--stage", "checklist--count", "checklist--count-done",
                         "checklist--count-bad"}
    BINDINGS = [
        Binding("down,j", "cursor_down", "Move", key_display="↑↓ jk", id="checklist.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="checklist.up"),
        Binding("enter", "run", "Run item", id="checklist.run"),
        Binding("space", "tick", "Tick", id="checklist.tick"),
    ]

    class RunRequested(Message):
        def __init__(self, ref: Ref) -> None:
            super().__init__()
            self.ref = ref

    class TickRequested(Message):
        def __init__(self, ref: Ref) -> None:
            super().__init__()
            self.ref = ref

    def __init__(self, recipes: RecipesFile, *, id: str | None = None) -> None:
        super().__init__("Checklist", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False  # enter runs; it must not fold a stage as a side effect
        self._titles = {item.id: item.title for item in recipes.items()}
        self._status: dict[str, str] = {}
        self._items: dict[str, TreeNode[Ref]] = {}
        self._stages: dict[int, tuple[TreeNode[Ref], str, list[str]]] = {}
        for stage in recipes.stages:
            node = self.root.add("", data=Ref(stage.number), expand=True)
            ids = [item.id for item in stage.items]
            self._stages[stage.number] = (node, stage.title, ids)
            for item in stage.items:
                self._status[item.id] = "pending" if item.check or item.id == "train" else "manual"
                self._items[item.id] = node.add_leaf("", data=Ref(stage.number, item.id))
        self._relabel_all()

    def on_mount(self) -> None:
        self._relabel_all()  # now in the colours of app.tcss
        follow_theme(self, self._relabel_all)
        self.move_cursor_to_line(1)  # the first item, not the first stage heading…
        self.call_after_refresh(self.scroll_home, animate=False)  # …with that heading still in view

    # -- public -----------------------------------------------------------------------------------
    def status(self, item_id: str) -> str:
        return self._status.get(item_id, "pending")  # a recipes file may leave out an item (e.g. train)

    def set_status(self, item_id: str, status: str) -> None:
        if item_id not in self._items or self._status[item_id] == status:
            return
        self._status[item_id] = status
        self._relabel_item(item_id)
        self._relabel_stage(self._items[item_id].data.stage)

    def selected(self) -> Ref | None:
        node = self.cursor_node
        return None if node is None else node.data

    def select_item(self, item_id: str) -> None:
        self.move_cursor(self._items[item_id])

    # -- keys ---------------------------------------------------------------------------------------
    def action_run(self) -> None:
        ref = self.selected()
        if ref is not None:
            self.post_message(self.RunRequested(ref))

    def action_tick(self) -> None:
        ref = self.selected()
        if ref is None:
            return
        if not ref.item:
            self.action_toggle_node()  # space on a stage heading folds it, as in any tree
        else:
            self.post_message(self.TickRequested(ref))

    # -- labels -------------------------------------------------------------------------------------
    def _relabel_all(self) -> None:
        for number in self._stages:
            self._relabel_stage(number)
        for item_id in self._items:
            self._relabel_item(item_id)

    def _relabel_item(self, item_id: str) -> None:
        label = Text.assemble(mark(self._status[item_id], self), " ", self._titles[item_id])
        self._items[item_id].set_label(label)

    def _relabel_stage(self, number: int) -> None:
        node, title, ids = self._stages[number]
        done = sum(self._status[i] in DONE for i in ids)
        bad = any(self._status[i] in ("fail", "error") for i in ids)
        kind = "count-bad" if bad else ("count-done" if done == len(ids) else "count")
        count = Text(f" {done}/{len(ids)}", style=styled(self, f"checklist--{kind}"))
        node.set_label(Text.assemble(Text(f"{number} {title}", style=styled(self, "checklist--stage")), count))
