"""Trainer vs a plain PyTorch loop: same seed, model, data order. Prints the time ratio (target ≤ 1.02)
and checks the losses agree to 5 decimals. Run: .venv/bin/python benchmarks/parity.py [steps] [blocks]

Time is the CPU time of the training thread (``time.thread_time``), not wall time: on a shared 2-core box
wall time swings by ±30 % between runs. CPU time swings too (other jobs evict the caches, the host moves
the virtual cores), by ±15 % between runs seconds apart, so whole runs one after the other cannot resolve
2 %. Both loops therefore train side by side in short paired blocks: block k trains the plain loop for
``steps`` steps and the trainer for the same steps (the trainer's ``fit`` continues where it stopped, as
a resumed run does), alternating which goes first. A pair runs within a fraction of a second, under the
same conditions; the median of the pairs' ratios is the figure, and its spread is printed.
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from recipe_tui.core.config import load_recipes, shipped_recipes_path
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import Step
from recipe_tui.core.models import build_model
from recipe_tui.core.trainer import Trainer, seed_everything


class Plain:
    """The hand-written loop, trained ``run(n)`` steps at a time."""

    def __init__(self, exp, splits) -> None:
        seed_everything(exp.train.seed)
        self.model = build_model(exp, splits.info)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=exp.train.lr)
        self.exp, self.x_all, self.y_all = exp, splits.train.x, splits.train.y
        self.step, self.losses = 0, []

    def run(self, steps: int) -> float:
        model, opt, x_all, y_all, bs = self.model, self.opt, self.x_all, self.y_all, self.exp.train.batch_size
        per_epoch, seed, log_every = len(x_all) // bs, self.exp.train.seed, self.exp.train.log_every
        t0 = time.thread_time()
        for step in range(self.step, self.step + steps):
            epoch, pos = divmod(step, per_epoch)
            if pos == 0 or step == self.step:
                perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed + epoch))
            idx = perm[pos * bs:(pos + 1) * bs]
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if (step + 1) % log_every == 0 or step == 0:  # the trainer logs the first step too
                self.losses.append(loss.item())
        self.step += steps
        return time.thread_time() - t0

    def logged(self) -> list[float]:
        return self.losses


class Ours:
    """The trainer, its ``fit`` continued ``run(n)`` steps at a time."""

    def __init__(self, exp, splits) -> None:
        seed_everything(exp.train.seed)
        self.events: list = []
        self.trainer = Trainer(build_model(exp, splits.info), exp.task, splits.train, None, exp.train,
                               RunControl(emit=self.events.append), device=torch.device("cpu"))

    def run(self, steps: int) -> float:
        trainer = self.trainer
        trainer.cfg = dataclasses.replace(trainer.cfg, steps=trainer.step + steps)
        t0 = time.thread_time()
        trainer.fit()
        return time.thread_time() - t0

    def logged(self) -> list[float]:
        return [e.loss for e in self.events if isinstance(e, Step)]


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    blocks = int(sys.argv[2]) if len(sys.argv) > 2 else 150  # the median of 60 still moved by ±0.4 % between runs
    torch.set_num_threads(1)
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    exp = exp.replace("train", steps=steps * blocks, eval_every=10**9, checkpoint_every=10**9)
    splits = load_data(exp)
    Ours(exp, splits).run(200)  # warm-up: first-call allocations and lazy imports are not the loop's cost
    plain, ours = Plain(exp, splits), Ours(exp, splits)
    ratios, t_plain, t_ours = [], [], []
    for k in range(blocks):
        if k % 2 == 0:
            tp = plain.run(steps)
            to = ours.run(steps)
        else:
            to = ours.run(steps)
            tp = plain.run(steps)
        ratios.append(to / tp)
        t_plain.append(tp)
        t_ours.append(to)
    l_plain, l_ours = plain.logged(), ours.logged()
    same = len(l_plain) == len(l_ours) and all(round(a, 5) == round(b, 5) for a, b in zip(l_plain, l_ours))
    q = statistics.quantiles(ratios, n=4)
    us = 1e6 / steps
    print(f"parity: digits-mlp on CPU, 1 thread, {blocks} paired blocks of {steps} steps ({steps * blocks} steps "
          "each), alternating order, CPU time of the loop's thread")
    print(f"  per step: plain loop {statistics.median(t_plain) * us:.0f} µs, trainer {statistics.median(t_ours) * us:.0f} µs "
          f"(medians; blocks spread {min(t_plain) * us:.0f}–{max(t_plain) * us:.0f} µs for the plain loop)")
    print(f"  time ratio trainer/plain: median {statistics.median(ratios):.3f}, quartiles {q[0]:.3f}–{q[2]:.3f}, "
          f"range {min(ratios):.3f}–{max(ratios):.3f}; all blocks together {sum(t_ours) / sum(t_plain):.3f}; "
          "target <= 1.02")
    print(f"  losses identical to 5 decimals: {same} ({len(l_plain)} logged losses)")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
