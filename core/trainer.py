"""The training loop. Knows nothing about the UI: it reports through ``emit`` only.

Loop order (nanoGPT): lr → eval/checkpoint → forward/backward → clip → step → zero_grad → log.
``.item()`` is called only on log steps; ``stop`` and ``pause`` are honoured every step.
"""
from __future__ import annotations

import math
import random
import time
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig
from .control import RunControl
from .data import TensorPairs, iter_batches
from .events import Checkpoint, Eval, Failed, Finished, LogLine, Step
from .tasks import Task, first_tensor, task_of


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # all devices


def resolve_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * max(0.0, 1 - progress)  # linear


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class BatchStream:
    """Training batches in a deterministic order: epoch e is ``randperm(n)`` seeded with seed + e.

    Step s always gets the same batch, so a resumed run sees exactly the data of an uninterrupted one.
    In-memory ``TensorPairs`` are indexed a whole batch at a time; other datasets go through a DataLoader.
    """

    def __init__(self, ds: Dataset, batch_size: int, seed: int, device: torch.device, num_workers: int = 0):
        self.ds, self.seed, self.device, self.num_workers = ds, seed, device, num_workers
        self.batch_size = min(batch_size, len(ds))
        self.per_epoch = len(ds) // self.batch_size  # drop_last: no BatchNorm batch of one

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.ds), generator=torch.Generator().manual_seed(self.seed + epoch))

    def batches(self, start_step: int = 0):
        step = start_step
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            perm = self.order(epoch)
            index_batches = [perm[i * self.batch_size:(i + 1) * self.batch_size] for i in range(pos, self.per_epoch)]
            if isinstance(self.ds, TensorPairs):
                for idx in index_batches:
                    yield self._to_device(self.ds.x[idx], self.ds.y[idx])
            else:
                # Its own generator: a DataLoader without one draws its worker seed from the global RNG, and a
                # resumed run would then see different dropout masks than an uninterrupted one.
                loader = DataLoader(self.ds, batch_sampler=[b.tolist() for b in index_batches],
                                    num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                    generator=torch.Generator().manual_seed(self.seed + epoch))
                for x, y in loader:
                    yield self._to_device(x, y)
            step += len(index_batches)

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.device.type == "cpu":
            return x, y
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class Trainer:
    def __init__(self, model: nn.Module, task: str | Task, train_data: Dataset, val_data: Dataset | None, cfg: TrainConfig,
                 control: RunControl | None = None, save: Callable[[dict[str, Any]], Any] | None = None,
                 device: torch.device | None = None):
        self.device = device or resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.control = control or RunControl()
        self.task, self.cfg, self.emit, self.save = task_of(task), cfg, self.control.emit, save
        self.train_data, self.val_data = train_data, val_data
        self.stop, self.pause = self.control.stop, self.control.pause
        self.loss_fn = self.task.loss
        self.optimizer = make_optimizer(self.model, cfg)
        # bf16 where the hardware has it (CPU, NVIDIA compute ≥ 8); fp16 + GradScaler elsewhere: is_bf16_supported()
        # also says yes for emulated bf16 on V100/T4, which is slow.
        native_bf16 = self.device.type == "cpu" or (self.device.type == "cuda" and torch.cuda.get_device_capability(self.device)[0] >= 8)
        amp_dtype = torch.bfloat16 if native_bf16 else torch.float16
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=amp_dtype)) if cfg.amp else nullcontext
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp and amp_dtype == torch.float16)
        self.step = 0
        self.evaluated_step = -1  # a run resumed from a checkpoint taken right after an eval does not repeat it
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.last: dict[str, float | None] = {"loss": None, "lr": None, "grad_norm": None}
        params = [p for p in self.model.parameters() if p.is_floating_point()]
        self._input_dtype = params[0].dtype if params else None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"step": self.step, "evaluated_step": self.evaluated_step,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = self.saved_step = int(state["step"])
        self.evaluated_step = int(state.get("evaluated_step", -1))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])

    def checkpoint(self) -> None:
        if self.save is None:
            return
        try:
            path = self.save(self.state_dict())
        except OSError as exc:  # disk full, read-only: say so and train on; the previous checkpoint is intact
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            self.emit(LogLine(f"checkpoint at step {self.step} not written: {exc.strerror or exc}; the previous "
                              f"checkpoint ({kept}) is intact", level="warning"))
            return
        self.saved_step = self.step
        self.emit(Checkpoint(step=self.step, path=str(path)))

    # -- evaluation -------------------------------------------------------------------------------
    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """numpy-made batches: float64 inputs for a float32 model, int32 class labels."""
        if x.dtype == torch.float64 and self._input_dtype == torch.float32:
            x = x.float()
        return x, self.task.targets(y)

    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None, split: str = "val") -> Eval | None:
        """Loss and metric on the entire split; None (nothing emitted) when stopped part-way."""
        data = self.val_data if data is None else data
        was_training = self.model.training
        self.model.eval()
        total_loss, total_right, total_n = 0.0, 0.0, 0
        for x, y in _eval_batches(data, self.cfg.eval_batch_size, self.device):
            if self.stop.is_set():
                self.model.train(was_training)
                return None  # a partial average is not a validation point
            x, y = self.batch(x, y)
            with self.autocast():
                out = first_tensor(self.model(x))
            right, n = self.task.correct(out.float(), y)
            weight = n if n else len(y)
            total_loss += float(self.loss_fn(out.float(), y)) * weight
            total_right += float(right)
            total_n += weight
        self.model.train(was_training)
        if total_n == 0:
            return None  # an empty split has no loss: no made-up 0.0 on the charts
        metric = self.task.metric
        metrics = {metric: total_right / max(1, total_n)} if metric else {}
        self.evaluated_step = self.step
        event = Eval(step=self.step, split=split, loss=total_loss / max(1, total_n), metrics=metrics)
        self.emit(event)
        return event

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> Finished | Failed:
        cfg = self.cfg
        self.model.train()
        stream = BatchStream(self.train_data, cfg.batch_size, cfg.seed, self.device, cfg.num_workers).batches(self.step)
        t_log, step_log = time.perf_counter(), self.step
        resumed_at = self.step if self.step > 0 else -1
        while self.step < cfg.steps:
            if self.stop.is_set():
                break
            if self.pause.is_set():
                paused_at = time.perf_counter()
                self._wait_while_paused()
                t_log += time.perf_counter() - paused_at  # steps/s counts training time, not the pause
                continue
            lr = lr_at(self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if self.val_data is not None and self.step % cfg.eval_every == 0 and self.step > 0 \
                    and self.evaluated_step != self.step:
                self.evaluate()
            if self.step % cfg.checkpoint_every == 0 and self.step > 0 and self.step != resumed_at:
                self.checkpoint()
            x, y = self.batch(*next(stream))
            with self.autocast():
                out = first_tensor(self.model(x))
                loss = self.loss_fn(out, y)
            self.scaler.scale(loss).backward()
            log = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps
            grad_norm = None
            if cfg.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            elif log:
                if self.scaler.is_enabled():
                    self.scaler.unscale_(self.optimizer)  # the true norm, not × the loss scale
                grad_norm = _grad_norm(self.model)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            if log:
                loss_value = loss.item()
                gn = None if grad_norm is None else float(grad_norm)
                if not math.isfinite(loss_value):
                    return self._fail_non_finite(loss_value, step_log)
                now = time.perf_counter()
                rate = (self.step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, self.step
                self.last = {"loss": loss_value, "lr": lr, "grad_norm": gn}
                self.emit(Step(step=self.step, loss=loss_value, lr=lr, grad_norm=gn, steps_per_s=rate))
        stopped = self.step < cfg.steps
        final: dict[str, float] = {"loss": self.last["loss"]} if self.last["loss"] is not None else {}
        if self.val_data is not None and not stopped:
            ev = self.evaluate()
            if ev is not None:
                final.update({"val_loss": ev.loss, **ev.metrics})
        self.checkpoint()
        result = Finished(status="stopped" if stopped else "completed", step=self.step, final=final)
        self.emit(result)
        return result

    def _wait_while_paused(self) -> None:
        self.emit(LogLine(f"paused at step {self.step}"))
        self.control.wait_while_paused()
        if not self.stop.is_set():
            self.emit(LogLine(f"resumed at step {self.step}"))

    def _fail_non_finite(self, value: float, last_good_step: int) -> Failed:
        last = self.last
        where = f"between steps {last_good_step + 1} and {self.step}" if self.step - last_good_step > 1 else f"at step {self.step}"
        reason = (f"loss became {value} {where}; last finite loss {_fmt(last['loss'])} (step {last_good_step}), "
                  f"lr {_fmt(last['lr'])}, grad norm {_fmt(last['grad_norm'])}. Try a lower lr or gradient clipping.")
        result = Failed(step=self.step, reason=reason, last_loss=last["loss"], lr=last["lr"], grad_norm=last["grad_norm"])
        self.emit(result)
        return result


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _grad_norm(model: nn.Module) -> torch.Tensor:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.grad is not None]
    return torch.stack(norms).norm() if norms else torch.zeros(())


def _eval_batches(data: Dataset, batch_size: int, device: torch.device):
    for x, y in iter_batches(data, batch_size):
        yield x.to(device), y.to(device)
