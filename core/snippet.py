"""An experiment as a TOML snippet ready to paste into recipes.toml: what the regularize ladder and the tuning
study found, as a recipe of its own (``[recipe.NAME-regularized]``), so it trains with ``--recipe`` as it is."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

from .config import Experiment
from .overrides import format_value

TRAINING_SECTIONS = ("data", "model", "train")
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def recipe_snippet(exp: Experiment, name: str, comments: list[str], changes: Mapping[str, Any]) -> str:
    """``exp`` renamed ``name``: its task and description, and the data, model and train keys that differ from their
    defaults, as inline tables (the checks table and the plans are left out). ``comments`` go first; ``changes``
    (``--set`` keys) are listed again as ``--set`` arguments for the recipe as it is."""
    lines = [f"# {c}" for c in comments]
    if changes:
        lines.append("# the same on the command line: " + " ".join(f"--set {k}={format_value(v)}"
                                                                  for k, v in changes.items()))
    lines.append(f"[recipe.{_key(name)}]")
    if exp.description:
        lines.append(f"description = {format_value(exp.description)}")
    lines.append(f"task = {format_value(exp.task)}")
    for section in TRAINING_SECTIONS:
        values = getattr(exp, section)
        defaults = type(values)()
        kept = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)
                if getattr(values, f.name) != getattr(defaults, f.name) and getattr(values, f.name) is not None}
        lines.append(f"{section} = {format_value(kept)}")
    return "\n".join(lines) + "\n"


def write_snippet(folder: Path, file: str, text: str) -> Path:
    """Written whole or not at all (a temporary file renamed)."""
    path = folder / file
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else f'"{name}"'
