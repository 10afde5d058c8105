"""The run log: follows only at the bottom, re-wraps on resize, folds routine lines, filters."""
from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from recipe_tui.tui.widgets.filter_bar import FilterBar, FilterRequested
from recipe_tui.tui.widgets.run_log import KEEP, RunLog

pytestmark = pytest.mark.timeout(60)


class Host(App[None]):
    CSS = "RunLog { height: 1fr; } FilterBar { height: 1; }"

    def compose(self) -> ComposeResult:
        yield RunLog(id="log")
        yield FilterBar(id="filter")

    def on_filter_requested(self, message: FilterRequested) -> None:
        self.query_one(FilterBar).open(message.target, message.text, message.placeholder)


async def test_follows_new_lines_only_while_at_the_bottom():
    app = Host()
    async with app.run_test(size=(60, 12)) as pilot:
        log = app.query_one(RunLog)
        for i in range(50):
            log.add(f"line {i}")
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y > 0  # followed
        log.scroll_to(y=5, animate=False, immediate=True)
        log.add("a warning while the user reads", "warning")
        log.add("checkpoint at step 100", key="checkpoint")
        await pilot.pause()
        assert log.scroll_offset.y == 5  # stayed where the user was reading
        log.scroll_end(animate=False, immediate=True)
        log.add("line after scrolling back down")
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y and log.lines_text()[-1].endswith("line after scrolling back down")


async def test_lines_rewrap_when_the_pane_changes_width():
    app = Host()
    async with app.run_test(size=(40, 20)) as pilot:
        log = app.query_one(RunLog)
        words = " ".join(f"word{i}" for i in range(30))
        log.add(words)
        await pilot.pause()
        narrow = log.lines_text()
        assert len(narrow) > 4 and all(len(line.rstrip()) <= 39 for line in narrow)
        await pilot.resize_terminal(160, 20)
        await pilot.pause()
        wide = log.lines_text()
        assert len(wide) < len(narrow) and " ".join(" ".join(wide).split()).endswith(words)


async def test_routine_lines_fold_into_one_updating_line_and_warnings_stay():
    app = Host()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(RunLog)
        log.add("training started")
        for step in range(100, 1100, 100):
            log.add(f"step {step}: val loss {1 / step:.4g}", key="eval")
            log.add(f"checkpoint at step {step}", key="checkpoint")
        log.add("loss spiked at step 1000", "warning")
        for step in range(1100, 1400, 100):
            log.add(f"checkpoint at step {step}", key="checkpoint")
        await pilot.pause()
        text = log.lines_text()
        assert len(text) == 5, text  # started, eval, checkpoint, the warning, checkpoint
        assert text[1].rstrip().endswith("step 1000: val loss 0.001 (×10)")
        assert text[2].rstrip().endswith("checkpoint at step 1000 (×10)")
        assert text[3].rstrip().endswith("loss spiked at step 1000")
        assert text[4].rstrip().endswith("checkpoint at step 1300 (×3)")
        assert len(log.entries) == 5


async def test_slash_filters_the_log_and_escape_clears_it():
    app = Host()
    async with app.run_test(size=(80, 20)) as pilot:
        log = app.query_one(RunLog)
        for i in range(20):
            log.add(f"step {i}")
        log.add("data-stats: WARN NaN in 3 samples", "warning", detail="Traceback: the NaN rows")
        log.focus()
        await pilot.press("slash", "n", "a", "n")
        await pilot.pause()
        assert log.filter_text == "nan" and len(log.lines_text()) == 1 and "NaN in 3 samples" in log.lines_text()[0]
        await pilot.press("enter")  # keep it; the log has the focus again
        assert log.has_focus and not app.query_one(FilterBar).display
        await pilot.press("enter")  # unfold the details of what is shown
        await pilot.pause()
        assert any("Traceback: the NaN rows" in line for line in log.lines_text())
        await pilot.press("escape")
        await pilot.pause()
        assert log.filter_text == "" and len(log.lines_text()) > 20


async def test_the_log_keeps_the_newest_entries():
    app = Host()
    async with app.run_test(size=(80, 10)) as pilot:
        log = app.query_one(RunLog)
        for i in range(KEEP + 50):
            log.add(f"entry {i}")
        await pilot.pause()
        text = log.lines_text()
        assert len(text) == KEEP and text[0].rstrip().endswith("entry 50") and text[-1].rstrip().endswith(f"entry {KEEP + 49}")
