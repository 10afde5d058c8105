"""The sample browser in a tiny host app: keys step through samples, filters change what is shown."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console
from textual.app import App

from recipe_tui.core.audit.duplicates import find_duplicates
from recipe_tui.core.audit.labels import cross_val_probs, label_issue_candidates
from recipe_tui.core.audit.outliers import find_outliers
from recipe_tui.core.audit.scan import scan_splits
from recipe_tui.core.audit.stats import data_stats
from recipe_tui.core.audit.synthetic import planted_images
from recipe_tui.core.data import DataInfo, Splits, TensorPairs
from recipe_tui.tui.halfblock import render_image, render_tokens
from recipe_tui.tui.widgets.sample_browser import SampleBrowser

pytestmark = pytest.mark.timeout(90)


class Host(App[None]):
    def __init__(self, browser: SampleBrowser) -> None:
        super().__init__()
        self.browser = browser

    def on_mount(self) -> None:
        self.push_screen(self.browser)


@pytest.fixture(scope="module")
def planted_findings():
    p = planted_images()
    scans = scan_splits(p.splits)
    train = scans["train"]
    ok = train.finite
    probs, _ = cross_val_probs(train.feat[ok], train.y[ok], 10)
    findings = {
        "data-stats": data_stats(scans),
        "duplicates": find_duplicates(scans),
        "outliers": find_outliers(scans),
        "label-issues": {"candidates": label_issue_candidates("train", train.y[ok], probs, train.index[ok])},
    }
    return p, findings


def _plain(browser: SampleBrowser) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(browser.body())
    return console.export_text()


async def test_keys_step_through_samples_and_close():
    p = planted_images()
    browser = SampleBrowser(p.splits)
    app = Host(browser)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert browser.current.members == (("train", 0),)
        await pilot.press("right", "l", "j")
        assert browser.current.members == (("train", 3),)
        await pilot.press("left")
        assert browser.current.members == (("train", 2),)
        await pilot.press("pagedown")
        assert browser.current.members == (("train", 12),)
        await pilot.press("end")
        assert browser.current.members == (("train", 599),)
        await pilot.press("right")  # stays on the last one
        assert browser.current.members == (("train", 599),)
        await pilot.press("s")  # the next split
        assert browser.split == "val" and browser.current.members == (("val", 0),)
        text = _plain(browser)
        assert "val #0" in text and "given" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not browser


async def test_class_filter_shows_only_that_class(planted_findings):
    p, findings = planted_findings
    browser = SampleBrowser(p.splits, findings)
    async with Host(browser).run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press("c", "c", "c")  # class 0, 1, 2
        assert browser.class_filter == 2
        shown = [browser.entries[i].members[0][1] for i in range(len(browser.entries))]
        assert shown == torch.nonzero(p.splits.train.y == 2).flatten().tolist()
        await pilot.press("right")
        assert int(p.splits.train.y[browser.current.members[0][1]]) == 2
        assert "class 2" in browser.title_text().plain


async def test_filters_show_findings_in_rank_order_with_the_suggested_label(planted_findings):
    p, findings = planted_findings
    browser = SampleBrowser(p.splits, findings)
    async with Host(browser).run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert browser.available_modes() == ["all", "duplicates", "outliers", "label-issues"]
        await pilot.press("f")  # duplicates: one stop per group, members side by side
        assert browser.mode == "duplicates"
        groups = {frozenset(e.members) for e in browser.entries}
        assert groups == p.groups
        assert len(browser.current.members) == 2 and "leakage" in _plain(browser)
        await pilot.press("f")
        assert browser.mode == "outliers"
        assert {e.members[0] for e in browser.entries} == p.outliers
        await pilot.press("f")
        assert browser.mode == "label-issues"
        assert {e.members[0] for e in browser.entries} == p.label_errors
        cands = findings["label-issues"]["candidates"]
        for i, c in enumerate(cands):
            assert browser.current.members[0] == (c["split"], c["index"])
            text = _plain(browser)
            assert "suggested" in text and f"given {c['given']}" in text
            await pilot.press("right")
        await pilot.press("c")  # label issues of class 0 only
        assert all(e.label == 0 for e in browser.entries)
        await pilot.press("f")  # wraps around to all samples
        assert browser.mode == "all"


async def test_loss_filter_and_sequences():
    x = torch.tensor([[0, 1, 2, 0], [0, 2, 0, 0]])
    y = torch.tensor([[1, 2, 0, -1], [2, 0, -1, -1]])
    info = DataInfo(kind="sequence", input_shape=(4,), num_classes=3, vocab=".ab")
    splits = Splits(TensorPairs(x, y), TensorPairs(x, y), info)
    losses = {"split": "val", "top_losses": [{"split": "val", "index": 1, "loss": 2.5},
                                              {"split": "val", "index": 0, "loss": 0.5}]}
    browser = SampleBrowser(splits, {"losses": losses}, mode="losses")
    async with Host(browser).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert browser.mode == "losses" and browser.current.members == (("val", 1),)
        text = _plain(browser)
        assert ".b··" in text and "loss 2.5" in text and "targets b." in text
        await pilot.press("right")
        assert browser.current.members == (("val", 0),)


def test_half_blocks_put_two_pixel_rows_in_each_line_and_scale_to_the_width():
    img = np.zeros((1, 4, 2))
    img[0, 0, 0] = 1.0  # top-left white
    img[0, 3, 1] = float("nan")  # a bad pixel shows magenta
    text = render_image(img)
    assert text.plain == "▀▀\n▀▀"
    first = text.spans[0].style
    assert first.color.triplet == (255, 255, 255) and first.bgcolor.triplet == (0, 0, 0)
    assert text.spans[-1].style.bgcolor.triplet == (255, 0, 255)
    wide = render_image(np.random.rand(3, 16, 16), width=8)  # colour, shrunk to 8 columns × 4 lines
    assert wide.plain.split("\n") == ["▀" * 8] * 4
    assert render_tokens([0, 1, 7], ".ab").plain == ".a⟨7⟩"


def _brightest(browser: SampleBrowser) -> int:
    """The brightest grey level drawn in the browser's view (0–255)."""
    console = Console(width=200, color_system="truecolor", file=io.StringIO())
    segments = console.render(browser.body(), console.options)
    levels = [c.triplet[0] for s in segments if s.text == "▀" and s.style
              for c in (s.style.color, s.style.bgcolor) if c is not None and c.triplet is not None]
    return max(levels)


async def test_one_mis_scaled_sample_does_not_turn_the_others_black():
    digits = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # values in [0, 1]
    digits[7] *= 16  # one sample that skipped normalisation
    labels = torch.arange(40) % 4
    info = DataInfo(kind="image", input_shape=(1, 8, 8), num_classes=4)
    splits = Splits(TensorPairs(digits[:30], labels[:30]), TensorPairs(digits[30:], labels[30:]), info)
    findings = {"data-stats": data_stats(scan_splits(splits))}  # its range: [0, 16]
    browser = SampleBrowser(splits, findings)
    async with Host(browser).run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert browser.current.members == (("train", 0),)
        lo, hi = browser.view_range
        assert 0.0 <= lo < 0.05 and 0.9 < hi <= 1.0  # this view's 1st–99th percentile, not the data's 16
        assert _brightest(browser) >= 230  # the old scale (data max 16) drew it below 16/255
        text = _plain(browser)
        assert "values 0.0" in text and "· data " in text and "… 16\n" in text
        await pilot.press("end")
        browser.position = 7
        browser.refresh_view()
        assert browser.view_range[1] > 10 and _brightest(browser) >= 230
        assert "… 16 · data" in _plain(browser)  # its own range says it is out of scale
