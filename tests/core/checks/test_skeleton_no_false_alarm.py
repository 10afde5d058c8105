"""Correct models must not raise alarms: BatchNorm, dropout, resnet18, an LSTM, a causal transformer."""
import pytest
from skeleton_zoo import NAMES, context, data, experiment, run, zoo

pytestmark = pytest.mark.timeout(180)

CORRECT = {
    "mlp-batchnorm": dict(model={"name": "mlp", "batchnorm": True, "width": 64}),
    "cnn-dropout": dict(model={"name": "cnn", "dropout": 0.3, "width": 32}),
    "resnet18": dict(model={"name": "resnet18"}, data=data("images"), checks={"batch_size": 4}, train={"batch_size": 8}),
    "lstm": dict(model=zoo("bilstm", fixed=True)),
    # Characters are imbalanced: a well-initialised language model starts from the token prior.
    "causal-transformer": dict(model={**zoo("gpt"), "init_bias": True}, data=NAMES, task="language-model"),
}
CHECKS = ["seed", "init-loss", "overfit-batch", "batch-independence", "causality", "batch-view", "eval-mode",
          "grad-flow", "output-range"]


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_models_pass_every_cheap_stage2_check(name):
    spec = dict(CORRECT[name])
    spec["train"] = {"lr": 3e-3, **spec.get("train", {})}
    ctx = context(experiment(**spec))
    # resnet18 on one CPU thread: the seed check (three short trainer runs) is covered by the others.
    results = {check_id: run(check_id, ctx) for check_id in CHECKS if not (name == "resnet18" and check_id == "seed")}
    bad = {k: (r.status, r.summary) for k, r in results.items() if r.status not in ("pass", "skip")}
    assert not bad, bad
    language_model = spec.get("task") == "language-model"
    assert results["causality"].status == ("pass" if language_model else "skip")
    assert results["batch-independence"].status == "pass"


@pytest.mark.parametrize("name", ["mlp-batchnorm", "cnn-dropout"])
def test_correct_models_beat_the_zeroed_input(name):
    r = run("zero-input", experiment(**CORRECT[name], train={"lr": 3e-3}, checks={"zero_input_steps": 100}))
    assert r.status == "pass", r.summary
