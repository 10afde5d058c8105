"""Trainer vs a plain PyTorch loop: same seed, model, data order. Prints the time ratio (target ≤ 1.02)
and checks the losses agree to 5 decimals. Run: .venv/bin/python benchmarks/parity.py [steps] [rounds]

Time is the CPU time of the training thread (``time.thread_time``), not wall time: on a shared 2-core box
wall time swings by ±30 % between runs while the work done does not. With one torch thread every op runs
on this thread, so its CPU time is the loop's cost. The two loops alternate which goes first, and each
round is long enough (default 4,000 steps) that the median resolves a 2 % difference; the spread is printed.
"""
from __future__ import annotations

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


def plain(exp, splits, steps: int) -> tuple[float, list[float]]:
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    opt = torch.optim.Adam(model.parameters(), lr=exp.train.lr)
    x_all, y_all, bs = splits.train.x, splits.train.y, exp.train.batch_size
    per_epoch = len(x_all) // bs
    losses = []
    t0 = time.thread_time()
    for step in range(steps):
        epoch, pos = divmod(step, per_epoch)
        if pos == 0:
            perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(exp.train.seed + epoch))
        idx = perm[pos * bs:(pos + 1) * bs]
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % exp.train.log_every == 0 or step == 0:  # the trainer logs the first step too
            losses.append(loss.item())
    return time.thread_time() - t0, losses


def ours(exp, splits, steps: int) -> tuple[float, list[float]]:
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    events: list = []
    trainer = Trainer(model, exp.task, splits.train, None, exp.train, RunControl(emit=events.append), device=torch.device("cpu"))
    t0 = time.thread_time()
    trainer.fit()
    return time.thread_time() - t0, [e.loss for e in events if isinstance(e, Step)]


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    torch.set_num_threads(1)
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    exp = exp.replace("train", steps=steps, eval_every=10**9, checkpoint_every=10**9)
    splits = load_data(exp)
    ours(exp, splits, 200)  # warm-up: first-call allocations and lazy imports are not the loop's cost
    ratios, t_plain_all, t_ours_all = [], [], []
    for r in range(rounds):  # interleaved, alternating which goes first: this machine is noisy
        if r % 2 == 0:
            t_plain, l_plain = plain(exp, splits, steps)
            t_ours, l_ours = ours(exp, splits, steps)
        else:
            t_ours, l_ours = ours(exp, splits, steps)
            t_plain, l_plain = plain(exp, splits, steps)
        ratios.append(t_ours / t_plain)
        t_plain_all.append(t_plain)
        t_ours_all.append(t_ours)
    same = len(l_plain) == len(l_ours) and all(round(a, 5) == round(b, 5) for a, b in zip(l_plain, l_ours))
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    tp, to = statistics.median(t_plain_all), statistics.median(t_ours_all)
    print(f"parity: {steps} steps of digits-mlp on CPU, 1 thread, {rounds} alternating rounds, CPU time of the loop's thread")
    print(f"  plain loop {tp:.3f}s ({steps / tp:.0f} steps/s), trainer {to:.3f}s ({steps / to:.0f} steps/s) (medians)")
    print(f"  time ratio trainer/plain: median {statistics.median(ratios):.3f}, quartiles {q[0]:.3f}–{q[2]:.3f}, "
          f"range {min(ratios):.3f}–{max(ratios):.3f}; target <= 1.02")
    print(f"  losses identical to 5 decimals: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
