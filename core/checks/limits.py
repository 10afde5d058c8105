"""Thresholds that more than one check applies, defined once so that the checks agree."""
from __future__ import annotations

from typing import Iterable

SCALE_LIMIT = 10.0  # inputs whose |mean| or std (per channel) is above this have not been scaled


def unscaled(means: Iterable[float | None], stds: Iterable[float | None]) -> bool:
    """Inputs that were not scaled to about unit range (raw pixels 0–255, raw measurements …)."""
    return any(v is not None and abs(v) > SCALE_LIMIT for v in [*means, *stds])
