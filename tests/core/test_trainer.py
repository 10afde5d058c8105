"""The trainer against an independent reference: a plain, hand-written PyTorch loop."""
import math
import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import TensorPairs, load_data
from recipe_tui.core.events import Failed, Finished, LogLine, Step
from recipe_tui.core.models import build_model
from recipe_tui.core.trainer import Trainer, lr_at, seed_everything


def digits_exp(**train):
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    return exp.replace("train", **train) if train else exp


def plain_loop(exp, splits, steps):
    """What a user would write by hand: Adam, cross-entropy, reshuffle every epoch with seed + epoch."""
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    opt = torch.optim.Adam(model.parameters(), lr=exp.train.lr)
    x_all, y_all, bs = splits.train.x, splits.train.y, exp.train.batch_size
    per_epoch = len(x_all) // bs
    losses = []
    for step in range(steps):
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(exp.train.seed + epoch))
        idx = perm[pos * bs:(pos + 1) * bs]
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.mark.timeout(120)
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_losses_match_a_plain_pytorch_loop_to_5_decimals(dropout):
    exp = digits_exp(steps=60, log_every=1, eval_every=10**6, checkpoint_every=10**6)
    exp = exp.replace("model", dropout=dropout)
    splits = load_data(exp)
    reference = plain_loop(exp, splits, 60)
    events = []
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    result = Trainer(model, exp.task, splits.train, None, exp.train, RunControl(emit=events.append), device=torch.device("cpu")).fit()
    assert isinstance(result, Finished) and result.status == "completed" and result.step == 60
    ours = [e.loss for e in events if isinstance(e, Step)]
    assert len(ours) == 60 and 60 > len(splits.train) // exp.train.batch_size, "crosses an epoch boundary"
    for a, b in zip(ours, reference):
        assert round(a, 5) == round(b, 5)
    assert ours[-1] < ours[0] * 0.5, "the loss must actually go down"


@pytest.mark.timeout(60)
def test_nan_loss_fails_with_step_and_last_finite_values():
    class Explodes(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            out = self.lin(x.flatten(1))
            return out * float("inf") if self.calls > 25 else out

    exp = digits_exp(steps=100, log_every=10, eval_every=10**6, checkpoint_every=10**6)
    splits = load_data(exp)
    events = []
    result = Trainer(Explodes(), exp.task, splits.train, None, exp.train, RunControl(emit=events.append)).fit()
    assert isinstance(result, Failed)
    assert result.step == 30 and "between steps 21 and 30" in result.reason
    last_step = [e for e in events if isinstance(e, Step)][-1]
    assert last_step.step == 20 and result.last_loss == last_step.loss and math.isfinite(result.last_loss)
    norms = [e.grad_norm for e in events if isinstance(e, Step) and e.grad_norm is not None]
    assert result.lr == exp.train.lr and result.grad_norm == norms[-1]  # the last one read (step 1)


@pytest.mark.timeout(60)
def test_the_logged_gradient_norm_is_the_norm_torch_computes():
    """Its fast path (one device and dtype) and the general one (mixed dtypes) against torch's own total norm."""
    exp = digits_exp(steps=1, eval_every=10**6, checkpoint_every=10**6)
    splits = load_data(exp)
    for mixed in (False, True):
        seed_everything(0)
        model = build_model(exp, splits.info)
        if mixed:
            model.extra = nn.Linear(3, 3).double()  # a float64 layer beside the float32 ones
        trainer = Trainer(model, exp.task, splits.train, None, exp.train, device=torch.device("cpu"))
        loss = F.cross_entropy(model(splits.train.x[:64]), splits.train.y[:64])
        if mixed:
            loss = loss + model.extra(torch.ones(1, 3, dtype=torch.float64)).sum().float()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        expected = torch.linalg.vector_norm(torch.cat([g.double().flatten() for g in grads]))
        assert len({g.dtype for g in grads}) == (2 if mixed else 1)
        assert float(trainer._clip()) == pytest.approx(float(expected), rel=1e-5)
        assert float(trainer._clip()) == pytest.approx(float(nn.utils.get_total_norm(grads)), rel=1e-6)


@pytest.mark.timeout(60)
def test_stop_and_pause_are_honoured():
    exp = digits_exp(steps=10**6, log_every=10, eval_every=10**6, checkpoint_every=10**6)
    splits = load_data(exp)
    stop, pause = threading.Event(), threading.Event()
    events = []

    def emit(e):
        events.append(e)
        if isinstance(e, Step) and e.step >= 50 and not pause.is_set():
            pause.set()
            threading.Timer(0.3, stop.set).start()

    saved = []
    result = Trainer(build_model(exp, splits.info), exp.task, splits.train, splits.val, exp.train,
                     RunControl(emit=emit, stop=stop, pause=pause), save=lambda s: saved.append(s["step"]) or "mem").fit()
    assert isinstance(result, Finished) and result.status == "stopped"
    paused = [e.message for e in events if isinstance(e, LogLine) and e.message.startswith("paused at step")]
    assert paused == [f"paused at step {result.step}"], "no step runs while paused"
    assert [e.step for e in events if isinstance(e, Step)][-1] == result.step, "every step's event came before the pause"
    assert saved == [result.step], "stopping writes a checkpoint"


def test_lr_schedules():
    cfg = digits_exp(lr=1.0, steps=100, warmup_steps=10, schedule="cosine").train
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(100, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(55, cfg) == pytest.approx(0.5)
    constant = digits_exp().train
    assert {lr_at(s, constant) for s in (0, 500, 1499)} == {constant.lr}


@pytest.mark.timeout(60)
def test_eval_covers_the_entire_validation_set():
    exp = digits_exp(steps=1)
    splits = load_data(exp)
    model = build_model(exp, splits.info)
    trainer = Trainer(model, exp.task, splits.train, splits.val, exp.train.__class__(eval_batch_size=100))
    ev = trainer.evaluate()
    with torch.no_grad():
        out = model(splits.val.x)
    assert ev.loss == pytest.approx(F.cross_entropy(out, splits.val.y).item(), rel=1e-5)
    assert ev.metrics["accuracy"] == pytest.approx((out.argmax(1) == splits.val.y).float().mean().item())


def test_tensor_pairs_rejects_mismatched_lengths():
    with pytest.raises(AssertionError):
        TensorPairs(torch.zeros(3, 2), torch.zeros(4))


@pytest.mark.timeout(60)
def test_models_with_several_outputs_train_like_the_checks_see_them():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, x):
            logits = self.lin(x.flatten(1))
            return logits, logits.pow(2).mean()  # (logits, auxiliary): the checks take the first tensor too

    exp = digits_exp(steps=200, eval_every=100)
    splits = load_data(exp)
    result = Trainer(WithAux(), exp.task, splits.train, splits.val, exp.train).fit()
    assert isinstance(result, Finished) and result.final["accuracy"] > 0.8


@pytest.mark.timeout(60)
def test_regression_targets_of_shape_n1_do_not_broadcast():
    from recipe_tui.core.tasks import task_of

    regression_loss = task_of("regression").loss
    out, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[1.0], [2.0], [3.0]])
    assert regression_loss(out, y).item() == 0.0  # broadcasting (3,) against (3, 1) would give 4/3
    assert regression_loss(y, out).item() == 0.0
