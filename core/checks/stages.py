"""Every automated check, by stage, under its public id (the ids recipes.toml items name; a public contract).

One place to read them all; a new check is a new module with ``def check(ctx) -> Verdict`` and one line here.
"""
from __future__ import annotations

from . import (baselines, batch_independence, batch_view, capacity, causality, data_balance, data_duplicates,
               data_labels, data_outliers, data_stats, distill, ensemble, eval_mode, first_layer, grad_flow, init_loss,
               init_well, lr_find, output_range, overfit_batch, regularize, seed, tune, zero_input)
from .runner import Check

# 1 Inspect the data
STAGE_1: dict[str, Check] = {
    "data-stats": data_stats.check,
    "class-balance": data_balance.check,
    "duplicates": data_duplicates.check,
    "outliers": data_outliers.check,
    "label-issues": data_labels.check,
}

# 2 Set up the skeleton
STAGE_2: dict[str, Check] = {
    "seed": seed.check,
    "init-loss": init_loss.check,
    "init-bias": init_well.check,
    "zero-input": zero_input.check,
    "overfit-batch": overfit_batch.check,
    "batch-independence": batch_independence.check,
    "causality": causality.check,
    "batch-view": batch_view.check,
    "baselines": baselines.check,
    "eval-mode": eval_mode.check,
    "grad-flow": grad_flow.check,
    "output-range": output_range.check,
}

# 3 Overfit (the "train" item is training itself: `t` in the app, `recipe-tui train`)
STAGE_3: dict[str, Check] = {
    "lr-find": lr_find.check,
    "capacity": capacity.check,
    "first-layer": first_layer.check,
}

# 4 Regularize
STAGE_4: dict[str, Check] = {
    "regularize": regularize.check,
}

# 5 Tune
STAGE_5: dict[str, Check] = {
    "tune": tune.check,
}

# 6 Squeeze out the juice
STAGE_6: dict[str, Check] = {
    "ensemble": ensemble.check,
    "distill": distill.check,
}

CHECKS: dict[str, Check] = {**STAGE_1, **STAGE_2, **STAGE_3, **STAGE_4, **STAGE_5, **STAGE_6}
