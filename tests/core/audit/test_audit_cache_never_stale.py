"""The audit cache never serves a stale verdict (issue 10, class 1).

Modelled on caches keyed on less than the data they describe: zeldarose#111 ("if you change the content of a file
that's already cached, the cache is not invalidated"), Ekumen-OS/lambkin#95 ("The benchmark cache is not
invalidated when data changes"). Our key used to read 64 strided samples of a user ``Dataset``: a NaN fixed or a
label corrected anywhere else got the old verdict. Now the key is a digest of every sample the scan read.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from recipe_tui.core.checks import CheckContext, run_check
from recipe_tui.core.config import load_recipes
from recipe_tui.core.data import Splits, load_data

pytestmark = pytest.mark.timeout(120)
NAN_AT = 333  # none of these is one of the 64 evenly spaced samples the old key read (…, 319, 342, …)
FLIPPED = [401, 650, 1100]


class EditableDigits(Dataset):
    """A user's Dataset (not tensors, not torchvision) over arrays the user fixes in place between two jobs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.clone(), y.clone()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


def job(splits: Splits, runs_root) -> dict:
    ctx = CheckContext(exp=load_recipes().experiment("digits-mlp"), runs_root=str(runs_root))
    ctx.use_data(splits)  # the checks audit what ctx.splits() returns
    return {cid: run_check(cid, ctx) for cid in ("data-stats", "duplicates", "label-issues")}


def test_a_fixed_nan_and_corrected_labels_are_seen_by_the_next_job_and_unchanged_data_is_cached(tmp_path):
    digits = load_data(load_recipes().experiment("digits-mlp"))
    train = EditableDigits(digits.train.x, digits.train.y)
    clean_x, clean_y = train.x[NAN_AT].clone(), train.y[FLIPPED].clone()
    train.x[NAN_AT, 0, 4, 4] = float("nan")
    train.y[FLIPPED] = (clean_y + 1) % 10
    splits = Splits(train=train, val=digits.val, info=digits.info)

    broken = job(splits, tmp_path)
    assert broken["data-stats"].status == "fail"
    assert [(b["split"], b["index"]) for b in broken["data-stats"].metrics["bad"]] == [("train", NAN_AT)]
    flagged = {c["index"] for c in broken["label-issues"].metrics["candidates"] if c["split"] == "train"}
    assert set(FLIPPED) <= flagged

    train.x[NAN_AT], train.y[FLIPPED] = clean_x, clean_y  # the user fixes the data; same runs dir, warm cache
    fixed = job(splits, tmp_path)
    assert fixed["data-stats"].status == "pass" and fixed["data-stats"].metrics["bad"] == []
    assert "cached" not in fixed["label-issues"].metrics and "cached" not in fixed["duplicates"].metrics
    assert not set(FLIPPED) & {c["index"] for c in fixed["label-issues"].metrics["candidates"]}

    again = job(splits, tmp_path)  # nothing changed: the expensive results come from the cache, equal
    for cid in ("duplicates", "label-issues"):
        assert again[cid].metrics["cached"] is True
        assert (again[cid].status, again[cid].summary) == (fixed[cid].status, fixed[cid].summary)


def test_a_sample_that_stops_failing_to_load_changes_the_key(tmp_path):
    digits = load_data(load_recipes().experiment("digits-mlp"))

    class Flaky(EditableDigits):
        broken = True

        def __getitem__(self, i: int):
            if self.broken and i == NAN_AT:
                raise OSError("truncated file")
            return super().__getitem__(i)

    train = Flaky(digits.train.x, digits.train.y)
    splits = Splits(train=train, val=digits.val, info=digits.info)
    first = job(splits, tmp_path)
    assert first["data-stats"].metrics["bad"][0]["problem"] == "load-error"
    train.broken = False
    second = job(splits, tmp_path)
    assert second["data-stats"].status == "pass" and "cached" not in second["duplicates"].metrics
