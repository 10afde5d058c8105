"""Cost of one chart redraw with 1,000,000 points of history against 1,000 points.

    python benchmarks/chart_redraw.py [--repeats 21] [--size 60x15]

Builds the charts of the app from series of N training steps, as the Charts pane does on each redraw: the loss
(raw train faint, its moving average, val), the val metric, the grad norm, and the lr strip's line; each series
downsampled (min/max per column bucket), then drawn by plotext (``tui/widgets/plot.py``). Budget (DESIGN.md): the
redraw at 1,000,000 points costs ≤ 1.2 × the one at 1,000. Prints median times and the ratio, for two chart
sizes, and the absolute time of one redraw (it runs on the UI thread, taking the GIL from the trainer).
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time

from recipe_tui.tui.run_state import EMA_BETA
from recipe_tui.tui.series import MinMaxSeries
from recipe_tui.tui.widgets.lr_strip import LrStrip
from recipe_tui.tui.widgets.plot import Curve, Plot, new_figure

# The app takes the line colours from app.tcss; drawing costs the same whatever they are.
BLUE, FAINT, ORANGE, GREEN, VIOLET, GREY = (80, 160, 255), (40, 70, 110), (255, 160, 40), (90, 200, 120), \
    (190, 130, 255), (200, 200, 200)
CHARTS = [  # (series and colours, log y), as the pane draws them with smoothing on
    ([("train_loss", FAINT), ("train_loss_ema", BLUE), ("val_loss", ORANGE)], True),
    ([("metric", GREEN)], False),
    ([("grad_norm", GREY)], False),
]


def history(n: int, seed: int = 0, pure_noise: bool = False) -> dict[str, MinMaxSeries]:
    """n logged training steps with the same curves whatever n, so only the length differs: a decaying
    loss with 3 % noise and three spikes at the same relative places, a cosine lr, a decaying grad norm
    with ±20 % noise, 50 evals. ``pure_noise``: the grad norm is uniform noise over its whole range
    instead (the worst case for a min/max envelope, see main)."""
    rng = random.Random(seed)
    series = {k: MinMaxSeries() for k in ("train_loss", "train_loss_ema", "val_loss", "metric", "lr", "grad_norm")}
    ema = 0.0
    every = max(1, n // 50)
    spikes = {n // 4, n // 2, 3 * n // 4}
    for s in range(1, n + 1):
        trend = math.exp(-5 * s / n)
        loss = (2.3 * trend + 0.05) * (1 + 0.03 * rng.random()) + (2.0 if s in spikes else 0.0)
        series["train_loss"].append(s, loss)
        ema = EMA_BETA * ema + (1 - EMA_BETA) * loss
        series["train_loss_ema"].append(s, ema / (1 - EMA_BETA ** s))
        series["lr"].append(s, 3e-3 * 0.5 * (1 + math.cos(math.pi * s / n)))
        series["grad_norm"].append(s, 1 + rng.random() if pure_noise else (1 + 4 * trend) * (0.8 + 0.4 * rng.random()))
        if s % every == 0:
            series["val_loss"].append(s, loss * 1.1)
            series["metric"].append(s, 1 - loss / 2.5)
    return series


FIGURES = [new_figure() for _ in CHARTS]  # one plotext figure per chart, as each Plot of the app keeps its own


def redraw(series: dict[str, MinMaxSeries], w: int, h: int) -> None:
    """One redraw of the pane's charts, each ``w`` × ``h``: downsample, then draw."""
    for (lines, log_y), figure in zip(CHARTS, FIGURES):
        curves = [Curve(name, *series[name].points(w), color) for name, color in lines]
        Plot.draw(curves, w, h, log_y=log_y, figure=figure)
    LrStrip.line(series["lr"], 2 * w, VIOLET)


def redraw_seconds(small: dict[str, MinMaxSeries], big: dict[str, MinMaxSeries], w: int, h: int,
                   repeats: int) -> tuple[float, float]:
    """Median time of one redraw, small and big history measured alternately so that the machine's load affects
    both alike."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(repeats + 1):
        for k, series in ((0, small), (1, big)) if r % 2 else ((1, big), (0, small)):
            t0 = time.perf_counter()
            redraw(series, w, h)
            if r:  # the first round warms imports and caches
                times[k].append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--size", action="append", help="chart size WxH (repeatable); default 60x15 and 110x30")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["60x15", "110x30"])]
    small, big = history(1_000), history(1_000_000)
    worst = 0.0
    for w, h in sizes:
        t_small, t_big = redraw_seconds(small, big, w, h, args.repeats)
        ratio = t_big / t_small
        worst = max(worst, ratio)
        print(f"{w}×{h} charts ×3 + lr line: 1,000 points {t_small * 1e3:.1f} ms · 1,000,000 points {t_big * 1e3:.1f} ms "
              f"· ratio {ratio:.2f}")
    print(f"redraw cost at 1,000,000 vs 1,000 points of history: worst ratio {worst:.2f} (budget ≤ 1.2) "
          f"{'OK' if worst <= 1.2 else 'OVER BUDGET'}")
    # Pure noise: each bucket's min/max band widens with the samples it holds (the extremes of 1,000
    # samples lie further apart than those of 10), so there is more line to draw; a cost of the data's
    # shape that min/max downsampling accepts in order to keep spikes, not of the history's length.
    w, h = sizes[0]
    t_small, t_big = redraw_seconds(history(1_000, pure_noise=True), history(1_000_000, pure_noise=True), w, h,
                                    args.repeats)
    print(f"(for information) grad norm as pure noise, {w}×{h}: ratio {t_big / t_small:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
