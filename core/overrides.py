"""What the app's overrides form needs: every key ``--set`` can change, with its current value, and the parse and
type check of one entry, by the same code as ``--set`` (``config.apply_overrides``)."""
from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from typing import Any

from .config import OPTIMIZERS, SCHEDULES, SECTIONS, TASKS, Experiment, apply_overrides

CHOICES: dict[str, tuple[str, ...]] = {"task": TASKS, "train.optimizer": OPTIMIZERS, "train.schedule": SCHEDULES}
_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class OverridableKey:
    key: str  # as --set writes it: "train.lr"
    value: Any  # the current value (typed)
    text: str  # the current value as --set text: "0.0003", "true", "\"adam\"", "{ width = 64 }"; "" for none
    kind: str  # int | float | bool | str | table | array (a key that may be unset ends in "?": "int?")
    range: str = ""  # the declared range, e.g. "(0, 10]"
    choices: tuple[str, ...] = ()


def overridable_keys(exp: Experiment) -> list[OverridableKey]:
    """Every key of the experiment that ``--set`` accepts, in the order of the README's key table."""
    keys = [OverridableKey("task", exp.task, format_value(exp.task), "str", choices=TASKS),
            OverridableKey("description", exp.description, format_value(exp.description), "str")]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        values = getattr(exp, section)
        for f in dataclasses.fields(cls):
            key, value = f"{section}.{f.name}", getattr(values, f.name)
            allowed = f.metadata.get("range")
            keys.append(OverridableKey(key, value, format_value(value), _kind(hints[f.name]),
                                       str(allowed) if allowed is not None else "", CHOICES.get(key, ())))
    return keys


def parse_override(exp: Experiment, key: str, text: str) -> tuple[Experiment, Any]:
    """(the experiment with ``key`` set from ``text``, the typed value); a ``ConfigError`` with ``--set``'s sentence
    when the key or the value is not allowed."""
    new = apply_overrides(exp, [f"{key}={text}"])
    return new, value_at(new, key)


def value_at(exp: Experiment, key: str) -> Any:
    node: Any = exp
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    return node


def format_value(value: Any) -> str:
    """A value as ``--set`` text (TOML), so that ``parse_override(exp, key, format_value(v))`` gives ``v`` back."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        inner = ", ".join(f"{k if _BARE.fullmatch(k) else json.dumps(k)} = {format_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _kind(hint: Any) -> str:
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base) or base
    name = {int: "int", float: "float", bool: "bool", str: "str", dict: "table", list: "array"}.get(origin, "str")
    return name + ("?" if optional else "")
