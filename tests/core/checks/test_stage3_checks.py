"""Stage 3 checks on built-in data: lr-find, capacity and first-layer, each right in both directions."""
import json
from pathlib import Path

import pytest
from skeleton_zoo import experiment, zoo

from recipe_tui.core.checks import CheckContext, run_check
from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.events import CheckRow
from recipe_tui.core.jobs import run_training
from recipe_tui.core.runs import list_runs

pytestmark = pytest.mark.timeout(180)


def recipe(name="digits-mlp", checks=None, **train):
    exp = load_recipes(shipped_recipes_path()).experiment(name)
    exp = exp.replace("train", device="cpu", **train)
    return exp.replace("checks", **checks) if checks else exp


def run(check_id, exp, runs, stop_after_rows=None):
    events = []
    control = RunControl(emit=events.append)

    def emit(e):
        events.append(e)
        if stop_after_rows is not None and sum(isinstance(x, CheckRow) for x in events) >= stop_after_rows:
            control.stop.set()
    ctx = CheckContext(exp=exp, control=control.with_emit(emit), device_name="cpu", runs_root=str(runs))
    return run_check(check_id, ctx), [e for e in events if isinstance(e, CheckRow)]


# ----------------------------------------------------------------------------- lr-find


def test_lr_find_on_digits_mlp_suggests_an_lr_that_trains_well_and_is_stable_over_seeds(tmp_path):
    res, rows = run("lr-find", recipe(), tmp_path)
    m = res.metrics
    assert res.status == "pass", res.summary  # the recipe's 3e-3 trains digits-mlp to 97 %
    assert 3e-4 <= m["suggested_lr"] <= 3e-2, "within 10× of the recipe's lr, which trains well"
    assert m["range"][0] <= m["suggested_lr"] <= m["range"][1]
    assert m["spread"] < 1.5, "three seeds agree on the suggestion"
    assert len(rows) == len(m["sweeps"]) == 3 and [r.row["seed"] for r in rows] == [1337, 1338, 1339]
    assert all(r["steepest"] and r["valley"] and r["min_div_10"] for r in m["sweeps"])
    assert m["rule_agreement"] >= 1 and f"{m['rule_agreement']:.2g}×" in res.summary
    for curve in m["curves"]:
        assert len(curve["lr"]) == len(curve["loss"]) <= 101 and curve["lr"] == sorted(curve["lr"])
        assert curve["lr"][0] == pytest.approx(1e-7, rel=1e-3)
    # independently: training at the suggested lr works
    out = run_training(recipe(lr=m["suggested_lr"], steps=400, eval_every=400), runs_root=tmp_path / "runs")
    assert out.final["accuracy"] > 0.93


def test_lr_find_warns_with_the_suggestion_when_the_lr_is_too_high_and_when_it_decays(tmp_path):
    res, _ = run("lr-find", recipe(lr=0.5, checks={"lr_find_repeats": 1}), tmp_path)
    assert res.status == "warn" and "above the range" in res.summary
    assert f"--set train.lr={res.metrics['suggested_lr']:.4g}" in res.hint
    res, _ = run("lr-find", recipe(schedule="cosine", checks={"lr_find_repeats": 1}), tmp_path)
    assert res.status == "warn" and "'cosine' schedule" in res.summary and "constant" in res.summary


def test_lr_find_stopped_keeps_the_finished_sweeps(tmp_path):
    res, rows = run("lr-find", recipe(), tmp_path, stop_after_rows=1)
    assert res.status == "skip" and "stopped after 1 of 3 sweeps" in res.summary
    assert len(res.metrics["sweeps"]) == 1 == len(rows) and res.metrics["curves"][0]["seed"] == 1337


# ----------------------------------------------------------------------------- capacity


def test_capacity_on_digits_mlp_training_loss_falls_and_each_point_is_a_run(tmp_path):
    exp = recipe()
    res, rows = run("capacity", exp, tmp_path)
    points = res.metrics["points"]
    assert res.status == "pass", res.summary
    assert len(points) == len(rows) == 4 and [p["changes"]["model.width"] for p in points] == [32, 64, 128, 256]
    losses = [p["train_loss"] for p in points]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert [p["params"] for p in points] == sorted(p["params"] for p in points)
    listed = list_runs(tmp_path, exp.name, exp)
    assert [r["run_dir"] for r in listed] == [p["run_dir"] for p in points]
    for r, p in zip(listed, points):
        assert r["status"] == "completed" and r["steps"] == 300 and r["tag"]["kind"] == "capacity"
        assert r["tag"]["group"] == res.metrics["group"] and r["tag"]["label"] == p["label"]
        assert r["changes"] == ({"model.width": p["changes"]["model.width"], "train.steps": 300}
                                if p["changes"]["model.width"] != 128 else {"train.steps": 300})
        assert r["val_loss"]["final"] == pytest.approx(p["val_loss"], rel=1e-4)


def test_capacity_stopped_keeps_the_finished_runs_and_its_partial_table(tmp_path):
    res, rows = run("capacity", recipe(), tmp_path, stop_after_rows=2)
    assert res.status == "skip" and "stopped after 2 of 4" in res.summary
    assert len(res.metrics["points"]) == 2 and all(Path(p["run_dir"], "checkpoint.pt").is_file()
                                                   for p in res.metrics["points"])
    assert len(list_runs(tmp_path, "digits-mlp")) == 2


def test_capacity_of_a_factory_model_uses_its_capacities_and_warns_when_loss_cannot_fall(tmp_path):
    caps = [{"width": 8}, {"width": 32}, {"width": 128}]
    good = experiment(zoo("mlp"), checks={"capacities": caps, "capacity_steps": 150}, train={"lr": 3e-3})
    res, _ = run("capacity", good, tmp_path)
    assert res.status == "pass", res.summary
    assert [p["changes"] for p in res.metrics["points"]] == [{"model.kwargs.width": w} for w in (8, 32, 128)]
    # softmax before cross-entropy: every size stops at the same floor, ln(1 + 9/e) — capacity cannot help
    bug = experiment(zoo("mlp", softmax=True), checks={"capacities": caps, "capacity_steps": 150}, train={"lr": 3e-3})
    res, _ = run("capacity", bug, tmp_path)
    assert res.status == "warn" and "stops falling" in res.summary and "width=128" in res.summary, res.summary
    none = experiment(zoo("mlp"))
    res, _ = run("capacity", none, tmp_path)
    assert res.status == "skip" and "capacities" in res.hint


# ----------------------------------------------------------------------------- first-layer


def test_first_layer_calls_trained_cnn_filters_structured_and_fresh_ones_noise(tmp_path):
    exp = recipe("digits-cnn")
    fresh, _ = run("first-layer", exp, tmp_path)
    assert fresh.status == "skip" and fresh.metrics["source"] == "init" and fresh.metrics["structured"] is False
    assert fresh.metrics["shape"] == [16, 1, 3, 3] and fresh.metrics["layer"]["name"] == "features.0"
    assert "noise" in fresh.summary
    out = run_training(exp.replace("train", steps=800, eval_every=800), runs_root=tmp_path)
    # a capacity point written later is not "the recipe's latest run": it has another model size
    run_training(exp.replace("train", steps=5).replace("model", width=16), runs_root=tmp_path, tag={"kind": "capacity"})
    trained, _ = run("first-layer", exp, tmp_path)
    m = trained.metrics
    assert trained.status == "pass", trained.summary
    assert m["source"] == "checkpoint" and m["run_dir"] == str(out.run_dir) and m["step"] == 800
    assert m["structured"] is True and m["z"] >= 3 > fresh.metrics["z"]
    assert len(m["filters"]) == 16 and len(m["filters"][0][0]) == 3 and m["scale"] > 0
    json.dumps(m)  # what the app draws travels as JSON


def test_first_layer_of_an_mlp_is_drawn_as_input_shaped_images_and_embeddings_are_skipped(tmp_path):
    res, _ = run("first-layer", recipe(), tmp_path)
    assert res.metrics["shape"] == [64, 1, 8, 8] and res.metrics["count"] == 128  # 64 of 128 units drawn
    res, _ = run("first-layer", recipe("names-lm"), tmp_path)
    assert res.status == "skip" and "Embedding" in res.summary


# ----------------------------------------------------------------------------- headless


def test_check_json_gives_each_stage_3_item_a_verdict_with_its_table(tmp_path, capsys):
    from recipe_tui.tui.cli import main

    code = main(["check", "lr-find", "capacity", "first-layer", "--recipe", "digits-mlp", "--runs", str(tmp_path),
                 "--set", "train.device=cpu", "--json"])
    doc = json.loads(capsys.readouterr().out)
    items = {i["id"]: i for i in doc["items"]}
    assert code == 0 and list(items) == ["lr-find", "capacity", "first-layer"]
    assert items["lr-find"]["status"] == "pass" and len(items["lr-find"]["metrics"]["sweeps"]) == 3
    assert items["capacity"]["status"] == "pass" and len(items["capacity"]["metrics"]["points"]) == 4
    assert items["first-layer"]["status"] == "skip" and items["first-layer"]["metrics"]["source"] == "init"
    assert len(list_runs(tmp_path, "digits-mlp")) == 4, "the capacity points are runs"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn", "names-lm"])
def test_the_whole_stage_3_headless_on_the_shipped_cpu_recipes(tmp_path, name):
    """`check --stage 3` as a user runs it (its own process, default threads); the time is printed, not asserted."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the tests' one thread is not a user's
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "recipe_tui.tui.cli", "check", "--stage", "3", "--recipe", name,
                           "--runs", str(tmp_path), "--json"], capture_output=True, text=True, cwd=tmp_path, env=env)
    print(f"check --stage 3 --recipe {name}: {time.perf_counter() - t0:.1f} s")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert [i["id"] for i in doc["items"]] == ["lr-find", "capacity", "first-layer"]
    assert all(i["status"] in ("pass", "skip") for i in doc["items"]), [(i["id"], i["summary"]) for i in doc["items"]]


def test_filters_u8_is_the_drawn_filters_in_a_byte_each_and_small_enough_to_keep():
    import base64

    import numpy as np

    from recipe_tui.core.checklist_state import MAX_VALUE_CHARS
    from recipe_tui.core.filters import drawable

    images = np.random.default_rng(0).normal(0, 0.1, size=(128, 1, 8, 8))
    d = drawable(images)
    packed = d["filters_u8"]
    assert packed["shape"] == [32, 1, 8, 8] and packed["scale"] == d["scale"]
    q = np.frombuffer(base64.b64decode(packed["data"]), dtype=np.uint8).reshape(packed["shape"])
    back = q / 255 * 2 * d["scale"] - d["scale"]
    assert np.abs(back - np.array(d["filters"][:32])).max() <= d["scale"] / 255 + 1e-4
    assert len(json.dumps(packed)) < MAX_VALUE_CHARS < len(json.dumps(d["filters"]))
    wide = drawable(np.random.default_rng(1).normal(size=(64, 3, 16, 16)))["filters_u8"]
    assert wide["shape"][0] == 10_000 // (3 * 16 * 16) and len(json.dumps(wide)) < MAX_VALUE_CHARS
