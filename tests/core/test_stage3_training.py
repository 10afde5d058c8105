"""Stage 3 in the trainer: the wiggle alarm, prediction dynamics and early stopping, on real digits and names runs."""
import json
import math

import pytest
import torch

from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import Eval, Finished, LogLine, Predictions, Step
from recipe_tui.core.jobs import describe_outcome, run_training
from recipe_tui.core.models import build_model
from recipe_tui.core.rundir import read_events
from recipe_tui.core.trainer import Trainer, seed_everything
from recipe_tui.core.wiggle import HINT

pytestmark = pytest.mark.timeout(180)


def recipe(name="digits-mlp", **train):
    exp = load_recipes(shipped_recipes_path()).experiment(name)
    return exp.replace("train", device="cpu", **train)


def events_of(out):
    return list(read_events(out.run_dir / "events.jsonl"))


def wiggle_lines(events):
    return [e for e in events if isinstance(e, LogLine) and HINT in e.message]


def test_the_wiggle_alarm_fires_at_lr_0_5_once_per_kind_and_marks_the_run(tmp_path):
    out = run_training(recipe(lr=0.5, steps=300), runs_root=tmp_path)
    events = events_of(out)
    lines = wiggle_lines(events)
    assert out.status == "completed" and lines, "Adam at lr 0.5 throws digits-mlp's loss from 2.3 to ~1,000"
    assert all(e.level == "warning" for e in lines)
    kinds = [a["kind"] for a in out.alarms]
    assert len(kinds) == len(set(kinds)) == len(lines), "each kind of alarm fires once, not every step"
    spike = next(a for a in out.alarms if a["kind"] == "spike")
    assert spike["loss_max"] > 3 * spike["median"] and "lr 0.5" in spike["message"]
    finished = [e for e in events if isinstance(e, Finished)][-1]
    assert finished.alarms == out.alarms
    assert describe_outcome(out)["alarms"][0]["kind"] == "spike"  # train --json carries it
    assert json.loads((out.run_dir / "summary.json").read_text())["alarms"] == json.loads(json.dumps(out.alarms))


@pytest.mark.parametrize("lr", [3e-4, 3e-3])  # the recipe's safe start, and digits-mlp's own lr
def test_the_wiggle_alarm_stays_quiet_on_a_healthy_run(tmp_path, lr):
    out = run_training(recipe(lr=lr), runs_root=tmp_path)  # the recipe's 1,500 steps
    assert out.status == "completed" and out.alarms == [] and not wiggle_lines(events_of(out))
    assert out.final["accuracy"] > 0.9


def test_the_first_step_is_logged_and_loss_max_covers_the_steps_between_logs(tmp_path):
    out = run_training(recipe(lr=0.5, steps=30, log_every=10), runs_root=tmp_path)
    steps = [e for e in events_of(out) if isinstance(e, Step)]
    assert [e.step for e in steps] == [1, 10, 20, 30]
    assert all(e.loss_max >= e.loss for e in steps)
    assert steps[1].loss_max > 100 * steps[0].loss, "the blow-up at steps 2–9 is seen although they are not logged"


def test_predictions_of_a_fixed_validation_batch_are_recorded_at_every_evaluation(tmp_path):
    out = run_training(recipe(steps=200, eval_every=100), runs_root=tmp_path)
    events = events_of(out)
    preds = [e for e in events if isinstance(e, Predictions)]
    evals = [e for e in events if isinstance(e, Eval)]
    assert [p.step for p in preds] == [e.step for e in evals] == [100, 200]
    val_y = load_data(recipe()).val.y[:8].tolist()
    for p in preds:
        assert p.kind == "classes" and [ex["label"] for ex in p.examples] == val_y
        for ex in p.examples:
            assert len(ex["probs"]) == 10 and math.isclose(sum(ex["probs"]), 1.0, abs_tol=1e-3)
            assert ex["predicted"] == max(range(10), key=ex["probs"].__getitem__)
    p_label = [sum(ex["probs"][ex["label"]] for ex in p.examples) / 8 for p in preds]
    assert p_label[1] > p_label[0] > 0.5, "the model grows more sure of the right classes as it trains"


def test_names_lm_records_sampled_names_decoded_with_the_vocabulary(tmp_path):
    exp = recipe("names-lm", steps=120, eval_every=60)
    out = run_training(exp, runs_root=tmp_path)
    preds = [e for e in events_of(out) if isinstance(e, Predictions)]
    assert [p.step for p in preds] == [60, 120] and all(p.kind == "text" for p in preds)
    vocab = load_data(exp).info.vocab
    for p in preds:
        assert len(p.examples) == 8
        for ex in p.examples:
            assert ex["tokens"][0] == 0 and set(ex["text"]) <= set(vocab[1:])  # '.' starts a name and ends it
            assert "".join(vocab[t] for t in ex["tokens"][1:1 + len(ex["text"])]) == ex["text"]
    assert sum(len(ex["text"]) for ex in preds[-1].examples) > 8, "after 120 steps the model writes names, not '.'"


def test_recording_predictions_leaves_training_unchanged():
    """The probe draws from its own generator: the losses are those of a run without it."""
    losses = []
    for n in (0, 8):
        exp = recipe(steps=60, eval_every=20, log_every=1, predictions=n).replace("model", dropout=0.3)
        splits = load_data(exp)
        seed_everything(exp.train.seed)
        events = []
        Trainer(build_model(exp, splits.info), exp.task, splits.train, splits.val, exp.train,
                RunControl(emit=events.append), device=torch.device("cpu"), info=splits.info).fit()
        assert sum(isinstance(e, Predictions) for e in events) == (3 if n else 0)
        losses.append([e.loss for e in events if isinstance(e, Step)])
    assert losses[0] == losses[1]


def test_early_stopping_on_validation_loss(tmp_path):
    out = run_training(recipe(steps=3000, eval_every=25, early_stop=3), runs_root=tmp_path)
    events = events_of(out)
    evals = [e for e in events if isinstance(e, Eval)]
    assert out.status == "completed" and out.steps < 3000 and out.early_stop["step"] == out.steps
    best = min(evals, key=lambda e: e.loss)
    assert out.early_stop["best_step"] == best.step and out.early_stop["best_val_loss"] == best.loss
    assert [e.step for e in evals if e.step > best.step] == [best.step + 25 * k for k in (1, 2, 3)]
    assert out.final["val_loss"] == evals[-1].loss, "the last evaluation is the final one, not repeated"
    assert any(isinstance(e, LogLine) and e.message.startswith("early stop at step") for e in events)
    assert describe_outcome(out)["early_stop"]["patience"] == 3
    assert json.loads((out.run_dir / "summary.json").read_text())["status"] == "completed"
