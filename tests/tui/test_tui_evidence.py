"""Evidence as tables, bars, sparklines and a confusion grid, not flattened dicts and ``[51 values]``."""
from __future__ import annotations

import math

import pytest

from recipe_tui.core.checks import Verdict, registry
from recipe_tui.tui.app import RecipeApp
from recipe_tui.tui.evidence import SPARK, render_evidence, sparkline_text
from recipe_tui.tui.widgets.checklist import Checklist

from tui_helpers import detail_text, plain, wait_for

CURVE = [2.3 * math.exp(-k / 10) for k in range(51)]
RICH_METRICS = {
    "loss": 0.0769,
    "curve": CURVE,
    "splits": {"train": {"count": 1438, "shapes": {"1x8x8": 1438}, "channels": {"mean": [0.305], "max": [1.0]}},
               "val": {"count": 359, "shapes": {"1x8x8": 359}, "channels": {"mean": [0.307], "max": [1.0]}}},
    "candidates": [{"split": "train", "index": i, "given": i % 10, "suggested": (i + 1) % 10, "score": i / 100}
                   for i in range(12)],
    "classes": ["zero", "one", "two"],
    "balance": {"train": {"counts": [150, 75, 15]}, "val": {"counts": [30, 15, 3]}},
    "confusion": [[50, 2, 0], [9, 40, 1], [0, 4, 30]],
    "leaks": {},
}


def test_metrics_render_as_tables_bars_sparklines_and_a_confusion_grid():
    text = plain(render_evidence(RICH_METRICS, width=100), width=100)
    assert "values]" not in text and "{" not in text and "=" not in text
    # a sparkline of the curve, with its first, last, min and max
    assert any(ch in text for ch in SPARK) and "2.3 → 0.0155 (min 0.0155, max 2.3, 51 values)" in text
    # a dict of dicts is a table: one column per split, nested values compact
    header = next(line for line in text.splitlines() if "train" in line and "val" in line and "count" not in line)
    assert header.index("train") < header.index("val")
    assert "1x8x8 1,438" in text and "mean 0.305 · max 1" in text
    # a list of dicts: a table of the first rows, then how many more
    assert "suggested" in text and "… and 4 more" in text
    # per-split counts beside class names: bars, the longest for the largest class
    bars = {line.split()[0]: line.count("█") for line in text.splitlines() if "█" in line}
    assert bars["zero"] > bars["one"] > bars["two"] > 0
    # the confusion matrix: a grid and the most confused pairs, largest first
    assert "given╲pred" in text and "most confused (given → predicted): one → zero (9), two → one (4)" in text
    assert "leaks" in text and "none" in text


def test_curves_of_one_length_share_a_scale():
    flat = sparkline_text([2.3] * 20, 60, (0.0, 2.3)).plain.split()[0]
    falling = sparkline_text([2.3 - 0.1 * k for k in range(20)], 60, (0.0, 2.3)).plain.split()[0]
    assert set(flat) == {"█"} and falling[0] == "█" and falling[-1] in "▁▂"


@pytest.mark.timeout(90)
async def test_the_item_pane_shows_evidence_readably(recipes, tmp_path, monkeypatch):
    monkeypatch.setitem(registry(), "tui-test-pass", lambda ctx: Verdict("pass", "rich evidence", RICH_METRICS))
    app = RecipeApp(file=recipes, runs=tmp_path / "runs")
    async with app.run_test(size=(160, 50)) as pilot:
        checklist = app.query_one(Checklist)
        for item_id in ("tui-pass", "class-balance"):
            checklist.select_item(item_id)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.home.jobs.current is None and checklist.status(item_id) == "pass",
                           timeout=60, what=item_id)
        checklist.select_item("tui-pass")
        await wait_for(pilot, lambda: "rich evidence" in detail_text(app), what="the detail")
        text = detail_text(app)
        assert "values]" not in text and "given╲pred" in text and any(ch in text for ch in SPARK)
        checklist.select_item("class-balance")  # the real check: digits' class counts as bars
        await wait_for(pilot, lambda: "class-balance" == app.query_one("#detail").border_title, what="the detail")
        text = detail_text(app)
        rows = [line for line in text.splitlines() if "█" in line]
        assert len(rows) >= 10 and all(line.split()[0].isdigit() for line in rows)
