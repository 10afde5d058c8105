"""The wiggle alarm's rules on hand-made loss curves (a reference independent of any training run)."""
import math
import random

from recipe_tui.core.events import Step
from recipe_tui.core.wiggle import PERSIST, WiggleWatch


def feed(watch, losses, maxes=None, every=10):
    fired = []
    for i, loss in enumerate(losses):
        step = Step(step=1 if i == 0 else i * every, loss=loss, lr=1e-3, loss_max=(maxes or losses)[i])
        line = watch.observe(step)
        if line is not None:
            fired.append((step.step, line))
    return fired


def decay(n, start=2.3, end=1e-3, noise=0.3, seed=0):
    rng = random.Random(seed)
    return [max(end, start * math.exp(-i / 15)) * math.exp(rng.gauss(0, noise)) for i in range(n)]


def test_a_smooth_decay_with_batch_noise_is_quiet():
    assert feed(WiggleWatch(), decay(300)) == []


def test_a_batch_spike_late_in_training_is_noise_at_that_loss_not_an_alarm():
    losses = decay(200)
    maxes = list(losses)
    maxes[150] = 0.05  # 50× the median, but 0.05 ≪ a quarter of the loss at init
    assert feed(WiggleWatch(), losses, maxes) == []


def test_a_blow_up_between_logs_fires_once():
    losses = [2.3, 6.4, 2.7, 2.4] + [2.33] * 100
    maxes = [2.3, 1671.0] + losses[2:]
    watch = WiggleWatch()
    fired = feed(watch, losses, maxes)
    assert [s for s, _ in fired] == [10] and "spike" in fired[0][1].message and "loss 1671 " in fired[0][1].message
    assert feed(watch, [2.3, 900.0, 2.3], [2.3, 900.0, 2.3]) == [], "once per run"


def test_a_loss_that_keeps_jumping_fires_the_wiggle_rule_after_it_persists():
    rng = random.Random(1)
    losses = decay(30) + [rng.choice([0.02, 0.6, 0.05, 0.8]) for _ in range(60)]
    fired = feed(WiggleWatch(), losses)
    first = next(s for s, line in fired if "noise" in line.message)
    assert first >= (30 + PERSIST - 1) * 10, "not before the wiggling persisted for PERSIST logs"


def test_state_round_trip_keeps_the_reference_and_what_fired():
    watch = WiggleWatch()
    feed(watch, [2.3, 6.4, 2.4], [2.3, 1671.0, 2.4])
    again = WiggleWatch()
    again.load_state_dict(watch.state_dict())
    assert again.scale == 2.3 and again.alarms == watch.alarms
    assert feed(again, [2.3, 900.0], [2.3, 900.0]) == []
