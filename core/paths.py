"""Every path the tool writes stays under the runs dir: names from a recipes file or a run dir cannot
point elsewhere (an absolute path, ``..``, a symlinked name)."""
from __future__ import annotations

from pathlib import Path

from .config import ConfigError


def inside(root: str | Path, *parts: str) -> Path:
    """``root/parts…``, refused (``ConfigError``) unless it resolves to a place under ``root``."""
    root = Path(root)
    path = root.joinpath(*parts)
    base = root.resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise ConfigError(f"{path}: refusing to write outside the runs dir {root} (it resolves to {resolved}).")
    return path
