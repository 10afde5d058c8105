"""The lr-find rules on a curve whose answers are known by hand."""
import math

import numpy as np
import pytest

from recipe_tui.core.lrfind import WARMUP, downsample, suggest


def curve(n=300, steep_at=-3.0, low_at=-1.0):
    """Loss against log10 lr: flat, a tanh drop steepest at ``steep_at``, its minimum at ``low_at``, then a climb."""
    x = np.linspace(-7, 1, n)
    loss = 2.0 - np.tanh(2 * (x - steep_at)) + np.where(x > low_at, 3 * (x - low_at) ** 2, 0.0)
    return list(10 ** x), list(loss)


def test_each_rule_finds_what_it_should_on_a_known_curve():
    lrs, loss = curve()
    rules = suggest(lrs, loss)
    assert math.log10(rules["steepest"]) == pytest.approx(-3.0, abs=0.05)
    low = int(np.argmin(loss))
    assert rules["min_div_10"] == pytest.approx(lrs[low] / 10)
    # valley (fastai's formula): the falling stretch is every point from the warm-up to the minimum, n of them;
    # fastai starts it one before its first point and takes (n/3) + (n/3)/2 points from there
    n = low - WARMUP + 1
    expected = WARMUP - 1 + int(n / 3) + int(n / 3 / 2)
    assert rules["valley"] == pytest.approx(lrs[expected], rel=1e-9)


def test_no_suggestion_from_a_curve_that_never_falls():
    lrs, _ = curve()
    assert suggest(lrs, list(np.linspace(2, 5, len(lrs)))) == {"steepest": None, "valley": None, "min_div_10": None}


def test_downsample_keeps_the_ends():
    xs = list(range(1000))
    a, b = downsample(xs, xs, 100)
    assert len(a) == 100 and a[0] == 0 and a[-1] == 999 and a == b
