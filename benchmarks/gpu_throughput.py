"""Our trainer vs a plain PyTorch loop on the same model and data: steps/s and their ratio (target >= 0.97).

The model is torchvision's resnet18 on CIFAR-shaped synthetic images (benchmarks/synthetic_cifar.py) with autocast
(bf16 where the GPU has it, as ``train.amp`` does) and, on CUDA, channels_last with pinned, non-blocking copies:
the same work in both loops, in the same data order. Rounds alternate which loop goes first; medians are printed.
Run: .venv/bin/python benchmarks/gpu_throughput.py [--device cuda|cpu] [--steps N] [--batch B] [--rounds R]
Without CUDA it runs on the CPU with a tiny budget and says so (CPU figures say nothing about GPU overhead).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from recipe_tui.core.config import load_recipes
from recipe_tui.core.control import RunControl
from recipe_tui.core.data import load_data
from recipe_tui.core.events import Step
from recipe_tui.core.models import build_model
from recipe_tui.core.trainer import Trainer, seed_everything

HERE = Path(__file__).resolve().parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def amp_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        return torch.float16
    return torch.bfloat16


def plain(exp, splits, device: torch.device) -> tuple[float, list[float]]:
    """What a user writes by hand with the same options."""
    cfg, cuda = exp.train, device.type == "cuda"
    seed_everything(cfg.seed)
    model = build_model(exp, splits.info).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    dtype = amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x_all, y_all, bs = splits.train.x, splits.train.y, cfg.batch_size
    per_epoch, losses = len(x_all) // bs, []
    sync(device)
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        epoch, pos = divmod(step, per_epoch)
        if pos == 0:
            perm = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        idx = perm[pos * bs:(pos + 1) * bs]
        x, y = x_all[idx], y_all[idx]
        if cuda:
            x = x.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.pin_memory().to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            losses.append(loss.item())
    sync(device)
    return time.perf_counter() - t0, losses


def ours(exp, splits, device: torch.device) -> tuple[float, list[float]]:
    seed_everything(exp.train.seed)
    model = build_model(exp, splits.info)
    events: list = []
    trainer = Trainer(model, exp.task, splits.train, None, exp.train, RunControl(emit=events.append), device=device)
    sync(device)
    t0 = time.perf_counter()
    trainer.fit()
    sync(device)
    return time.perf_counter() - t0, [e.loss for e in events if isinstance(e, Step)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--rounds", type=int)
    a = p.parse_args()
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    steps, batch, rounds = a.steps or (200 if cuda else 4), a.batch or (128 if cuda else 16), a.rounds or (3 if cuda else 1)
    if not cuda:
        print("gpu_throughput: no CUDA: a tiny CPU run, to show the script works; its ratio says nothing about a GPU")
    exp = load_recipes(HERE / "gpu_recipes.toml").experiment("synthetic-resnet18")
    exp = exp.replace("train", steps=steps, batch_size=batch, device=str(device), eval_every=10**9,
                      checkpoint_every=10**9, log_every=10)
    exp = exp.replace("data", kwargs={"n_train": max(2 * batch, 5000 if cuda else 4 * batch), "n_val": batch})
    splits = load_data(exp)
    warm = exp.replace("train", steps=min(20, steps))
    plain(warm, splits, device), ours(warm, splits, device)  # cuDNN autotuning and first allocations: not measured
    t_plain, t_ours, last = [], [], {}
    for r in range(rounds):
        order = (plain, ours) if r % 2 == 0 else (ours, plain)
        for fn in order:
            seconds, losses = fn(exp, splits, device)
            (t_plain if fn is plain else t_ours).append(seconds)
            last[fn.__name__] = losses[-1]
    tp, to = statistics.median(t_plain), statistics.median(t_ours)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"gpu_throughput: resnet18, 3x32x32 synthetic, batch {batch}, {steps} steps, autocast "
          f"{str(amp_dtype(device)).replace('torch.', '')}{', channels_last' if cuda else ''} on {name}, {rounds} round(s)")
    print(f"  plain PyTorch loop {steps / tp:.1f} steps/s, our trainer {steps / to:.1f} steps/s")
    print(f"  ratio trainer/plain {tp / to:.3f} (target >= 0.97); last loss: plain {last['plain']:.4f}, "
          f"trainer {last['ours']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
