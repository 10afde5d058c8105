"""Shared test set-up: one torch thread (CI has 2 cores and runs tests beside the app)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def shipped():
    """The shipped recipes file."""
    from recipe_tui.core.config import load_recipes, shipped_recipes_path

    return load_recipes(shipped_recipes_path())


@pytest.fixture
def steps_at_once(monkeypatch):
    """Step events emitted at their log step, not gathered for up to ``step_log.FLUSH_S`` (a performance measure):
    for tests that stop or pause a run from its emit when they see a given step."""
    from recipe_tui.core import step_log

    monkeypatch.setattr(step_log, "FLUSH_S", 0.0)
