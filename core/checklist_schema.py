"""The checklist's schema: ``[[stage]]`` tables of ``[[stage.item]]``s, validated strictly (core.config loads them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .validate import KeyPath, Locator, build, check_keys, suggest, tables, typed


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    check: str | None = None  # automated: the check id (one of CHECK_IDS); manual items have guidance only
    guidance: str = ""


@dataclass(frozen=True)
class Stage:
    number: int
    title: str
    items: tuple[Item, ...] = ()


def load_stages(raw: Any, loc: Locator, check_ids: tuple[str, ...]) -> tuple[Stage, ...]:
    """The ``[[stage]]`` tables: titles, items with unique ids, and ``check`` naming one of ``check_ids``."""
    if not raw:
        raise loc.error(("stage",), "expected [[stage]] tables (or none: the recipe's own checklist)")
    seen: dict[str, int] = {}
    stages = []
    for n, body in enumerate(tables(raw, ("stage",), loc, "stage"), start=1):
        path: KeyPath = ("stage", n)
        check_keys(body, {"title", "item"}, path, loc)
        if "title" not in body:
            raise loc.error(path, "missing required key 'title'")
        title = _text(body["title"], path + ("title",), loc)
        items = []
        for m, item_body in enumerate(tables(body.get("item", []), path + ("item",), loc, "stage.item"), start=1):
            item = build(Item, item_body, path + ("item", m), loc)
            _text(item.id, path + ("item", m, "id"), loc)
            _text(item.title, path + ("item", m, "title"), loc)
            if item.id in seen:
                raise loc.error(path + ("item", m, "id"), f"duplicate item id '{item.id}' (also in stage {seen[item.id]})")
            if item.check is not None and item.check not in check_ids:
                raise loc.error(path + ("item", m, "check"), f"unknown check '{item.check}'{suggest(item.check, check_ids)}"
                                " (leave it out for a manual item)")
            seen[item.id] = n
            items.append(item)
        stages.append(Stage(number=n, title=title, items=tuple(items)))
    return tuple(stages)


def _text(value: Any, path: KeyPath, loc: Locator) -> str:
    """A non-empty string."""
    text = typed(value, str, path, loc)
    if not text.strip():
        raise loc.error(path, "must not be empty")
    return text
