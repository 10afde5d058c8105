"""Fixtures of the app tests (helpers live in tui_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from recipe_tui.core.checks import registry
from tui_helpers import _passing, _raising, make_recipes


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered for one test only: other tests may list the registry and must not see them."""
    monkeypatch.setitem(registry(), "tui-test-pass", _passing)
    monkeypatch.setitem(registry(), "tui-test-boom", _raising)


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    return make_recipes(tmp_path)
