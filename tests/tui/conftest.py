"""Fixtures of the app tests (helpers live in tui_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from recipe_tui.core import config
from recipe_tui.core.checks import registry
from tui_helpers import make_recipes, passing_check, raising_check


@pytest.fixture(autouse=True)
def test_check_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipes files of these tests name test-only checks (tui_helpers.EXTRA_ITEMS); the loader accepts
    only known check ids (config.CHECK_IDS), so these are known for the duration of each test."""
    monkeypatch.setattr(config, "CHECK_IDS", (*config.CHECK_IDS, "tui-test-pass", "tui-test-not-registered", "tui-test-boom"))


@pytest.fixture
def fake_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered for one test only: other tests may list the registry and must not see them."""
    monkeypatch.setitem(registry(), "tui-test-pass", passing_check)
    monkeypatch.setitem(registry(), "tui-test-boom", raising_check)


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    return make_recipes(tmp_path)
