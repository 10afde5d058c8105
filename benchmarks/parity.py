"""Trainer vs a plain PyTorch loop: same seed, model, data order. Prints the time ratio (target ≤ 1.02)
and checks the losses agree to 5 decimals. Run: .venv/bin/python benchmarks/parity.py [steps]"""
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
    t0 = time.perf_counter()
    for step in range(steps):
        epoch, pos = divmod(step, per_epoch)
        if pos == 0:
            perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(exp.train.seed + epoch))
        idx = perm[pos * bs:(pos + 1) * bs]
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % exp.train.log_every == 0:
            losses.append(loss.item())
    return time.perf_counter() - t0, losses


def ours(exp, splits, steps: int) -> tuple[float, list[float]]:
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    events: list = []
    trainer = Trainer(model, exp.task, splits.train, None, exp.train, RunControl(emit=events.append), device=torch.device("cpu"))
    t0 = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - t0, [e.loss for e in events if isinstance(e, Step)]


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    torch.set_num_threads(1)
    exp = load_recipes(shipped_recipes_path()).experiment("digits-mlp")
    exp = exp.replace("train", steps=steps, eval_every=10**9, checkpoint_every=10**9)
    splits = load_data(exp)
    ratios = []
    for _ in range(5):  # interleaved repeats: this machine is noisy
        t_plain, l_plain = plain(exp, splits, steps)
        t_ours, l_ours = ours(exp, splits, steps)
        ratios.append(t_ours / t_plain)
    same = len(l_plain) == len(l_ours) and all(round(a, 5) == round(b, 5) for a, b in zip(l_plain, l_ours))
    print(f"parity: {steps} steps of digits-mlp on CPU, 1 thread")
    print(f"  plain loop {t_plain:.3f}s ({steps / t_plain:.0f} steps/s), trainer {t_ours:.3f}s ({steps / t_ours:.0f} steps/s)")
    print(f"  time ratio trainer/plain: median {statistics.median(ratios):.3f} (runs: {', '.join(f'{r:.3f}' for r in ratios)}); target <= 1.02")
    print(f"  losses identical to 5 decimals: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
