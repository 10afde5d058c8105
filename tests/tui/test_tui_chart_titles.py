"""Chart titles at every width: numbers written short, words dropped before numbers, other runs' labels kept."""
from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from recipe_tui.core.events import Eval, RunStarted, Step
from recipe_tui.tui import chart_titles
from recipe_tui.tui.run_state import replay
from recipe_tui.tui.ticks import fmt_value

TRAIN, VAL, OTHER = (80, 120, 250), (250, 150, 50), (230, 100, 210)


def plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def run(loss: float, val: float, accuracy: float):
    return replay([RunStarted(run_dir="a", recipe="x", device="cpu", steps=3000), Step(step=10, loss=2.3, lr=3e-3),
                   Eval(step=100, split="val", loss=0.5, metrics={"accuracy": 0.981}),
                   Step(step=3000, loss=loss, lr=3e-3, grad_norm=7.551e-4),
                   Eval(step=3000, split="val", loss=val, metrics={"accuracy": accuracy})])


def test_numbers_in_titles_are_short_and_keep_their_significant_digits():
    assert [fmt_value(v) for v in (5.017e-05, 0.0003951, 0.001234, 0.1393, 12345, 2.5e7, -2.5e-7, 0.0, None)] == \
        ["5.017e-5", "3.951e-4", "0.001234", "0.1393", "12345", "2.5e7", "-2.5e-7", "0", "–"]
    assert [fmt_value(v, 3) for v in (5.017e-05, 0.1393, 0.9749)] == ["5.02e-5", "0.139", "0.975"]


def test_titles_drop_words_before_numbers_as_the_chart_narrows():
    state = run(5.017e-05, 0.1393, 0.9749)
    loss = chart_titles.loss_titles(state, TRAIN, VAL, [])
    metric = chart_titles.metric_titles(state, [])
    assert plain(chart_titles.fit(loss, 60)) == "loss ━ train 5.017e-5 ━ val 0.1393"
    assert plain(chart_titles.fit(loss, 36)) == "━ train 5.02e-5 ━ val 0.139"  # a chart at 120 columns
    assert plain(chart_titles.fit(loss, 24)) == "━ 5.02e-5 ━ 0.139"  # at 80 columns
    assert plain(chart_titles.fit(metric, 60)) == "val accuracy 0.9749 · best 0.981 @ 100"
    assert plain(chart_titles.fit(metric, 42)) == "accuracy 0.975 · best 0.981 @ 100"
    assert plain(chart_titles.fit(metric, 36)) == "accuracy 0.975 · best 0.981"
    assert plain(chart_titles.fit(metric, 24)) == "0.975 · best 0.981"
    for width in (24, 36, 60):  # what is chosen fits inside the border
        for titles in (loss, metric, chart_titles.grad_titles(state)):
            assert cell_len(plain(chart_titles.fit(titles, width))) <= width - chart_titles.BORDER
    # The strokes keep their colours: they say which line is which once the words are gone.
    assert f"rgb{TRAIN}".replace(" ", "") in chart_titles.fit(loss, 24).replace(" ", "")
    assert chart_titles.fit(chart_titles.subtitles(True, None, "log (auto)"), 24) == "ema · log"
    assert chart_titles.fit(chart_titles.subtitles(True, 1500, "log (auto)"), 60) == "smoothed · from step 1.5k · log (auto)"


def test_other_runs_keep_their_labels_in_every_variant():
    state, other = run(0.2, 0.25, 0.9), run(0.3, 0.35, 0.85)
    loss = chart_titles.loss_titles(state, TRAIN, VAL, [("lr 1e-3", other, OTHER)])
    assert plain(loss[0]) == "loss ━ train 0.2 ━ val 0.25 ━ lr 1e-3 0.3"
    assert all("━ lr 1e-3" in plain(t) for t in loss)
    assert all("━ lr 1e-3" in plain(t) for t in chart_titles.metric_titles(state, [("lr 1e-3", other, OTHER)]))
    assert plain(chart_titles.fit(loss, 30)) == "━ 0.2 ━ 0.25 ━ lr 1e-3"
