"""The task objects against plain PyTorch and hand computations; and the rule that nothing else branches on a
task's name."""
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recipe_tui.core.checks import Verdict
from recipe_tui.core.data import DataInfo
from recipe_tui.core.tasks import Task, TargetStats, task_of

CORE = Path(__file__).resolve().parents[2] / "core"


def test_classification_loss_per_sample_loss_and_accuracy_match_plain_pytorch():
    task = task_of("classification")
    out = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 3.0], [1.0, 1.5, 0.0], [0.0, 0.0, 5.0]])
    y = torch.tensor([0, 2, 0, 1])
    assert float(task.loss(out, y)) == pytest.approx(float(F.cross_entropy(out, y)))
    per = task.per_sample_loss(out, y)
    assert per.shape == (4,) and float(per[1]) == pytest.approx(-math.log(F.softmax(out[1], 0)[2].item()))
    assert float(per.mean()) == pytest.approx(float(task.loss(out, y)))
    right, count = task.correct(out, y)
    assert (int(right), count) == (2, 4) and task.accuracy(out, y) == 0.5
    assert task.predict(out).tolist() == [0, 2, 1, 2]
    assert task.targets(y.int()).dtype == torch.int64 and task.metric == "accuracy"


def test_language_model_ignores_padding_in_loss_accuracy_and_per_sample_loss():
    task = task_of("language-model")
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 4, 5, generator=g)
    y = torch.tensor([[1, 2, 3, -1], [4, -1, -1, -1]])
    keep = y != -1
    ce = torch.stack([F.cross_entropy(out[b, t], y[b, t]) for b in range(2) for t in range(4) if keep[b, t]])
    assert float(task.loss(out, y)) == pytest.approx(float(ce.mean()))
    per = task.per_sample_loss(out, y)
    assert float(per[0]) == pytest.approx(float(ce[:3].mean())) and float(per[1]) == pytest.approx(float(ce[3]))
    right, count = task.correct(out, y)
    assert count == 4 and int(right) == int(((out.argmax(-1) == y) & keep).sum())


def test_regression_has_no_metric_and_never_broadcasts_n_against_n1():
    task = task_of("regression")
    out, y = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([1.0, 2.0, 3.0])
    assert float(task.loss(out, y)) == pytest.approx(1 / 3)  # broadcasting (3, 1) against (3,) would give 5/3
    assert task.per_sample_loss(out, y).tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert task.metric is None and task.correct(out, y)[1] == 0 and task.accuracy(out, y) == 1.0
    assert task.loss_unit(y) == pytest.approx(float(y.var(unbiased=False)))


def test_priors_and_init_bias_against_hand_computations():
    info = DataInfo(kind="tabular", input_shape=(4,), num_classes=4)
    cls = task_of("classification")
    st = cls.target_stats(torch.tensor([0, 0, 0, 1, 1, 2]), info)  # class 3 never occurs
    assert st.counts.tolist() == [3, 2, 1, 0] and st.n == 6
    p = torch.tensor([3, 2, 1]) / 6
    assert cls.prior_loss(st) == pytest.approx(float(-(p * p.log()).sum()))
    assert cls.plain_loss(st, 4) == pytest.approx(math.log(4))
    assert cls.bias_init(st).exp().sum() == pytest.approx(1.0) and cls.bias_kind == "log-prior"
    lm = task_of("language-model")
    assert lm.target_stats(torch.tensor([[1, 1, -1], [2, -1, -1]]), info).counts.tolist() == [0, 2, 1, 0]
    reg = task_of("regression")
    st = reg.target_stats(torch.tensor([1.0, 3.0]), info)
    assert reg.prior_loss(st) == pytest.approx(1.0) and reg.plain_loss(st, 1) == pytest.approx(5.0)
    assert reg.bias_init(st).tolist() == [2.0] and reg.bias_kind == "mean"


def test_sampling_follows_the_softmax_and_regression_predicts_its_mean():
    task = task_of("classification")
    logits = torch.log(torch.tensor([[0.2, 0.8]])).expand(4000, 2)
    drawn = task.sample(logits, torch.Generator().manual_seed(0))
    assert drawn.shape == (4000,) and abs(float(drawn.double().mean()) - 0.8) < 0.03
    lm = task_of("language-model")
    peaked = torch.full((2, 3, 5), -50.0).scatter(2, torch.tensor([[[1], [4], [0]], [[2], [2], [3]]]), 50.0)
    assert torch.equal(lm.sample(peaked), lm.predict(peaked))
    out = torch.tensor([[1.5], [-2.0]])
    assert torch.equal(task_of("regression").sample(out), out)


def test_task_of_names_and_objects():
    assert {task_of(n).name for n in ("classification", "language-model", "regression")} == {
        "classification", "language-model", "regression"}
    t = task_of("language-model")
    assert task_of(t) is t and isinstance(t, Task) and t.sequence and t.classes and not t.example_labels
    with pytest.raises(ValueError, match="unknown task"):
        task_of("segmentation")
    assert TargetStats(counts=torch.tensor([1.0, 1.0])).entropy() == pytest.approx(math.log(2))


def test_a_verdict_has_one_of_the_five_statuses():
    assert Verdict("warn", "s").metrics == {}
    with pytest.raises(ValueError, match="pass, warn, fail, error, skip"):
        Verdict("ok", "s")


def test_nothing_outside_the_task_module_branches_on_a_task_name():
    pattern = re.compile(r"""task\s*(==|!=)|task\s+in\s*\(|==\s*["'](classification|language-model|regression)["']""")
    hits = [f"{p.relative_to(CORE)}:{n}: {line.strip()}"
            for p in CORE.rglob("*.py") if p.name != "tasks.py"
            for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []
