"""Checklist state persistence: ticks and last results survive a re-open; bad files never crash or vanish."""
from __future__ import annotations

import json
import math

import pytest

from recipe_tui.core.checklist_state import STATE_FILE, ChecklistState, state_path
from recipe_tui.core.events import CheckResult

pytestmark = pytest.mark.timeout(30)


def test_ticks_and_results_round_trip(tmp_path):
    state = ChecklistState.load(tmp_path, "digits-mlp")
    assert state.ticks == set() and state.results == {} and state.warning == ""
    assert state.toggle_tick("lr-find") is True
    state.set_tick("capacity", True)
    assert state.toggle_tick("capacity") is False
    res = CheckResult("init-loss", "warn", "loss at init 2.9, expected 2.30", {"loss": 2.9, "expected": 2.302},
                      "Init well.")
    state.record("init-loss", res, when=123.0)
    state.save()

    again = ChecklistState.load(tmp_path, "digits-mlp")
    assert again.ticks == {"lr-find"}
    assert again.result("init-loss") == CheckResult("init-loss", "warn", "loss at init 2.9, expected 2.30",
                                                    {"loss": 2.9, "expected": 2.302}, "Init well.")
    assert again.result_time("init-loss") == 123.0
    assert again.result("seed") is None
    assert state_path(tmp_path, "digits-mlp") == tmp_path / "digits-mlp" / STATE_FILE
    assert [p.name for p in (tmp_path / "digits-mlp").iterdir()] == [STATE_FILE]  # no temp file left behind


def test_metrics_are_made_json_safe_and_bounded(tmp_path):
    class FakeTensor:  # anything with .tolist(), as torch tensors and numpy arrays have
        def tolist(self):
            return [[1.0, 2.0], [3.0, float("nan")]]

    state = ChecklistState.load(tmp_path, "r")
    huge = list(range(100_000))
    state.record("batch-view", CheckResult("batch-view", "pass", "ok",
                                           {"x": FakeTensor(), "inf": math.inf, "huge": huge, "obj": object(),
                                            "nested": {"a": (1, 2)}}))
    state.save()
    doc = json.loads(state.path.read_text())  # strict JSON: would fail on NaN/Infinity
    metrics = doc["results"]["batch-view"]["metrics"]
    assert metrics["x"] == [[1.0, 2.0], [3.0, "nan"]]
    assert metrics["inf"] == "inf"
    assert metrics["huge"].startswith("<") and "not kept" in metrics["huge"]
    assert metrics["obj"].startswith("<object object")
    assert metrics["nested"] == {"a": [1, 2]}


def test_unreadable_file_is_moved_aside_with_a_warning(tmp_path):
    path = state_path(tmp_path, "r")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    state = ChecklistState.load(tmp_path, "r")
    assert state.ticks == set()
    assert "unreadable" in state.warning
    assert (path.parent / (STATE_FILE + ".bad")).read_text() == "{not json"
    state.set_tick("tune", True)
    state.save()
    assert ChecklistState.load(tmp_path, "r").ticks == {"tune"}
