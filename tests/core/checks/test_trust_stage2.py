"""Stage-2 checks on models modelled on public reports (issue 10, classes 3, 4 and 8): correct designs a check used
to flag pass, and the bug beside each still fails."""
from __future__ import annotations

import pytest
from skeleton_zoo import NAMES, data, experiment, run, zoo

pytestmark = pytest.mark.timeout(180)
SMALL_IMAGES = dict(data=data("images"), checks={"batch_size": 4}, train={"batch_size": 8})


def lm(model: dict):
    return experiment(model, data=NAMES, task="language-model")


# ------------------------------------------------------------------------------------------ class 3: grad-flow


def test_grad_flow_passes_rezero_whose_branches_get_a_gradient_from_the_second_step():
    """ReZero (arXiv:2003.04887; performer-pytorch#28 called it "non-functional" from the first step alone)."""
    r = run("grad-flow", experiment(zoo("rezero")))
    assert r.status == "pass", r.summary
    late = r.metrics["first_grad_step"]
    assert set(late) == {f"blocks.{i}.{j}.{w}" for i in (0, 1) for j in (0, 2) for w in ("weight", "bias")}
    assert set(late.values()) == {2} and r.metrics["steps"] == 2
    assert "ReZero" in r.summary and "ReZero" in r.hint


def test_grad_flow_fails_a_rezero_gate_that_never_trains():
    """The real bug beside it: α registered as a buffer stays 0, so the residual branches never learn."""
    r = run("grad-flow", experiment(zoo("rezero", gate="buffer")))
    assert r.status == "fail" and r.metrics["steps"] == 5, r.summary
    assert len(r.metrics["zero_grad"]) == 8 and all(n.startswith("blocks.") for n in r.metrics["zero_grad"])
    assert "ReZero" in r.hint and "buffer" in r.hint


def test_grad_flow_passes_torchvision_resnet18_with_zero_init_residual():
    r = run("grad-flow", experiment({"factory": "zoo_reports:zero_init_resnet18"}, **SMALL_IMAGES))
    assert r.status == "pass", r.summary
    late = r.metrics["first_grad_step"]
    assert "layer1.0.conv1.weight" in late and "layer1.0.bn2.weight" not in late  # γ itself learns at once
    assert "zero_init_residual" in r.summary


def test_grad_flow_still_needs_one_step_only_for_an_ordinary_model():
    r = run("grad-flow", experiment({"name": "mlp", "width": 32}))
    assert r.status == "pass" and r.metrics["steps"] == 1 and r.metrics["first_grad_step"] == {}


# ------------------------------------------------------------------------------------------ class 4: causality


def test_causality_counts_only_violations_that_the_models_own_dtype_confirms():
    """A kernel that behaves differently in float64 (pytorch/pytorch#170400's mask polarity, on a fallback path):
    float64 shows violations, float32 — what training runs — does not."""
    r = run("causality", lm(zoo("kernel-gpt")))
    assert r.status == "pass", r.summary
    assert r.metrics["dtype"] == "float64" and r.metrics["model_dtype"] == "float32"
    assert r.metrics["unconfirmed"] > 0 and r.metrics["violation_count"] == 0
    assert "did not reproduce in the model's own float32" in r.summary


def test_causality_fails_when_the_models_own_dtype_sees_the_future_too():
    r = run("causality", lm(zoo("kernel-gpt", fused=())))
    assert r.status == "fail" and r.metrics["unconfirmed"] == 0, r.summary
    assert all(t < u for t, u in r.metrics["violations"])


def test_batch_independence_counts_only_leaks_that_the_models_own_dtype_confirms():
    r = run("batch-independence", experiment(zoo("kernel-norm")))
    assert r.status == "pass", r.summary
    assert r.metrics["unconfirmed"] == r.metrics["examples_tested"] and r.metrics["leaks"] == {}
    assert "did not confirm" in r.summary
    bug = run("batch-independence", experiment(zoo("kernel-norm", fused=())))
    assert bug.status == "fail" and bug.metrics["unconfirmed"] == [], bug.summary


# ------------------------------------------------------------------------------------------ class 8: overfit-batch


TUTORIAL = dict(model=zoo("tutorial-net"), data=data("images", n=200, side=16))


def test_overfit_keeps_going_while_a_dropout_cnn_still_improves():
    """PyTorch's tutorial CNN with dropout 0.7 needs more than the old fixed 500 steps (it warned "stuck at 0.34 …
    but still going down 0.70 → 0.59", two losses of different modes); patience lets it finish."""
    r = run("overfit-batch", experiment(**TUTORIAL, checks={"overfit_batch_size": 16}))
    assert r.status == "pass", r.summary
    assert r.metrics["steps"] > 500 and r.metrics["stopped"] == "fitted"
    assert r.metrics["loss"] <= r.metrics["target"] and r.metrics["accuracy"] == 1.0


def test_overfit_out_of_time_names_only_eval_mode_losses():
    r = run("overfit-batch", experiment(**TUTORIAL, checks={"overfit_batch_size": 16, "overfit_seconds": 0.3}))
    assert r.status == "warn" and r.metrics["stopped"] == "time-budget", r.summary
    assert r.summary.count("eval-mode loss") == 2 and "0.3 s time budget" in r.summary
    assert "checks.overfit_seconds" in r.hint
    lowest, last = r.metrics["loss"], r.metrics["eval_curve"][-1]
    assert f"no lower than {lowest:.4g}" in r.summary and f"→ {last:.4g} over" in r.summary


def test_overfit_still_fails_a_plateau_after_its_patience():
    r = run("overfit-batch", experiment(zoo("mlp", softmax=True), checks={"overfit_steps": 100}))
    assert r.status == "fail" and r.metrics["stopped"] == "plateau" and r.metrics["cause"] == "probabilities"
    assert "no eval-mode gain of 1% in its last 100 steps" not in r.summary  # the floor explains it, not the timer
    assert "eval-mode loss got no lower than" in r.summary
