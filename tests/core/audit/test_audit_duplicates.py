"""Exact and near duplicates, leakage and conflicting labels; the neighbour search against brute force."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recipe_tui.core.audit.duplicates import components, find_duplicates, near_pairs, sample_nearest
from recipe_tui.core.audit.scan import scan_splits
from recipe_tui.core.audit.synthetic import mnist_like, plant_copies, planted_images
from recipe_tui.core.config import load_recipes
from recipe_tui.core.data import load_data

pytestmark = pytest.mark.timeout(120)


def _groups(report: dict) -> set[frozenset]:
    return {frozenset((m["split"], m["index"]) for m in g) for g in report["groups"]}


def test_planted_copies_leakage_near_copies_and_conflicts_are_found_exactly():
    p = planted_images()
    report = find_duplicates(scan_splits(p.splits), ratio=0.1)
    assert _groups(report) == p.groups
    info = {frozenset((m["split"], m["index"]) for m in g): gi for g, gi in zip(report["groups"], report["group_info"])}
    assert {g for g, gi in info.items() if gi["conflicting"]} == p.conflicting
    assert {g for g, gi in info.items() if gi["kind"] == "near"} == p.near
    assert report["leaked"] == {"val": {"exact": 3, "near": 0}}
    assert report["within"]["train"] == {"exact": 5, "near": 3}  # 4 copies + the conflicting copy; 3 near
    # leakage is listed first: it is the most consequential finding
    assert all(len(gi["splits"]) == 2 for gi in report["group_info"][:3])
    # every member index is the position in its split as the data source returns it
    for g in report["groups"]:
        xs = [getattr(p.splits, m["split"]).x[m["index"]] for m in g]
        assert all(torch.allclose(xs[0], x, atol=0.01) for x in xs)


def test_built_in_digits_have_no_duplicates_and_no_leakage():
    # Measured on the real UCI data: 1,797 distinct 8×8 images; the closest pair is 0.33 × the median
    # nearest-neighbour distance, far from the 0.1 near-duplicate threshold.
    exp = load_recipes().experiment("digits-mlp")
    report = find_duplicates(scan_splits(load_data(exp)), ratio=0.1)
    assert report["groups"] == [] and report["samples"] == 1797
    assert report["leaked"] == {"val": {"exact": 0, "near": 0}}
    assert report["median_nn_distance"] > 0


def test_near_duplicate_threshold_scales_with_the_ratio():
    p = planted_images()
    scans = scan_splits(p.splits)
    none = find_duplicates(scans, ratio=0.0)
    assert _groups(none) == p.exact | p.leaked | p.conflicting  # exact copies need no threshold
    loose = find_duplicates(scans, ratio=2.0)  # at twice the median neighbour distance whole classes chain up
    assert max(len(g) for g in loose["groups"]) > 50


def test_near_pairs_finds_every_pair_that_brute_force_finds_well_inside_the_radius():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 24))
    x = (centres[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 24))).astype(np.float32)
    src = rng.choice(3000, 60, replace=False)
    close = x[src] + rng.normal(size=(60, 24)).astype(np.float32) * 0.02
    x = np.concatenate([x, close])
    _, _, d = sample_nearest(x, 500)
    radius = 0.2 * float(np.median(d))
    found = {tuple(p) for p in near_pairs(x, radius).tolist()}
    full = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    i, j = np.nonzero(np.triu(full < 0.8 * radius, 1))
    must = set(zip(i.tolist(), j.tolist()))
    assert len(must) >= 60 and must <= found
    assert all(full[a, b] < radius for a, b in found)


def test_sample_nearest_matches_brute_force():
    x = np.random.default_rng(1).normal(size=(700, 10)).astype(np.float32)
    q, nn, d = sample_nearest(x, 100)
    full = np.sqrt(((x[q, None, :] - x[None, :, :]) ** 2).sum(-1))
    full[np.arange(len(q)), q] = np.inf
    assert np.array_equal(nn, full.argmin(1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-5)


def test_components_match_a_union_find():
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, 300, size=(200, 2))
    label = components(300, pairs)
    parent = list(range(300))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in pairs:
        parent[find(a)] = find(b)
    for a in range(300):
        for b in (0, 17, 123):
            assert (label[a] == label[b]) == (find(a) == find(b))
    assert all(label[a] == min(np.nonzero(label == label[a])[0]) for a in range(300))


def test_audit_of_60000_images_finds_exactly_the_planted_groups():  # ~5 s: the benchmark's data, at full size
    splits, expected = plant_copies(*mnist_like(60000), n_val=10000)
    report = find_duplicates(scan_splits(splits), ratio=0.1)
    assert _groups(report) == expected
