"""The package list in pyproject.toml names every package of core/ and tui/: a wheel (a non-editable install)
would otherwise miss one, though every test passes against the editable install."""
from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"recipe_tui." + ".".join(p.parent.relative_to(ROOT).parts)
             for top in ("core", "tui") for p in (ROOT / top).rglob("__init__.py")}
    data_only = {"recipe_tui.core.data.files"}  # the embedded datasets: a folder of files, no Python
    assert found == listed - data_only
    assert all((ROOT / "core" / "data" / "files" / name).is_file() for name in ("digits.csv.gz", "names.txt"))
