"""init-loss and init-bias, and core/init_bias.apply_init_bias, against hand computations."""
import math

import pytest
import torch
import torch.nn.functional as F
from skeleton_zoo import NAMES, context, data, experiment, run, zoo

from recipe_tui.core.data import load_data
from recipe_tui.core.init_bias import apply_init_bias
from recipe_tui.core.models import build_initialized_model, build_model

pytestmark = pytest.mark.timeout(120)


def test_init_loss_passes_at_ln_c_on_balanced_digits():
    exp = experiment(zoo("mlp"))
    r = run("init-loss", exp)
    assert r.status == "pass", r.summary
    y = load_data(exp).train.y
    p = torch.bincount(y).double() / len(y)
    assert r.metrics["expected"] == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    assert r.metrics["uniform_guess"] == pytest.approx(math.log(10), rel=1e-5)
    assert abs(r.metrics["loss"] - math.log(10)) < 0.1


def test_init_loss_fails_when_the_final_layer_is_over_confident():
    r = run("init-loss", experiment(zoo("mlp", final_scale=30.0)))
    assert r.status == "fail"
    assert "too high" in r.summary and r.metrics["loss"] > 1.5 * r.metrics["expected"]
    assert "final layer" in r.hint


def test_imbalanced_classes_warn_at_uniform_init_and_pass_with_init_bias():
    model = zoo("mlp", in_features=16, classes=3)
    plain = run("init-loss", experiment(model, data=data("imbalanced")))
    assert plain.status == "warn" and "imbalanced" in plain.summary
    assert plain.metrics["loss"] == pytest.approx(math.log(3), rel=0.15)
    assert "init_bias" in plain.hint
    on = run("init-loss", experiment({**model, "init_bias": True}, data=data("imbalanced")))
    assert on.status == "pass", on.summary
    assert on.metrics["loss"] == pytest.approx(on.metrics["expected"], rel=0.1)


def test_init_bias_warns_and_measures_the_gain_on_imbalanced_classes():
    r = run("init-bias", experiment(zoo("mlp", in_features=16, classes=3), data=data("imbalanced")))
    assert r.status == "warn"
    assert r.metrics["layer"] == "head"
    assert r.metrics["loss_before"] > 1.0 > 0.5 > r.metrics["loss_after"]
    assert r.metrics["loss_after"] == pytest.approx(r.metrics["expected"], rel=0.1)
    assert "model.init_bias = true" in r.hint and "recipes.toml" in r.hint


def test_init_bias_fix_applies_for_the_rest_of_the_job_and_remeasures_init_loss():
    ctx = context(experiment(zoo("mlp", in_features=16, classes=3), data=data("imbalanced")), fix=True)
    r = run("init-bias", ctx)
    assert r.metrics["init_loss_after_fix"] == pytest.approx(r.metrics["loss_after"], rel=1e-5)
    assert ctx.exp.model.init_bias is True
    assert "model.init_bias = true" in r.hint  # only recipes.toml carries the fix into training
    assert run("init-loss", ctx).status == "pass"


def test_init_bias_passes_on_balanced_digits():
    r = run("init-bias", experiment(zoo("mlp")))
    assert r.status == "pass" and "balanced" in r.summary
    assert abs(r.metrics["loss_after"] - r.metrics["loss_before"]) < 0.05


def test_init_bias_says_clearly_when_there_is_no_final_linear():
    r = run("init-bias", experiment(zoo("convhead")))
    assert r.status == "warn"
    assert "no nn.Linear with 10 outputs" in r.summary and "'head' (Conv2d)" in r.summary
    exp = experiment({**zoo("convhead"), "init_bias": True})
    with pytest.raises(ValueError, match="cannot set the final-layer bias"):
        build_initialized_model(exp, load_data(exp))


def test_apply_init_bias_sets_log_priors_against_a_hand_computation():
    exp = experiment(zoo("mlp", in_features=16, classes=3), data=data("imbalanced"))
    splits = load_data(exp)
    model = build_model(exp, splits.info)
    done = apply_init_bias(model, splits, "classification")
    counts = torch.bincount(splits.train.y, minlength=3).double()
    assert done["layer"] == "head" and done["kind"] == "log-prior"
    assert torch.allclose(F.softmax(model.head.bias.double(), 0), counts / counts.sum(), atol=2e-3)


def test_apply_init_bias_uses_the_token_prior_for_language_models():
    exp = experiment(zoo("gpt"), data=NAMES, task="language-model")
    splits = load_data(exp)
    model = build_model(exp, splits.info)
    apply_init_bias(model, splits, "language-model")
    y = splits.train.y.reshape(-1)
    counts = torch.bincount(y[y != -1], minlength=27).double()
    assert torch.allclose(F.softmax(model.head.bias.double(), 0), counts / counts.sum(), atol=1e-4)


def test_regression_gets_the_target_mean_and_init_loss_sees_the_offset():
    exp = experiment(zoo("regression"), data=data("regression"), task="regression")
    splits = load_data(exp)
    model = build_model(exp, splits.info)
    done = apply_init_bias(model, splits, "regression")
    assert done["kind"] == "mean" and done["layer"] == "net.2"
    assert float(model.net[2].bias.detach()) == pytest.approx(float(splits.train.y.mean()), rel=1e-5)
    r = run("init-loss", exp)
    assert r.status == "warn" and "not centred" in r.summary
    assert r.metrics["expected"] == pytest.approx(float(splits.train.y.double().var(unbiased=False)), rel=1e-5)
    b = run("init-bias", exp)
    assert b.status == "warn" and b.metrics["loss_after"] < 0.2 * b.metrics["loss_before"]


def test_find_final_linear_rejects_a_linear_that_is_not_last():
    from recipe_tui.core.init_bias import find_final_linear

    class LinearThenConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)
            self.post = torch.nn.Conv1d(1, 1, 1)  # a layer with parameters after the linear

        def forward(self, x):
            return self.post(self.fc(x.flatten(1)).unsqueeze(1)).squeeze(1)

    with pytest.raises(ValueError, match="followed by 'post'"):
        find_final_linear(LinearThenConv(), torch.zeros(2, 1, 8, 8), 10)


def test_init_loss_and_output_range_notice_an_output_layer_wider_than_the_classes():
    exp = experiment(zoo("mlp", classes=1000))  # e.g. a torchvision model left at its 1000 ImageNet classes
    r = run("init-loss", exp)
    assert r.status == "warn" and "1000 outputs" in r.summary and "10 classes" in r.summary
    assert r.metrics["uniform_guess"] == pytest.approx(math.log(1000), rel=1e-5)
    o = run("output-range", exp)
    assert o.status == "warn" and "1000 outputs for 10 classes" in o.summary
