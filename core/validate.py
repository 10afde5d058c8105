"""Strict validation of TOML-shaped data against frozen dataclasses: keys, types, ranges, line numbers.

Knows nothing about recipes: ``core.config`` describes the schema, this module enforces it. Every
error is a ``ConfigError`` whose message is one sentence: ``file:line: key.path: what is wrong``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KeyPath = tuple  # of str (table keys) and int (1-based positions in arrays of tables)
INT64_MAX = 2**63 - 1
MAX_STEPS = 1_000_000_000
MAX_BATCH = 2**20
MAX_NESTING = 32  # levels of arrays/tables inside a value (kwargs): deeper would exhaust recursion later


class ConfigError(ValueError):
    """Bad recipes file or override; the message is meant for the user as is."""


# ----------------------------------------------------------------------------- declared ranges


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers; open ends are excluded."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = self.lo < value if self.lo_open else self.lo <= value
        below = value < self.hi if self.hi_open else value <= self.hi
        return above and below

    def __str__(self) -> str:
        if isinstance(self.lo, int) and isinstance(self.hi, int) and not (self.lo_open or self.hi_open):
            return f"{_num(self.lo)}…{_num(self.hi)}"
        return f"{'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"


def ranged(default: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A dataclass field whose value must lie in [lo, hi] (ends excluded where open); checked at load."""
    return field(default=default, metadata={"range": Range(lo, hi, lo_open, hi_open)})


def ranged_list(default: list[Any], lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A list field whose every value must lie in [lo, hi] (ends excluded where open); checked at load."""
    return field(default_factory=lambda: list(default), metadata={"range": Range(lo, hi, lo_open, hi_open)})


def _num(v: float) -> str:
    if v == INT64_MAX:
        return "2^63-1"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        v = int(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:g}"


# ----------------------------------------------------------------------------- building dataclasses


def build(cls: type, body: Any, path: KeyPath, loc: "Locator") -> Any:
    """``cls(**body)`` after checking keys (with a "did you mean"), types, ranges and required keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    check_keys(body, set(fields), path, loc)
    values = {}
    for key, raw in body.items():
        value = typed(raw, hints[key], path + (key,), loc)
        if nesting(value) > MAX_NESTING:
            raise loc.error(path + (key,), f"nested more than {MAX_NESTING} levels deep")
        check_number(value, fields[key].metadata.get("range"), path + (key,), loc)
        values[key] = value
    for name, f in fields.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise loc.error(path, f"missing required key '{name}'")
    return cls(**values)


def check_number(value: Any, allowed: Range | None, path: KeyPath, loc: "Locator") -> None:
    """NaN and ±inf are refused everywhere; a declared range is enforced (on every value of a list)."""
    if isinstance(value, list) and allowed is not None:
        for n, v in enumerate(value, start=1):
            check_number(v, allowed, path + (n,), loc)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise loc.error(path, f"must be a finite number{f' in {allowed}' if allowed else ''}, got {value}")
    if allowed is not None and value not in allowed:
        raise loc.error(path, f"must be in {allowed}, got {_shown(value)}")


def plain_values(section: Any) -> dict[str, Any]:
    """A dataclass's values as a raw table, without the keys left at None (to build a changed copy with ``build``)."""
    return {k: v for k, v in dataclasses.asdict(section).items() if v is not None}


def _shown(value: float) -> str:
    if isinstance(value, int):
        digits = len(str(abs(value)))
        return f"{value:,}" if digits <= 20 else f"a {digits}-digit {'negative ' * (value < 0)}integer"
    return repr(value)


def nesting(value: Any) -> int:
    """How many levels of arrays and tables ``value`` holds (counted without recursion)."""
    depth, level = 0, [value]
    while True:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            return depth
        depth += 1
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]


def typed(value: Any, hint: Any, path: KeyPath, loc: "Locator") -> Any:
    ok, coerced = _coerce(value, hint)
    if not ok:
        raise loc.error(path, f"expected {type_name(hint)}, got {describe(value)}")
    return coerced


def describe(value: Any) -> str:
    """``type repr`` of a value for a message, shortened: a value can be a whole table or 5,000 digits."""
    text = repr(value)
    kind = {dict: "a table", list: "an array"}.get(type(value), type(value).__name__)
    return f"{kind} {text if len(text) <= 60 else text[:57] + '…'}"


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, v = _coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is Any:
        return True, value
    if origin is dict or hint is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else value
    if origin is list:
        (arg,) = typing.get_args(hint)
        if not isinstance(value, list):
            return False, value
        items = [_coerce(v, arg) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if hint in (bool, str):
        return isinstance(value, hint), value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (False, value) if hint in (int, float) else (isinstance(value, hint), value)
    if hint is int:
        return isinstance(value, int), value
    if hint is float:
        try:
            return True, float(value)
        except OverflowError:  # an integer beyond any float: kept, so that its range check reports it
            return True, value
    return isinstance(value, hint), value


def type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is dict or hint is dict:
        return "a table"
    if typing.get_origin(hint) is list:
        inner = type_name(typing.get_args(hint)[0])
        return "an array of " + {"a table": "tables", "a string": "strings", "an integer": "integers"}.get(inner, inner)
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def check_keys(body: Any, allowed: set[str], path: KeyPath, loc: "Locator") -> None:
    if not isinstance(body, dict):
        raise loc.error(path, f"expected a table, got {describe(body)}")
    for key in body:
        if key not in allowed:
            raise loc.error(path + (key,), f"unknown key{suggest(key, allowed)} (valid: {', '.join(sorted(allowed))})")


def tables(value: Any, path: KeyPath, loc: "Locator", what: str) -> list[dict[str, Any]]:
    """``value`` if it is an array of tables (``[[what]]``), else a ``ConfigError``."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise loc.error(path, f"expected [[{what}]] tables, got {describe(value)}")
    return value


def suggest(word: str, options: Any) -> str:
    """``; did you mean 'x'?`` for the closest option, or nothing."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(path: KeyPath) -> str:
    """``recipe."resnet50_v1.5".train.lr``, ``stage[2].item[3].check`` (positions count from 1)."""
    out = ""
    for k in path:
        if isinstance(k, int):
            out += f"[{k}]"
        else:
            out += ("." if out else "") + (k if _BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False))
    return out


# ----------------------------------------------------------------------------- line numbers


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]#]+?)\s*(\]\]?)\s*(?:#.*)?$")


class Locator:
    """Best-effort line numbers for key paths (tomllib reports lines only for syntax errors).

    Table headers are read once; ``[[a]]`` headers are counted, so ``("stage", 2, "item", 3, "id")``
    finds the ``id`` line of the third ``[[stage.item]]`` after the second ``[[stage]]``.
    """

    def __init__(self, path: Path | str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.headers = self._headers()

    def _headers(self) -> list[tuple[int, KeyPath]]:
        found: list[tuple[int, KeyPath]] = [(-1, ())]  # the root table starts before line 1
        counts: dict[KeyPath, int] = {}
        for i, line in enumerate(self.lines):
            m = _HEADER.match(line)
            keys = header_keys(m.group(2)) if m and len(m.group(1)) == len(m.group(3)) else None
            if not keys:
                continue
            path: KeyPath = ()
            for j, k in enumerate(keys):
                path += (k,)
                if path in counts and not (j == len(keys) - 1 and m.group(1) == "[["):
                    path += (counts[path],)  # inside the latest element of an array of tables
            if m.group(1) == "[[":
                counts[path] = counts.get(path, 0) + 1
                path += (counts[path],)
            found.append((i, path))
        return found

    def line_of(self, keypath: KeyPath) -> int | None:
        best = max((n for n, (_, p) in enumerate(self.headers) if keypath[:len(p)] == p),
                   key=lambda n: len(self.headers[n][1]))
        start, table = self.headers[best]
        end = self.headers[best + 1][0] if best + 1 < len(self.headers) else len(self.lines)
        names = [k for k in keypath[len(table):] if isinstance(k, str)]
        header_line = start + 1 if start >= 0 else None
        if not names:
            return header_line
        first = re.compile(r"^\s*" + _key_pattern(names[0]) + r"\s*[=.]")
        hit = next((i for i in range(start + 1, end) if first.search(self.lines[i])), None)
        if hit is None:
            return header_line
        last = re.compile(r"(^|[\s{,.])" + _key_pattern(names[-1]) + r"\s*=")
        return next((i + 1 for i in range(hit, end) if last.search(self.lines[i])), hit + 1) if len(names) > 1 else hit + 1

    def where(self, keypath: KeyPath) -> str:
        line = self.line_of(keypath) if self.lines else None
        return f"{self.path}:{line}: " if line else f"{self.path}: "

    def error(self, keypath: KeyPath, text: str) -> ConfigError:
        """``file:line: key.path: text.``"""
        return ConfigError(f"{self.where(keypath)}{dotted(keypath) + ': ' if keypath else ''}{text}.")


def header_keys(inner: str) -> tuple[str, ...] | None:
    """The keys of a table header's inside (``recipe."a.b".train`` → recipe, a.b, train), or None."""
    try:
        node: Any = tomllib.loads(f"{inner} = 0")
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    keys: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        keys.append(key)
    return tuple(keys)


def _key_pattern(key: str) -> str:
    """A TOML key as it may be written: bare, "quoted" or 'literal'."""
    k = re.escape(key)
    return f"(?:{k}|\"{re.escape(key.replace(chr(92), chr(92) * 2))}\"|'{k}')"

