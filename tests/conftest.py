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
