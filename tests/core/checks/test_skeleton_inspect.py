"""batch-view, baselines, eval-mode and output-range."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from skeleton_zoo import NAMES, data, experiment, run, zoo

from recipe_tui.core.data import load_data
from recipe_tui.core.trainer import BatchStream

pytestmark = pytest.mark.timeout(120)


def lm(model: dict, data_cfg: dict = NAMES):
    return experiment(model, data=data_cfg, task="language-model")


# ---------------------------------------------------------------------------------------------- batch-view


def test_batch_view_captures_the_trainers_first_batch_with_samples_for_the_tui():
    exp = experiment(zoo("mlp"), train={"batch_size": 48})
    r = run("batch-view", exp)
    assert r.status == "pass", r.summary
    x, y = next(BatchStream(load_data(exp).train, 48, exp.train.seed, torch.device("cpu")).batches())
    assert r.metrics["x_shape"] == [48, 1, 8, 8] and r.metrics["kind"] == "image"
    assert r.metrics["channel_mean"][0] == pytest.approx(float(x.mean()), abs=1e-4)
    assert r.metrics["channel_std"][0] == pytest.approx(float(x.double().std()), abs=1e-3)
    samples = r.metrics["samples"]
    assert len(samples) == 8
    assert samples[0]["y"] == int(y[0]) and samples[0]["label"] == str(int(y[0]))
    assert torch.tensor(samples[0]["x"]).shape == (1, 8, 8)
    assert torch.allclose(torch.tensor(samples[0]["x"], dtype=torch.float64), x[0].double(), atol=1e-3)
    json.dumps(r.metrics)  # JSON-serialisable, no tensors


def test_batch_view_decodes_token_sequences_and_their_targets():
    r = run("batch-view", lm(zoo("gpt")))
    assert r.status == "pass", r.summary
    s = r.metrics["samples"][0]
    assert s["text"].startswith(".") and len(s["text"]) == 16
    assert s["target_text"].endswith(".") and s["text"][1:len(s["target_text"])] == s["target_text"][:-1]
    assert r.metrics["targets_are_next_inputs"] == 1.0


def test_batch_view_fails_when_targets_were_not_shifted():
    r = run("batch-view", lm(zoo("gpt", block=12), data("unshifted_lm")))
    assert r.status == "fail" and "targets equal the inputs" in r.summary


def test_batch_view_downsamples_large_images_and_warns_on_unnormalised_pixels():
    r = run("batch-view", experiment({"name": "linear"}, data=data("images", side=64, n=40)))
    assert r.status == "pass"
    assert torch.tensor(r.metrics["samples"][0]["x"]).shape == (3, 32, 32)
    import skeleton_zoo

    original = skeleton_zoo.images
    try:
        skeleton_zoo.images = lambda **kw: {k: type(v)(v.x * 255, v.y) for k, v in original(**kw).items()}
        r = run("batch-view", experiment({"name": "linear"}, data=data("images", n=40)))
    finally:
        skeleton_zoo.images = original
    assert r.status == "warn" and "unnormalised" in r.summary


# ---------------------------------------------------------------------------------------------- baselines


def test_baselines_on_digits_against_hand_computations():
    exp = experiment(zoo("mlp"))
    r = run("baselines", exp)
    splits = load_data(exp)
    majority = int(torch.bincount(splits.train.y).argmax())
    assert r.status == "pass"
    assert r.metrics["split"] == "val" and r.metrics["examples"] == len(splits.val)  # the entire split
    assert r.metrics["majority_accuracy"] == pytest.approx(float((splits.val.y == majority).double().mean()), abs=1e-6)
    assert r.metrics["linear_accuracy"] > 0.9  # digits are nearly linearly separable
    assert r.metrics["majority_loss"] > r.metrics["linear_loss"]


def test_baselines_regression_mean_and_linear():
    exp = experiment(zoo("regression"), data=data("regression"), task="regression")
    r = run("baselines", exp)
    splits = load_data(exp)
    mean_mse = float(((splits.val.y.double() - splits.train.y.double().mean()) ** 2).mean())
    assert r.metrics["mean_mse"] == pytest.approx(mean_mse, rel=1e-5)
    assert r.metrics["linear_r2"] > 0.99  # y is linear in x plus 0.1 noise


def test_baselines_language_model_unigram_against_counts():
    exp = lm(zoo("gpt"))
    r = run("baselines", exp)
    splits = load_data(exp)
    ytr = splits.train.y[splits.train.y != -1]
    counts = torch.bincount(ytr, minlength=27).double() + 0.5
    yev = splits.val.y[splits.val.y != -1]
    assert r.metrics["tokens"] == len(yev)
    assert r.metrics["unigram_loss"] == pytest.approx(float(-(counts / counts.sum()).log()[yev].mean()), rel=1e-5)
    assert r.metrics["bigram_loss"] < r.metrics["unigram_loss"] - 0.2


# ---------------------------------------------------------------------------------------------- eval-mode


def test_eval_mode_catches_dropout_applied_whatever_the_mode():
    r = run("eval-mode", experiment(zoo("dropout")))
    assert r.status == "fail" and r.metrics["max_abs_diff"] > 0.01
    assert "training=True" in r.hint
    assert run("eval-mode", experiment(zoo("dropout", fixed=True))).status == "pass"


def test_eval_mode_catches_batchnorm_statistics_updated_in_eval():
    r = run("eval-mode", experiment(zoo("handbn")))
    assert r.status == "fail"
    assert set(r.metrics["changed_state"]) == {"running_mean", "running_var"}
    assert run("eval-mode", experiment(zoo("handbn", fixed=True))).status == "pass"


# ---------------------------------------------------------------------------------------------- output-range


def test_output_range_warns_on_softmax_outputs_and_passes_logits():
    r = run("output-range", experiment(zoo("mlp", softmax=True)))
    assert r.status == "warn" and r.metrics["looks_like"] == "probabilities"
    ok = run("output-range", experiment(zoo("mlp")))
    assert ok.status == "pass" and ok.metrics["min"] < 0 < ok.metrics["max"]


def test_output_range_warns_on_an_activation_after_the_last_layer():
    r = run("output-range", experiment(zoo("mlp", relu=True, final_scale=20.0)))  # large enough to exceed 1
    assert r.status == "warn" and r.metrics["looks_like"] == "non-negative" and "ReLU" in r.summary


def test_output_range_note_on_log_softmax_is_not_a_warning():
    import skeleton_zoo

    class LogSoftmaxMLP(skeleton_zoo.MLP):
        def forward(self, x):
            return F.log_softmax(super().forward(x), dim=1)

    skeleton_zoo.LogSoftmaxMLP = LogSoftmaxMLP
    try:
        r = run("output-range", experiment({"factory": "skeleton_zoo:LogSoftmaxMLP"}))
    finally:
        del skeleton_zoo.LogSoftmaxMLP
    assert r.status == "pass" and r.metrics["looks_like"] == "log-probabilities"


def test_output_range_fails_when_regression_outputs_broadcast_against_targets():
    bad = run("output-range", experiment(zoo("regression", flat=True), data=data("regression", target_dims=2), task="regression"))
    assert bad.status == "fail" and "broadcast" in bad.summary
    good = run("output-range", experiment(zoo("regression"), data=data("regression", target_dims=2), task="regression"))
    assert good.status == "pass", good.summary


def test_output_range_says_precisely_what_applies_to_a_last_batchnorm_batch_of_one():
    # 600 × 4/5 = 480 training examples; batch 479 leaves a last batch of one, which the trainer drops.
    exp = experiment({"name": "mlp", "batchnorm": True}, data=data("imbalanced"), train={"batch_size": 479})
    r = run("output-range", exp)
    assert r.status == "pass"
    assert r.metrics["last_batch"] == 1 and r.metrics["batchnorm_layers"] == 2
    assert "drops the last incomplete batch" in r.summary
    assert BatchStream(load_data(exp).train, 479, 0, torch.device("cpu")).per_epoch == 1
    plain = run("output-range", experiment({"name": "mlp"}, data=data("imbalanced"), train={"batch_size": 479}))
    assert "drops" not in plain.summary


def test_the_probability_floor_formula():
    # Cross-entropy of softmax(p) when p is a perfect one-hot over C classes.
    for c in (2, 10, 27):
        p = F.one_hot(torch.tensor([0]), c).double()
        assert float(F.cross_entropy(p, torch.tensor([0]))) == pytest.approx(math.log(1 + (c - 1) / math.e))
