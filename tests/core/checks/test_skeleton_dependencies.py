"""batch-independence and causality on real published bugs and their fixes."""
import pytest
import torch
from skeleton_zoo import NAMES, experiment, run, zoo

from recipe_tui.core.config import load_recipes, shipped_recipes_path

pytestmark = pytest.mark.timeout(120)


def lm(model: dict):
    return experiment(model, data=NAMES, task="language-model")


def test_fairseq_239_bidirectional_state_view_mixes_the_batch():
    r = run("batch-independence", experiment(zoo("bilstm")))
    assert r.status == "fail"
    # cat(dim=0).view(B, 2H) glues example j's state to example j+1's: every tested output leaks.
    assert r.metrics["leaks"] and all(r.metrics["leaks"].values())
    assert r.metrics["first_mixing_module"] == "head" and r.metrics["last_clean_module"] == "lstm"
    assert "'head' (Linear)" in r.summary and "'lstm' (LSTM)" in r.summary


def test_fairseq_239_fix_keeps_examples_apart():
    r = run("batch-independence", experiment(zoo("bilstm", fixed=True)))
    assert r.status == "pass", r.summary
    assert r.metrics["dtype"] == "float64" and r.metrics["batch"] >= 4


def test_view_where_transpose_was_meant_mixes_the_batch():
    r = run("batch-independence", experiment(zoo("view")))
    assert r.status == "fail"
    batch = r.metrics["batch"]
    assert all(len(js) == batch - 1 for js in r.metrics["leaks"].values())
    assert r.metrics["last_clean_module"] == "proj"
    assert run("batch-independence", experiment(zoo("view", fixed=True))).status == "pass"


def test_attention_across_the_batch_is_found_through_embedding_gradients():
    # Token inputs: gradients are taken at the embedding outputs.
    bad = run("batch-independence", lm(zoo("gpt", batch_first=False, causal=False)))
    assert bad.status == "fail"
    assert bad.metrics["first_mixing_module"] == "encoder.layers.0.self_attn"
    good = run("batch-independence", lm(zoo("gpt")))
    assert good.status == "pass", good.summary


def test_batch_independence_warns_when_nothing_depends_on_the_input():
    r = run("batch-independence", experiment(zoo("masked")))
    assert r.status == "warn" and r.metrics["no_dependence"] == r.metrics["examples_tested"]


def test_convolution_padded_on_both_sides_sees_the_next_token():
    r = run("causality", lm(zoo("charconv")))
    assert r.status == "fail"
    pairs = {tuple(p) for p in r.metrics["violations"]}
    assert (0, 1) in pairs and (5, 6) in pairs  # kernel 3, padding 1: t sees t+1 …
    assert not any(tp - t > 1 for t, tp in pairs)  # … and nothing further
    assert r.metrics["first_module"] == "conv (Conv1d)"


def test_left_padded_causal_convolution_passes():
    r = run("causality", lm(zoo("charconv", mode="fixed")))
    assert r.status == "pass", r.summary
    assert r.metrics["violation_count"] == 0


def test_a_convolution_shifted_one_step_too_far_is_flagged_as_blind():
    r = run("causality", lm(zoo("charconv", mode="overshift")))
    assert r.status == "warn"
    assert len(r.metrics["blind_positions"]) >= r.metrics["positions_tested"] - 1


def test_transformer_without_its_causal_mask_sees_the_future():
    r = run("causality", lm(zoo("gpt", causal=False)))
    assert r.status == "fail"
    assert r.metrics["first_module"].startswith("encoder.layers.0.self_attn")
    length = r.metrics["length"]
    assert r.metrics["violation_count"] == length * (length - 1) // 2  # every (t, t′ > t) pair


def test_transformer_encoder_with_a_causal_mask_passes():
    r = run("causality", lm(zoo("gpt")))
    assert r.status == "pass", r.summary


def test_the_shipped_char_transformer_is_causal():
    exp = load_recipes(shipped_recipes_path()).experiment("names-lm").replace("train", device="cpu")
    r = run("causality", exp)
    assert r.status == "pass", r.summary
    assert r.metrics["positions_tested"] == 16


def test_causality_skips_classifiers():
    r = run("causality", experiment(zoo("mlp")))
    assert r.status == "skip" and "classification" in r.summary


def test_change_by_position_follows_the_time_axis():
    from recipe_tui.core.checks.tracing import change_by_position

    base = torch.zeros(2, 5, 3)
    other = base.clone()
    other[0, 3, 1] = 2.0
    change = change_by_position(base, other, 1)
    assert change.tolist() == [0.0, 0.0, 0.0, 2.0, 0.0]
    # A channels-first layout (B, C, T): the time axis is the last one.
    change = change_by_position(base.transpose(1, 2), other.transpose(1, 2), 2)
    assert change.tolist() == [0.0, 0.0, 0.0, 2.0, 0.0]
