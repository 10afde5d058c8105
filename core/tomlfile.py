"""Reading a TOML file the user named: every failure is a ``ConfigError`` naming the file and what is wrong.

Covers what tomllib leaves to its caller: a directory or device instead of a file, no permission,
UTF-16 and binary files, a UTF-8 byte-order mark (accepted: it is valid UTF-8 text that Windows
editors write), nesting deep enough to exhaust Python's recursion limit, and syntax errors at the
end of a truncated file (tomllib says only "at end of document").
"""
from __future__ import annotations

import codecs
import re
import stat
from pathlib import Path
from typing import Any

from .validate import ConfigError, tomllib

MAX_BYTES = 16 * 2**20  # a recipes file is a few kB; this refuses a checkpoint or data file given by mistake
_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"
_HEADER_LINE = re.compile(r"^\s*\[\[?[^\[\]]+\]\]?\s*(#.*)?$")


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """(the parsed document, its text) of ``path``."""
    text = read_text(path)
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(syntax_error(path, text, str(exc))) from None
    except RecursionError:
        line = _deepest_line(text)
        raise ConfigError(f"{path}:{line}: arrays or inline tables nested too deeply for the TOML reader "
                          "(hundreds of levels); a recipes file needs a few.") from None
    except ValueError as exc:  # an integer of more than 4,300 digits: Python's int-parsing limit
        line = next((i for i, s in enumerate(text.splitlines(), 1) if re.search(r"[0-9a-fA-F_]{1000}", s)), None)
        what = "holds a number with thousands of digits, more than a TOML reader accepts" if "digits" in str(exc) else f"a value TOML cannot read ({exc})"
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {what}.") from None


def read_text(path: Path) -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{path}: is a directory, not a recipes file.")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: is not a regular file (a device, pipe or socket), not a recipes file.")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: is {info.st_size / 2**20:,.0f} MiB, too large for a recipes file "
                              f"(at most {MAX_BYTES // 2**20} MiB): is it the right file?")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such recipes file.") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read it: permission denied.") from None
    except OSError as exc:  # a broken symlink loop, an I/O error, a path through a file …
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}.") from None
    return decode(path, data)


def decode(path: Path, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _looks_utf16(data):
        raise ConfigError(f"{path}: is UTF-16 (or UTF-32) text, but TOML files are UTF-8: save it as UTF-8 "
                          f"(e.g. iconv -f UTF-16 -t UTF-8).")
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: is a binary file, not TOML text (it holds NUL bytes).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): a "
                          "binary file, or text in another encoding such as Latin-1; save it as UTF-8.") from None


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: ASCII text with a NUL byte beside every character."""
    head = data[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    return len(head) >= 4 and max(even, odd) >= len(head) // 4 and min(even, odd) <= len(head) // 40


def syntax_error(path: Path, text: str, message: str) -> str:
    """One sentence for a tomllib error: the line, the column and what the line reads."""
    lines = text.splitlines()
    m = _POSITION.search(message)
    if m:
        line, col = int(m.group(1)), int(m.group(2))
        source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        reads = f" of {_short(source)}" if source else ""
        return f"{path}:{line}: TOML syntax error at column {col}{reads}: {_lower(message[:m.start()])}."
    body = message[:-len(_AT_END)] if message.endswith(_AT_END) else message
    last = max((i for i, s in enumerate(lines, 1) if s.strip()), default=1)
    if body.startswith("Cannot"):  # a key or table defined twice, found on the last line
        return f"{path}:{last}: TOML syntax error on the last line ({_short(lines[last - 1].strip())}): {_lower(body)}."
    header = max((i for i, s in enumerate(lines, 1) if _HEADER_LINE.match(s)), default=None)
    before = (f"the last complete table header is {lines[header - 1].split('#')[0].strip()} on line {header}"
              if header else "no table header is complete before it")
    return (f"{path}:{last}: TOML syntax error at the end of the file ({_lower(body)}): the file looks "
            f"truncated; {before}.")


def _short(source: str) -> str:
    return repr(source if len(source) <= 60 else source[:57] + "…")


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _deepest_line(text: str) -> int:
    depth, deepest, line_of_deepest = 0, 0, 1
    for i, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += (ch in "[{") - (ch in "]}")
            if depth > deepest:
                deepest, line_of_deepest = depth, i
    return line_of_deepest
