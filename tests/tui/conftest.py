"""Fixtures of the app tests (helpers live in tui_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from recipe_tui.core.checks import CheckSpec, registry
from tui_helpers import make_recipes, passing_check, raising_check


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered for one test only: other tests may list the registry and must not see them."""
    monkeypatch.setitem(registry(), "tui-test-pass", CheckSpec("tui-test-pass", passing_check))
    monkeypatch.setitem(registry(), "tui-test-boom", CheckSpec("tui-test-boom", raising_check))


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    return make_recipes(tmp_path)
