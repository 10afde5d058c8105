"""SIGKILL at random moments, chained (each resume killed again), after a ctrl+c too: every resume works, no
unparsable events.jsonl line, no damaged metrics.csv row, no unloadable checkpoint, at most one checkpoint
interval trained again per kill, and the losses of an uninterrupted run (issue 14, "Measured")."""
from __future__ import annotations

import pytest

from recipe_tui.core.config import apply_overrides, load_recipes, shipped_recipes_path
from recipe_tui.core.jobs import run_training

from fault_harness import kill_loop, losses, overrides


def uninterrupted(tmp_path, recipe: str, steps: int, checkpoint_every: int, extra: tuple[str, ...]) -> dict[int, float]:
    sets = overrides(steps, checkpoint_every, extra)[1::2]
    exp = apply_overrides(load_recipes(shipped_recipes_path()).experiment(recipe), tuple(sets))
    return losses(run_training(exp, runs_root=tmp_path / "reference").run_dir)


def check(tmp_path, recipe: str, steps: int, every: int, kills: int, seed: int, sigint: bool = False,
          extra: tuple[str, ...] = ()) -> None:
    report, run = kill_loop(tmp_path, recipe, steps, every, kills, seed=seed, interrupt_with_sigint=sigint,
                            extra=extra)
    assert report.problems == []
    assert report.tried >= 1 and report.survived == report.tried
    assert all(r <= every for r in report.redone), report.redone
    assert losses(run) == uninterrupted(tmp_path, recipe, steps, every, extra)


@pytest.mark.timeout(240)
def test_digits_mlp_with_dropout_survives_ctrl_c_then_a_kill(tmp_path):
    check(tmp_path, "digits-mlp", steps=200, every=40, kills=1, seed=1, sigint=True, extra=("model.dropout=0.3",))


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("recipe, extra", [("digits-mlp", ("model.dropout=0.3",)),
                                           ("names-lm", ("model.dropout=0.1",))])
def test_chained_kills_at_random_moments(tmp_path, recipe, extra):
    check(tmp_path, recipe, steps=600, every=50, kills=6, seed=7, sigint=True, extra=extra)
