"""The training loop. Knows nothing about the UI: it reports through ``emit`` only.

Loop order (nanoGPT): lr → eval/checkpoint → forward/backward → clip → step → zero_grad → log.
``.item()`` is called only on log steps; ``stop`` and ``pause`` are honoured every step.

Under torchrun (``group`` distributed) the same loop runs on every rank with DistributedDataParallel: each rank
takes its shard of the global batch of step s (the single-process batch of step s), the logged loss and the
evaluation are reduced over ranks, and stop/pause are agreed so that all ranks act at the same step. Only the
rank whose ``save`` is set (rank 0) writes checkpoints; events of the other ranks go nowhere.
"""
from __future__ import annotations

import math
import random
import signal
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from .config import ConfigError, TrainConfig
from .control import RunControl
from .data import TensorPairs, iter_batches
from .distributed import Group, rank_seed, shard
from .events import Checkpoint, Eval, Failed, Finished, LogLine, Step
from .gpu_options import Placement
from .open_ended import BEST, OpenEnded
from .probe import PredictionProbe
from .stopping import EarlyStop
from .tasks import Task, first_tensor, task_of
from .wiggle import WiggleWatch

if TYPE_CHECKING:
    from .data import DataInfo


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
    With ``world_size`` ranks, step s's batch is still that global batch, and rank r gets its ``shard``.
    """

    def __init__(self, ds: Dataset, batch_size: int, seed: int, device: torch.device, num_workers: int = 0,
                 rank: int = 0, world_size: int = 1, place: Placement | None = None):
        self.ds, self.seed, self.device, self.num_workers = ds, seed, device, num_workers
        self.rank, self.world_size = rank, world_size
        self.place = place or Placement(device)
        self.batch_size = min(batch_size, len(ds))
        self.per_epoch = len(ds) // self.batch_size  # drop_last: no BatchNorm batch of one

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.ds), generator=torch.Generator().manual_seed(self.seed + epoch))

    def batches(self, start_step: int = 0):
        step = start_step
        while True:
            epoch, pos = divmod(step, self.per_epoch)
            perm = self.order(epoch)
            index_batches = [shard(perm[i * self.batch_size:(i + 1) * self.batch_size], self.rank, self.world_size)
                             for i in range(pos, self.per_epoch)]
            if isinstance(self.ds, TensorPairs):
                for idx in index_batches:
                    yield self.place.batch(self.ds.x[idx], self.ds.y[idx])
            else:
                # Its own generator: a DataLoader without one draws its worker seed from the global RNG, and a
                # resumed run would then see different dropout masks than an uninterrupted one.
                loader = DataLoader(self.ds, batch_sampler=[b.tolist() for b in index_batches],
                                    num_workers=self.num_workers, pin_memory=self.place.pin_memory,
                                    worker_init_fn=_ignore_stop_signals if self.num_workers else None,
                                    generator=torch.Generator().manual_seed(rank_seed(self.seed + epoch, self.rank)))
                for x, y in loader:
                    yield self.place.batch(x, y)
            step += len(index_batches)


class Trainer:
    def __init__(self, model: nn.Module, task: str | Task, train_data: Dataset, val_data: Dataset | None, cfg: TrainConfig,
                 control: RunControl | None = None, save: Callable[..., Any] | None = None,
                 device: torch.device | None = None, group: Group | None = None, info: "DataInfo | None" = None):
        self.device = device or resolve_device(cfg.device)
        self.group = group or Group.single()
        self.global_batch = min(cfg.batch_size, len(train_data))
        if self.group.world_size > self.global_batch:
            raise ConfigError(f"train.batch_size {self.global_batch} is smaller than the {self.group.world_size} "
                              "processes training together: each needs at least one sample of every batch.")
        self.place = Placement.for_run(model, self.device, cfg)
        self.model = self.place.model(model)  # the plain module: state dicts, evaluation, hooks
        self.net = self.place.wrap(self.model, self.group)  # what training steps call: DDP and/or torch.compile
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
        # Stage 3 observers, none of them in the per-step path: the wiggle alarm reads logged Steps, the probe
        # and early stopping run at evaluations.
        self.wiggle = WiggleWatch()
        self.early = EarlyStop(cfg.early_stop, cfg.early_stop_delta)
        self.forever = OpenEnded(cfg.steps == 0)  # train.steps = 0: until stopped, best.pt beside the last checkpoint
        self.probe = PredictionProbe(self.task, val_data, cfg.predictions, info) \
            if val_data is not None and cfg.predictions > 0 and len(val_data) > 0 and self.group.is_main else None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The checkpoint. Under torchrun every rank calls it (it gathers each rank's RNG state); the model and
        optimizer are rank 0's, which DDP keeps identical on every rank."""
        state = {"step": self.step, "evaluated_step": self.evaluated_step,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "wiggle": self.wiggle.state_dict(), "early_stop": self.early.state_dict(),
                 "open_ended": self.forever.state_dict()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.group.distributed:
            state["rank_rng"] = self.group.gather(self._rank_rng())
        return state

    def _rank_rng(self) -> list[torch.Tensor]:
        states = [torch.get_rng_state()]
        if self.device.type == "cuda":
            states.append(torch.cuda.get_rng_state(self.device))
        return states

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint. Under torchrun only rank 0 reads it (``state`` is None elsewhere) and
        sends it to the others, so a resume works without a shared filesystem."""
        if self.group.distributed:
            state = self.group.broadcast(state)
        assert state is not None
        self.step = self.saved_step = int(state["step"])
        self.evaluated_step = int(state.get("evaluated_step", -1))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.wiggle.load_state_dict(state.get("wiggle", {}))
        self.early.load_state_dict(state.get("early_stop", {}))
        self.forever.load_state_dict(state.get("open_ended", {}))
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        if self.group.distributed:
            self._load_rank_rng(state.get("rank_rng"))

    def _load_rank_rng(self, saved: list[list[torch.Tensor]] | None) -> None:
        """Each rank's own RNG when the checkpoint has one per rank of this group (same N: bit-exact); with another
        N, rank 0 continues the saved stream and the others start fresh streams of their own."""
        if saved is not None and len(saved) == self.group.world_size:
            mine = saved[self.group.rank]
            torch.set_rng_state(mine[0].cpu())
            if len(mine) > 1 and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine[1].cpu(), self.device)
        elif self.group.rank > 0:
            seed_everything(rank_seed(self.cfg.seed + self.step, self.group.rank))

    def checkpoint(self, best: bool = False) -> None:
        """The last checkpoint; ``best``: the open-ended run's best so far (``best.pt``, not what a resume reads)."""
        if self.save is None and not self.group.distributed:
            return
        state = self.state_dict()  # under torchrun every rank takes part in gathering it; rank 0 saves it
        if self.save is None:
            return
        try:
            path = self.save(state, BEST) if best else self.save(state)
        except OSError as exc:  # disk full, read-only: say so and train on; the previous checkpoint is intact
            kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
            self.emit(LogLine(f"checkpoint at step {self.step} not written: {exc.strerror or exc}; the previous "
                              f"checkpoint ({kept}) is intact", level="warning"))
            return
        if best:
            return  # not the checkpoint a resume reads: no Checkpoint event (summary.json has the best step)
        self.saved_step = self.step
        self.emit(Checkpoint(step=self.step, path=str(path)))

    # -- evaluation -------------------------------------------------------------------------------
    def batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """numpy-made batches: float64 inputs for a float32 model, int32 class labels."""
        if x.dtype == torch.float64 and self._input_dtype == torch.float32:
            x = x.float()
        return self.place.inputs(x), self.task.targets(y)

    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None, split: str = "val") -> Eval | None:
        """Loss and metric on the entire split; None (nothing emitted) when stopped part-way. Under torchrun each
        rank evaluates its shard of the split and the sums are added over ranks (no rank leaves part-way)."""
        data = self.val_data if data is None else data
        was_training = self.model.training
        self.model.eval()
        total_loss, total_right, total_n = 0.0, 0.0, 0
        for x, y in iter_batches(eval_part(data, self.group), self.cfg.eval_batch_size):
            if self.stop.is_set() and not self.group.distributed:
                self.model.train(was_training)
                return None  # a partial average is not a validation point
            x, y = self.batch(*self.place.batch(x, y))
            with self.autocast():
                out = first_tensor(self.model(x))
            right, n = self.task.correct(out.float(), y)
            weight = n if n else len(y)
            total_loss += float(self.loss_fn(out.float(), y)) * weight
            total_right += float(right)
            total_n += weight
        self.model.train(was_training)
        if self.group.distributed:
            sums = torch.tensor([total_loss, total_right, total_n], dtype=torch.float64, device=self.device)
            total_loss, total_right, total_n = self.group.sum(sums).tolist()
        if total_n == 0:
            return None  # an empty split has no loss: no made-up 0.0 on the charts
        metric = self.task.metric
        metrics = {metric: total_right / max(1, total_n)} if metric else {}
        self.evaluated_step = self.step
        event = Eval(step=self.step, split=split, loss=total_loss / max(1, total_n), metrics=metrics)
        self.emit(event)
        if data is self.val_data and self.probe is not None:
            self._record_predictions()
        return event

    def _record_predictions(self) -> None:
        """The fixed validation examples' predictions; a model the probe cannot drive only loses the probe."""
        was_training = self.model.training
        self.model.eval()
        try:
            with self.autocast():
                self.emit(self.probe(self.model, self.step, self.batch, self.device))
        except Exception as exc:
            self.probe = None
            self.emit(LogLine(f"prediction dynamics are off for this run: {type(exc).__name__}: {exc}", level="warning"))
        finally:
            self.model.train(was_training)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self) -> Finished | Failed:
        cfg = self.cfg
        self.model.train()
        stream = self._batches()
        t_log, step_log = time.perf_counter(), self.step
        resumed_at = self.step if self.step > 0 else -1
        recent: list[torch.Tensor] = []  # this log interval's losses, detached: read once, on the log step
        last_eval: Eval | None = None
        end = cfg.steps or math.inf  # 0: open-ended
        while self.step < end:
            stop, pause = self._flags()
            if stop:
                break
            if pause:
                t_log += self._wait_while_paused()  # steps/s counts training time, not the pause
                continue
            lr = lr_at(self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if self.val_data is not None and self.step % cfg.eval_every == 0 and self.step > 0 \
                    and self.evaluated_step != self.step:
                last_eval = self.evaluate()
                if last_eval is not None and self.forever.enabled:
                    self.forever.after_eval(self, last_eval)  # best.pt; says when val loss levels off
                if last_eval is not None and self.early.update(last_eval):
                    self.emit(LogLine(self.early.message(), level="info"))
                    break
            if self.step % cfg.checkpoint_every == 0 and self.step > 0 and self.step != resumed_at:
                self.checkpoint()
            x, y = self.batch(*next(stream))
            with self.autocast():
                out = first_tensor(self.net(x))
                loss = self._rank_share(self.loss_fn(out, y), len(y))
            self.scaler.scale(loss).backward()
            recent.append(loss.detach())
            # the first step is logged too: the loss at init is the wiggle alarm's (and the chart's) reference
            log = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps or self.step == 0
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
                values = self._interval_losses(recent)
                recent.clear()
                if not math.isfinite(values[-1]):
                    return self._fail_non_finite(values[-1], step_log)
                now = time.perf_counter()
                rate = (self.step - step_log) / max(now - t_log, 1e-9)
                t_log, step_log = now, self.step
                self._log_step(values, lr, None if grad_norm is None else float(grad_norm), rate)
        return self._finish(last_eval)

    def _interval_losses(self, losses: list[torch.Tensor]) -> list[float]:
        """The losses of the steps since the last log, as floats (the log step's last): one transfer on an
        accelerator, plain reads on the CPU (cheaper there). Under DDP each is the global batch's loss: the mean over
        ranks of each rank's weighted shard loss (one collective, on log steps only)."""
        if self.group.distributed:
            return self.group.mean(torch.stack(losses).float()).tolist()
        if len(losses) == 1 or losses[0].device.type == "cpu":
            return [t.item() for t in losses]
        return torch.stack(losses).tolist()

    def _log_step(self, values: list[float], lr: float, grad_norm: float | None, rate: float) -> None:
        """Emit the Step of a log step (``values``: the losses since the previous one) and feed the wiggle alarm."""
        self.last = {"loss": values[-1], "lr": lr, "grad_norm": grad_norm}
        finite = [v for v in values if math.isfinite(v)]
        event = Step(step=self.step, loss=values[-1], lr=lr, grad_norm=grad_norm, steps_per_s=rate,
                     loss_max=max(finite) if finite else None)
        self.emit(event)
        alarm = self.wiggle.observe(event)
        if alarm is not None:
            self.emit(alarm)

    def _finish(self, last_eval: Eval | None) -> Finished:
        early = self.early.stopped_at == self.step
        stopped = (not self.cfg.steps or self.step < self.cfg.steps) and not early
        final: dict[str, float] = {"loss": self.last["loss"]} if self.last["loss"] is not None else {}
        ev = last_eval if early else None
        if self.val_data is not None and not stopped and ev is None:
            ev = self.evaluate()
        if ev is not None:
            final.update({"val_loss": ev.loss, **ev.metrics})
        self.checkpoint()
        result = Finished(status="stopped" if stopped else "completed", step=self.step, final=final,
                          alarms=[dict(a) for a in self.wiggle.alarms], early_stop=self.early.summary() if early else {})
        self.emit(result)
        return result

    def _batches(self):
        """This rank's training batches from the current step on."""
        cfg = self.cfg
        return BatchStream(self.train_data, cfg.batch_size, cfg.seed, self.device, cfg.num_workers,
                           self.group.rank, self.group.world_size, self.place).batches(self.step)

    def _flags(self) -> tuple[bool, bool]:
        """(stop, pause) now: the control file is read (rank 0) and, under torchrun, every rank agrees."""
        self.control.poll()
        return self.group.agree(self.stop.is_set(), self.pause.is_set())

    def _wait_while_paused(self) -> float:
        """Block while paused (or until stopped); the seconds spent."""
        paused_at = time.perf_counter()
        self.emit(LogLine(f"paused at step {self.step}"))
        if not self.group.distributed:
            self.control.wait_while_paused()
        else:  # every rank waits and asks together, so all go on (or stop) at the same step
            stop, pause = False, True
            while pause and not stop:
                self.stop.wait(0.05)
                self.control.poll()
                stop, pause = self.group.agree_now(self.stop.is_set(), self.pause.is_set())
        if not self.stop.is_set():
            self.emit(LogLine(f"resumed at step {self.step}"))
        return time.perf_counter() - paused_at

    def _rank_share(self, loss: torch.Tensor, n: int) -> torch.Tensor:
        """DDP averages gradients over ranks: a rank's shard of n samples weighs n·N/B, so that the average is the
        gradient of the global batch's mean loss even when B is not a multiple of N (1 when it is)."""
        world = self.group.world_size
        if world == 1 or n * world == self.global_batch:
            return loss
        return loss * (n * world / self.global_batch)

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


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave stopping to the training process: a ctrl+c or a torchrun SIGTERM sent to the whole
    process group would otherwise end them under a batch the trainer still fetches before it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def eval_part(data: Dataset, group: Group) -> Dataset:
    """This rank's contiguous share of an evaluation split (all of it in a single process)."""
    if not group.distributed:
        return data
    idx = shard(torch.arange(len(data)), group.rank, group.world_size)
    lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
    if isinstance(data, TensorPairs):
        return TensorPairs(data.x[lo:hi], data.y[lo:hi])
    return Subset(data, range(lo, hi))
