"""Chart data: bounded min/max downsampling keeps spikes; ticks are round; log-y labels show real values."""
from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe_tui.tui.series import MinMaxSeries, safe_log10
from recipe_tui.tui.ticks import log_ticks, nice_ticks
from recipe_tui.tui.widgets.plot import Curve, Plot, ansi_rows, new_figure

pytestmark = pytest.mark.timeout(60)


def test_memory_stays_bounded_and_the_spike_survives():
    s = MinMaxSeries(capacity=64)
    rng = random.Random(0)
    raw = [(i, 1.0 + 0.01 * rng.random()) for i in range(200_000)]
    raw[123_457] = (123_457, 50.0)  # one exploding step among 200k
    raw[7] = (7, -3.0)
    for x, y in raw:
        s.append(x, y)
    assert len(s) == 200_000
    assert len(s._n) <= 64 and sum(s._n) == 200_000
    xs, ys = s.points(40)
    assert len(xs) <= 2 * 40 + 2
    width = s.size * math.ceil(len(s._n) / 40)  # an extreme may be drawn anywhere in its group (one column)
    assert 50.0 in ys and abs(xs[ys.index(50.0)] - 123_457) <= width
    assert -3.0 in ys and abs(xs[ys.index(-3.0)] - 7) <= width
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert (xs[0], ys[0]) == raw[0] and (xs[-1], ys[-1]) == raw[-1]  # the curve ends at the current value


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=600), st.integers(1, 50))
def test_points_are_real_values_and_include_both_extremes_and_the_ends(values, buckets):
    s = MinMaxSeries(capacity=8)
    for i, v in enumerate(values):
        s.append(i, v)
    xs, ys = s.points(buckets)
    assert set(ys) <= set(values) and set(xs) <= set(range(len(values)))
    assert min(values) in ys and max(values) in ys
    assert xs == sorted(set(xs))
    assert (xs[0], ys[0]) == (0, values[0]) and (xs[-1], ys[-1]) == (len(values) - 1, values[-1])
    assert len(xs) <= 2 * buckets + 2


def test_non_finite_values_are_skipped_and_log_drops_non_positive():
    s = MinMaxSeries()
    for i, v in enumerate([1.0, math.nan, 10.0, math.inf, 0.0, 100.0]):
        s.append(i, v)
    assert len(s) == 4
    xs, ys = s.points(10, transform=safe_log10)
    assert list(zip(xs, ys)) == [(0, 0.0), (2, 1.0), (5, 2.0)]


def test_nice_ticks_are_round_and_inside():
    for lo, hi, n in [(0.05, 3.35, 3), (2.3e-3, 3e-3, 3), (1, 3000, 5), (0.951, 0.959, 3), (5, 5.0001, 2)]:
        ticks = nice_ticks(lo, hi, n)
        assert len(ticks) >= 2
        assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
        steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:])}
        assert len(steps) == 1
        mantissa = f"{steps.pop():.1e}"[:3]
        assert mantissa in ("1.0", "2.0", "5.0")


def test_log_ticks_label_the_original_values():
    ticks, labels = log_ticks(math.log10(0.004), math.log10(2.5), 4)
    assert labels == ["0.01", "0.1", "1"] and ticks == [-2.0, -1.0, 0.0]
    ticks, labels = log_ticks(math.log10(0.3), math.log10(0.9), 3)  # less than a decade: linear-looking values
    assert [float(x) for x in labels] == pytest.approx([10 ** t for t in ticks], rel=1e-3)


def text(rows) -> str:
    return "\n".join("".join(seg.text for seg in row) for row in rows)


def test_plot_draws_a_chart_whose_size_and_cost_do_not_grow_with_history():
    loss = MinMaxSeries()
    for i in range(1, 50_001):
        loss.append(i, 2.3 * math.exp(-i / 5000) + 0.05 + (3.0 if i == 25_000 else 0.0))
    blue = (80, 160, 255)
    rows = Plot.draw([Curve("train", *loss.points(60), blue)], 60, 14)
    lines = text(rows).split("\n")
    assert len(lines) == 14 and all(len(line) == 60 for line in lines)
    assert any(ch in text(rows) for ch in "⠁⠂⠄⡀⢀⣀")  # braille dots: data was drawn
    assert "20k" in lines[-1] and "40k" in lines[-1]  # integer step ticks with a k suffix
    assert sum("┤" in line for line in lines) >= 4, "a label every other row or so: values can be read"
    styled = {seg.style.color.get_truecolor() for row in rows for seg in row if seg.style and seg.style.color}
    assert styled == {blue}, "the line has its explicit colour"
    log_text = text(Plot.draw([Curve("train", *loss.points(60), blue)], 60, 14, log_y=True))
    assert "0.1┤" in log_text and "  1┤" in log_text  # log ticks carry the values, not their logs
    assert text(Plot.draw([], 60, 14)) == "no data yet"
    assert text(Plot.draw([Curve("train", [1], [-1.0], blue)], 60, 14, log_y=True)) == "no positive data for a log axis"
    assert "train 0.05" in text(Plot.draw([Curve("train", *loss.points(10), blue)], 10, 3))  # too small: the value


def test_a_later_curve_wins_a_shared_cell_and_log_x_labels_powers_of_ten():
    faint, bright = (40, 80, 120), (80, 160, 255)
    xs = [1e-6, 1e-4, 1e-2, 1.0]
    rows = Plot.draw([Curve("raw", xs, [3, 2, 1, 4], faint), Curve("smooth", xs, [3, 2, 1, 4], bright)], 50, 12,
                     log_x=True, steps_x=False)
    colors = {seg.style.color.get_truecolor() for row in rows for seg in row if seg.style and seg.style.color}
    assert colors == {bright}, "the same line drawn twice shows the later colour"
    assert "1e-06" in text(rows).split("\n")[-1] and "0.01" in text(rows).split("\n")[-1]


def test_a_window_keeps_the_recent_buckets_only():
    s = MinMaxSeries(capacity=64)
    for i in range(10_000):
        s.append(i, float(i % 7))
    xs, _ = s.points(20, x_min=7_500)
    assert xs[0] >= 7_500 - s.size and xs[-1] == 9_999 and len(xs) <= 42
    full, _ = s.points(20)
    assert full[0] == 0
    assert (s.lo, s.hi) == (0.0, 6.0)


def test_plotext_output_becomes_the_segments_rich_would_decode():
    """ansi_rows (cached styles, one regex) gives what rich's full ANSI decoder gives, on plotext's own output, with
    a background and bold codes too."""
    import io

    from rich.console import Console
    from rich.segment import Segment
    from rich.text import Text

    fig = new_figure()
    fig.plot([1, 2, 3, 4], [3, 1, 4, 1], color=(80, 160, 255), marker="braille")
    fig.plot([1, 2, 3, 4], [1, 2, 3, 4], color=(255, 160, 40), marker="braille")
    fig.plotsize(40, 10)
    samples = [fig.build(), "a\x1b[38;2;1;2;3mb\x1b[48;2;4;5;6mc\x1b[0md\n\x1b[1me\x1b[0m\n"]
    console = Console(color_system="truecolor", width=1000, file=io.StringIO())

    def norm(rows):  # an empty Style is no style
        return [[(s.text, s.style) for s in Segment.simplify(Segment(s.text, s.style or None) for s in row) if s.text]
                for row in rows]
    for ansi in samples:
        text = Text.from_ansi(ansi.rstrip("\n"), no_wrap=True, end="")
        assert norm(ansi_rows(ansi)) == norm(Segment.split_lines(text.render(console, end="")))
    assert {seg.style.color.get_truecolor() for row in ansi_rows(samples[0]) for seg in row if seg.style} == \
        {(80, 160, 255), (255, 160, 40)}
