"""The checklist pane: the recipe's stages and items, each item with its status mark.

It only shows state and turns keys into requests (messages); the screen decides what running or
ticking means and calls ``set_status`` back. Stages fold (space on a heading; the screen remembers
which are open), and ``/`` filters the items by title or id. Colours: the ``mark--*`` and
``checklist--*`` component classes in app.tcss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from recipe_tui.core.config import RecipesFile

from ..marks import MARK_CLASSES, follow_theme, mark, styled
from .filter_bar import FilterRequested

DONE = ("pass", "ticked")
# An item that needs nothing more from the user; the first stage with another one is the current stage.
SETTLED = ("pass", "warn", "ticked", "skip")


@dataclass(frozen=True)
class Ref:
    """What a tree node stands for: a stage (``item`` empty) or one item of it."""

    stage: int
    item: str = ""


class Checklist(Tree[Ref]):
    COMPONENT_CLASSES = {*MARK_CLASSES, "checklist--stage", "checklist--count", "checklist--count-done",
                         "checklist--count-bad", "checklist--findings"}
    BINDINGS = [
        Binding("down,j", "cursor_down", "Move", key_display="↑↓ jk", id="checklist.down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="checklist.up"),
        Binding("enter", "run", "Run item", id="checklist.run"),
        Binding("space", "tick", "Tick", id="checklist.tick"),
        Binding("slash", "filter", "Filter", key_display="/", show=False, id="checklist.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="checklist.clear-filter"),
    ]

    class RunRequested(Message):
        def __init__(self, ref: Ref) -> None:
            super().__init__()
            self.ref = ref

    class TickRequested(Message):
        def __init__(self, ref: Ref) -> None:
            super().__init__()
            self.ref = ref

    class FoldsChanged(Message):
        """The user folded or unfolded a stage (the screen remembers it for the next launch)."""

        def __init__(self, expanded: list[int]) -> None:
            super().__init__()
            self.expanded = expanded

    def __init__(self, recipes: RecipesFile, *, id: str | None = None) -> None:
        super().__init__("Checklist", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False  # enter runs; it must not fold a stage as a side effect
        self.recipes = recipes
        self.filter_text = ""
        self._titles = {item.id: item.title for item in recipes.items()}
        self._status: dict[str, str] = {}
        self._counts: dict[str, int] = {}  # item id → findings of its last result (shown beside the mark)
        self._unfolded = {stage.number for stage in recipes.stages}
        self._items: dict[str, TreeNode[Ref]] = {}
        self._stages: dict[int, tuple[TreeNode[Ref], str, list[str]]] = {}
        for stage in recipes.stages:
            for item in stage.items:
                self._status[item.id] = "pending" if item.check or item.id == "train" else "manual"
        self._populate()

    def on_mount(self) -> None:
        self._relabel_all()  # now in the colours of app.tcss
        follow_theme(self, self._relabel_all)
        self.call_after_refresh(self.scroll_home, animate=False)  # the first heading stays in view

    # -- public -----------------------------------------------------------------------------------
    def status(self, item_id: str) -> str:
        return self._status.get(item_id, "pending")  # a recipes file may leave out an item (e.g. train)

    def set_status(self, item_id: str, status: str, count: int | None = None) -> None:
        """The item's mark; ``count`` (findings of its result) is shown beside it when > 0."""
        if item_id not in self._status:
            return
        count = self._counts.get(item_id, 0) if count is None else count
        if self._status[item_id] == status and self._counts.get(item_id, 0) == count:
            return
        self._status[item_id] = status
        self._counts[item_id] = count
        if item_id in self._items:
            self._relabel_item(item_id)
            self._relabel_stage(self._items[item_id].data.stage)

    def selected(self) -> Ref | None:
        node = self.cursor_node
        return None if node is None else node.data

    def select_item(self, item_id: str) -> None:
        if item_id not in self._items and self.filter_text:
            self.set_filter("")  # the item is filtered out: show everything again
        self._move_to(self._items[item_id])

    def current_stage(self) -> int:
        """The first stage with an item that still needs something (not run, failed, not ticked)."""
        for stage in self.recipes.stages:
            if any(self._status.get(i.id) not in SETTLED for i in stage.items):
                return stage.number
        return self.recipes.stages[-1].number if self.recipes.stages else 0

    def expanded_stages(self) -> list[int]:
        return sorted(self._unfolded)

    def unfold_only(self, numbers: Iterable[int]) -> None:
        """Show these stages unfolded and the others folded; the cursor goes to the current stage's
        first unsettled item (or its heading)."""
        self._unfolded = set(numbers)
        for number, (node, _, _) in self._stages.items():
            (node.expand if number in self._unfolded else node.collapse)()
        current = self.current_stage()
        if current not in self._stages:
            return
        ids = [i for i in self._stages[current][2] if i in self._items]
        first = next((i for i in ids if self._status[i] not in SETTLED), ids[0] if ids else "")
        open_ = current in self._unfolded and first
        self._move_to(self._items[first] if open_ else self._stages[current][0])

    def set_filter(self, text: str) -> None:
        """Show only items whose title or id contains ``text`` (any case), under their stages, unfolded."""
        text = text.strip()
        if text == self.filter_text:
            return
        selected = self.selected()
        self.filter_text = text
        self.border_subtitle = f"/{text}  esc clears" if text else ""
        self._populate()
        node = self._items.get(selected.item) if selected is not None and selected.item else None
        if node is None and text and self._items:
            node = next(iter(self._items.values()))  # the first match: enter runs it
        if node is None and selected is not None and selected.stage in self._stages:
            node = self._stages[selected.stage][0]
        self._move_to(node)

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
            node = self.cursor_node
            if node is not None and not self.filter_text:
                (self._unfolded.add if node.is_expanded else self._unfolded.discard)(ref.stage)
                self.post_message(self.FoldsChanged(self.expanded_stages()))
        else:
            self.post_message(self.TickRequested(ref))

    def action_filter(self) -> None:
        self.post_message(FilterRequested(self, self.filter_text, "filter the checklist: title or id"))

    def action_clear_filter(self) -> None:
        self.set_filter("")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self.filter_text)  # otherwise escape means what it means elsewhere
        return True

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Ref]) -> None:
        if not self.filter_text and event.node.data is not None:
            self._unfolded.add(event.node.data.stage)

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed[Ref]) -> None:
        if not self.filter_text and event.node.data is not None:
            self._unfolded.discard(event.node.data.stage)

    # -- nodes and labels ---------------------------------------------------------------------------
    def _move_to(self, node: TreeNode[Ref] | None) -> None:
        """``move_cursor``, unfolding the node's stage when it is folded. After folds or nodes changed,
        a node's line is only known once the tree's lines are rebuilt, which reading ``last_line`` does."""
        parent = None if node is None else node.parent
        if parent is not None and parent.data is not None and not parent.is_expanded:
            parent.expand()
            self._unfolded.add(parent.data.stage)
        if self.last_line >= 0:
            self.move_cursor(node)

    def _matches(self, item_id: str) -> bool:
        needle = self.filter_text.lower()
        return not needle or needle in item_id.lower() or needle in self._titles[item_id].lower()

    def _populate(self) -> None:
        """(Re)create the nodes: every stage with its matching items (all of them without a filter)."""
        self.clear()
        self._items, self._stages = {}, {}
        for stage in self.recipes.stages:
            ids = [item.id for item in stage.items if self._matches(item.id)]
            if self.filter_text and not ids:
                continue
            expand = bool(self.filter_text) or stage.number in self._unfolded
            node = self.root.add("", data=Ref(stage.number), expand=expand)
            self._stages[stage.number] = (node, stage.title, [item.id for item in stage.items])
            for item_id in ids:
                self._items[item_id] = node.add_leaf("", data=Ref(stage.number, item_id))
        self._relabel_all()

    def _relabel_all(self) -> None:
        for number in self._stages:
            self._relabel_stage(number)
        for item_id in self._items:
            self._relabel_item(item_id)

    def _relabel_item(self, item_id: str) -> None:
        count = self._counts.get(item_id, 0)
        found = Text(f" {count:,}", style=styled(self, "checklist--findings")) if count else Text("")
        label = Text.assemble(mark(self._status[item_id], self), found, " ", self._titles[item_id])
        self._items[item_id].set_label(label)

    def _relabel_stage(self, number: int) -> None:
        node, title, ids = self._stages[number]
        done = sum(self._status[i] in DONE for i in ids)
        bad = any(self._status[i] in ("fail", "error") for i in ids)
        kind = "count-bad" if bad else ("count-done" if done == len(ids) else "count")
        count = Text(f" {done}/{len(ids)}", style=styled(self, f"checklist--{kind}"))
        node.set_label(Text.assemble(Text(f"{number} {title}", style=styled(self, "checklist--stage")), count))
