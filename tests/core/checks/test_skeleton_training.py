"""seed, zero-input, overfit-batch and grad-flow: each fires on a buggy model and passes its fix."""
import math

import pytest
import torch
from skeleton_zoo import NAMES, context, experiment, run, zoo

from recipe_tui.core.tasks import task_of

pytestmark = pytest.mark.timeout(120)
FAST = {"zero_input_steps": 100}
LR = {"lr": 3e-3}


def test_seed_repeats_with_torch_rng_and_differs_with_another_seed():
    r = run("seed", experiment(zoo("noisy", fixed=True)))
    assert r.status == "pass", r.summary
    assert r.metrics["losses"] == r.metrics["losses_repeat"]
    assert r.metrics["losses"] != r.metrics["losses_other_seed"]
    assert len(r.metrics["losses"]) == 5


def test_seed_fails_when_noise_comes_from_an_unseeded_numpy_generator():
    r = run("seed", experiment(zoo("noisy")))
    assert r.status == "fail"
    assert r.metrics["max_abs_diff"] > 0 and "not seeded" in r.hint


def test_seed_fails_when_the_short_runs_diverge():
    """NaN == NaN must not read as "repeats exactly"."""
    r = run("seed", experiment({"name": "mlp", "width": 32}, train={"lr": 1e30}))
    assert r.status == "fail" and "diverged" in r.summary, r.summary


def test_zero_input_fails_when_the_model_ignores_its_input():
    r = run("zero-input", experiment(zoo("masked"), checks=FAST, train=LR))
    assert r.status == "fail"
    assert r.metrics["real_final"] == pytest.approx(r.metrics["zero_final"], rel=0.02)
    assert len(r.metrics["real_curve"]) > 10


def test_zero_input_passes_once_the_mask_is_fixed():
    r = run("zero-input", experiment(zoo("masked", fixed=True), checks=FAST, train=LR))
    assert r.status == "pass", r.summary
    assert r.metrics["real_final"] < 0.5 * r.metrics["zero_final"]


def test_overfit_softmax_before_cross_entropy_floors_at_ln_1_plus_c_minus_1_over_e():
    r = run("overfit-batch", experiment(zoo("mlp", softmax=True)))
    assert r.status == "fail"
    assert r.metrics["cause"] == "probabilities"
    floor = math.log(1 + 9 / math.e)
    assert r.metrics["probability_floor"] == pytest.approx(floor, rel=1e-5)
    assert r.metrics["loss"] == pytest.approx(floor, rel=0.01)
    assert "softmax" in r.hint


def test_overfit_sigmoid_before_cross_entropy_hits_the_same_floor():
    exp = experiment(zoo("mlp", sigmoid=True))
    r = run("overfit-batch", exp)
    assert r.status == "fail" and r.metrics["cause"] == "probabilities"
    assert "within [0, 1]" in r.summary
    o = run("output-range", exp)
    assert o.status == "warn" and o.metrics["looks_like"] == "in [0, 1]" and "sigmoid" in o.summary


def test_overfit_passes_with_logits_and_labels_every_example():
    r = run("overfit-batch", experiment(zoo("mlp")))
    assert r.status == "pass", r.summary
    assert r.metrics["loss"] <= 0.05 and r.metrics["accuracy"] == 1.0
    assert r.metrics["predictions"] == r.metrics["labels"]


def test_overfit_names_a_model_that_ignores_its_input():
    r = run("overfit-batch", experiment(zoo("masked"), checks={"overfit_steps": 200}))
    assert r.status == "fail" and r.metrics["cause"] == "ignores-input"


def test_overfit_language_model_reaches_the_floor_of_its_batch():
    r = run("overfit-batch", experiment(zoo("gpt"), data=NAMES, task="language-model"))
    assert r.status == "pass", r.summary
    assert r.metrics["floor"] > 0.1  # the first letter after '.' cannot be predicted from '.' alone
    assert r.metrics["accuracy"] >= r.metrics["best_accuracy"] - 1e-6  # dropout noise can get lucky in train mode


def test_achievable_matches_a_hand_computation():
    # Inputs 0 and 1 are identical with labels 3 and 4: at best p = 1/2 each, accuracy 3 of 4.
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 5.0], [7.0, 7.0]])
    y = torch.tensor([3, 4, 1, 0])
    loss, acc = task_of("classification").achievable(x, y)
    assert loss == pytest.approx(2 * math.log(2) / 4)
    assert acc == pytest.approx(0.75)
    # Language model: both sequences start with token 0 and continue differently; position 2 is padding.
    xs = torch.tensor([[0, 5, 6], [0, 7, 8]])
    ys = torch.tensor([[5, 6, -1], [7, 8, -1]])
    loss, acc = task_of("language-model").achievable(xs, ys)
    assert loss == pytest.approx(2 * math.log(2) / 4) and acc == pytest.approx(0.75)


def test_grad_flow_lists_the_detached_branch():
    r = run("grad-flow", experiment(zoo("detached")))
    assert r.status == "fail"
    assert sorted(r.metrics["no_grad"]) == ["branch_b.0.bias", "branch_b.0.weight"]
    assert "detach" in r.hint


def test_grad_flow_passes_the_fixed_branch_and_reports_frozen_parameters():
    assert run("grad-flow", experiment(zoo("detached", fixed=True))).status == "pass"
    ctx = context(experiment(zoo("detached", fixed=True)))
    build = ctx.new_model

    def frozen_model(seed=None):
        model = build(seed)
        model.branch_b.requires_grad_(False)  # frozen on purpose, e.g. a pretrained part
        return model

    ctx.new_model = frozen_model
    r = run("grad-flow", ctx)
    assert r.status == "pass" and "frozen" in r.summary
    assert sorted(r.metrics["frozen"]) == ["branch_b.0.bias", "branch_b.0.weight"]


def test_grad_flow_zero_gradient_when_the_input_is_masked_out():
    r = run("grad-flow", experiment(zoo("masked")))
    assert r.status == "fail" and r.metrics["zero_grad"] == ["net.0.weight"]


def test_a_stopped_job_ends_training_checks_as_skip():
    ctx = context(experiment(zoo("mlp")))
    ctx.stop.set()
    for check_id in ("seed", "zero-input", "overfit-batch", "init-loss"):
        r = run(check_id, ctx)
        assert r.status == "skip" and "stopped" in r.summary, check_id
