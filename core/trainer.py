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
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn as nn
from torch.utils.data import Dataset, Subset

from .batches import BatchStream
from .config import ConfigError, TrainConfig
from .control import RunControl
from .data import TensorPairs, iter_batches
from .distributed import Group, shard
from .events import Eval, Failed, Finished, LogLine
from .gpu_options import Placement
from .open_ended import OpenEnded
from .probe import PredictionProbe
from .step_log import StepLog
from .stopping import EarlyStop
from .tasks import Task, first_tensor, task_of
from .train_setup import lr_at, make_optimizer, resolve_device, seed_everything
from .trainer_state import CheckpointState
from .wiggle import WiggleWatch

# The gradient norm is read on a log step at most every this many steps (always when clipping computes it anyway):
# on a tiny model a read cost ~80 µs in the loop (its caches cold), 1–2 % of the training time when read every 10 steps.
GRAD_NORM_EVERY = 50

if TYPE_CHECKING:
    from .data import DataInfo
    from .threads import ThreadChoice

__all__ = ["BatchStream", "Trainer", "lr_at", "make_optimizer", "resolve_device", "seed_everything"]


class Trainer(CheckpointState):
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
        self._params = list(self.model.parameters())  # clipping and the logged gradient norm
        self.threads = 0  # torch's CPU thread count for this run once ``choose_threads`` set it (a checkpoint keeps it)
        params = [p for p in self._params if p.is_floating_point()]
        self._input_dtype = params[0].dtype if params else None
        # Stage 3 observers, none of them in the per-step path: the wiggle alarm reads logged Steps, the probe
        # and early stopping run at evaluations.
        self.wiggle = WiggleWatch()
        self.steps_log = StepLog(self.emit, self.wiggle, self.group)
        self.early = EarlyStop(cfg.early_stop, cfg.early_stop_delta)
        self.forever = OpenEnded(cfg.steps == 0)  # train.steps = 0: until stopped, best.pt beside the last checkpoint
        self.probe = PredictionProbe(self.task, val_data, cfg.predictions, info) \
            if val_data is not None and cfg.predictions > 0 and len(val_data) > 0 and self.group.is_main else None

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
        """Train up to ``cfg.steps``. A step does what a hand-written loop does, plus the stop/pause check and keeping
        the detached loss: measured on a tiny model, each further line of Python between the torch calls cost ~1 µs
        of a ~450 µs step (it runs with caches the torch kernels just filled), and ``benchmarks/parity.py`` holds the
        trainer within 2 % of a hand-written loop. The rest happens only on the steps that need it (``_due``: the lr
        while it changes, evaluations, checkpoints; log steps; clipping)."""
        cfg, steps, net, loss_fn, clip = self.cfg, self.cfg.steps or math.inf, self.net, self.loss_fn, self.cfg.grad_clip > 0
        poll, stop_set, pause_set, distributed = self.control.poll, self.stop.is_set, self.pause.is_set, self.group.distributed
        self.model.train()
        stream, general = self._batches(), self._general_step()
        optimizer_step, zero_grad = self._optimizer_step(), self.optimizer.zero_grad
        t_log, step_log, resumed_at = time.perf_counter(), self.step, self.step if self.step > 0 else -1
        recent: list[torch.Tensor] = []  # this log interval's losses, detached: read once, on the log step
        last_eval: Eval | None = None
        lr, next_due, next_log, next_norm = 0.0, self.step, next_log_step(self.step, cfg), 0
        while self.step < steps:
            poll()
            if distributed or stop_set() or pause_set():
                stop, pause = self._flags()
                if stop:
                    break
                if pause:
                    t_log += self._wait_while_paused()  # steps/s counts training time, not the pause
                    continue
            step = self.step
            if step == next_due:
                lr, last_eval, next_due = self._due(step, resumed_at, last_eval)
                if next_due < 0:  # early stopping
                    break
            x, y = next(stream)
            if general is None:
                out = net(x)
                loss = loss_fn(out if out.__class__ is torch.Tensor else first_tensor(out), y)
                loss.backward()
            else:
                loss = general(x, y)
            recent.append(loss.detach())
            if step != next_log and not clip:
                optimizer_step()
                zero_grad(set_to_none=True)
                self.step = step + 1
                continue
            grad_norm = self._clip() if clip or (step == next_log and step + 1 >= next_norm) else None
            optimizer_step()
            zero_grad(set_to_none=True)
            self.step = step + 1
            if step != next_log:
                continue
            next_log = next_log_step(step + 1, cfg)
            if grad_norm is not None:
                next_norm = (step + 1) // GRAD_NORM_EVERY * GRAD_NORM_EVERY + GRAD_NORM_EVERY
            now = time.perf_counter()
            bad = self.steps_log.note(self.step, step_log, recent, lr, grad_norm, (self.step - step_log) / max(now - t_log, 1e-9), now)
            if bad is not None:
                return self._fail_non_finite(*bad)
            recent, t_log, step_log = [], now, self.step
        return self._finish(last_eval)

    def _due(self, step: int, resumed_at: int, last_eval: Eval | None) -> tuple[float, Eval | None, int]:
        """Set the lr of ``step``, evaluate and checkpoint where due: (lr, the latest evaluation, the next step that
        needs this, or -1 when early stopping ends the run)."""
        cfg = self.cfg
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if step > 0:
            last_eval, early = self._evaluate_and_save(step, resumed_at, last_eval)
            if early:
                return lr, last_eval, -1
        lr_changes = step + 1 < cfg.warmup_steps or (cfg.schedule != "constant" and 0 < step + 1 < cfg.steps)
        every = [cfg.checkpoint_every] + ([cfg.eval_every] if self.val_data is not None else [])
        return lr, last_eval, step + 1 if lr_changes else min(-(-(step + 1) // k) * k for k in every)

    def _evaluate_and_save(self, step: int, resumed_at: int, last_eval: Eval | None) -> tuple[Eval | None, bool]:
        """Evaluate and checkpoint where due at ``step``: (the latest evaluation, whether early stopping ends the run)."""
        due_eval = self.val_data is not None and step % self.cfg.eval_every == 0 and self.evaluated_step != step
        due_save = step % self.cfg.checkpoint_every == 0 and step != resumed_at
        if due_eval or due_save:
            self.steps_log.flush()  # the steps' events first (a noted non-finite loss has failed already)
        if due_eval:
            last_eval = self.evaluate()
            if last_eval is not None and self.forever.enabled:
                self.forever.after_eval(self, last_eval)  # best.pt; says when val loss levels off
            if last_eval is not None and self.early.update(last_eval):
                self.emit(LogLine(self.early.message(), level="info"))
                return last_eval, True
        if due_save:
            self.checkpoint()
        return last_eval, False

    def _general_step(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """Forward, loss and backward of one batch as it comes from the stream, returning the loss; None in the plain
        case (in-memory data that needs no conversion, no AMP, loss scale or DDP weight): ``fit`` then makes the plain
        loop's three calls itself."""
        ds, net, loss_fn = self.train_data, self.net, self.loss_fn
        plain_data = isinstance(ds, TensorPairs) and not self.place.channels_last and not (
            ds.x.dtype == torch.float64 and self._input_dtype == torch.float32) and (
            self.task.target_dtype is None or ds.y.dtype == self.task.target_dtype)
        if plain_data and not self.cfg.amp and not self.scaler.is_enabled() and self.group.world_size == 1:
            return None

        def general(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            x, y = self.batch(x, y)
            with self.autocast():
                loss = self._rank_share(loss_fn(first_tensor(net(x)), y), len(y))
            self.scaler.scale(loss).backward()
            return loss
        return general

    def _optimizer_step(self) -> Callable[[], Any]:
        if not self.scaler.is_enabled():
            return self.optimizer.step

        def scaled() -> None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return scaled

    def _clip(self) -> torch.Tensor:
        """Clip the gradients (``train.grad_clip``) and return their norm; without clipping, only their norm."""
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            return nn.utils.clip_grad_norm_(self._params, self.cfg.grad_clip)
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)  # the true norm, not × the loss scale
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            return torch.zeros(())
        foreach_norm = getattr(torch, "_foreach_norm", None)  # what get_total_norm itself calls
        if foreach_norm is None or len({(g.device, g.dtype) for g in grads}) > 1 or any(g.is_sparse for g in grads):
            return nn.utils.get_total_norm(grads)
        # One device and dtype (the common case): get_total_norm's grouping and checks cost more than the norms on a
        # tiny model (measured in the loop: 143 µs a read with them, 77 µs without).
        return torch.linalg.vector_norm(torch.stack(foreach_norm(grads)))

    def _finish(self, last_eval: Eval | None) -> Finished | Failed:
        bad = self.steps_log.flush()
        if bad is not None:
            return self._fail_non_finite(*bad)
        early = self.early.stopped_at == self.step
        stopped = (not self.cfg.steps or self.step < self.cfg.steps) and not early
        last_loss = self.steps_log.last["loss"]
        final: dict[str, float] = {"loss": last_loss} if last_loss is not None else {}
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

    def choose_threads(self) -> "ThreadChoice":
        """Set torch's CPU thread count for this run (``core.threads``): ``train.threads``, else a resumed run's own
        count, else auto (timed on a copy of the model, on the CPU and outside torchrun only)."""
        from .threads import ThreadChoice, choose, scratch_step
        if self.cfg.threads == 0 and self.threads > 0:  # resumed: the count its steps so far ran with
            torch.set_num_threads(self.threads)
            choice = ThreadChoice(self.threads, "resumed")
        else:
            step = None
            if self.cfg.threads == 0 and self.device.type == "cpu" and not self.group.distributed:
                x, y = self.batch(*next(self._batches()))
                step = scratch_step(self.model, self.loss_fn, lambda m: make_optimizer(m, self.cfg), x, y, self.autocast)
            choice = choose(self.cfg.threads, step)
        self.threads = choice.threads
        return choice

    def _flags(self) -> tuple[bool, bool]:
        """(stop, pause) now (``fit`` has read the control file); under torchrun every rank agrees."""
        if self.group.distributed:
            return self.group.agree(self.stop.is_set(), self.pause.is_set())
        return self.stop.is_set(), self.pause.is_set()

    def _wait_while_paused(self) -> float:
        """Block while paused (or until stopped); the seconds spent."""
        paused_at = time.perf_counter()
        self.steps_log.flush()
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
        last = self.steps_log.last
        where = f"between steps {last_good_step + 1} and {self.step}" if self.step - last_good_step > 1 else f"at step {self.step}"
        reason = (f"loss became {value} {where}; last finite loss {_fmt(last['loss'])} (step {last_good_step}), "
                  f"lr {_fmt(last['lr'])}, grad norm {_fmt(last['grad_norm'])}. Try a lower lr or gradient clipping.")
        result = Failed(step=self.step, reason=reason, last_loss=last["loss"], lr=last["lr"], grad_norm=last["grad_norm"])
        self.emit(result)
        return result


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def next_log_step(step: int, cfg: TrainConfig) -> int:
    """The first step from ``step`` on that is logged: every ``log_every``-th, the last, and the first (the loss at
    init is the wiggle alarm's and the chart's reference)."""
    if step == 0:
        return 0
    every = -(-(step + 1) // cfg.log_every) * cfg.log_every - 1
    return min(every, cfg.steps - 1) if cfg.steps else every  # 0 steps: open-ended


def eval_part(data: Dataset, group: Group) -> Dataset:
    """This rank's contiguous share of an evaluation split (all of it in a single process)."""
    if not group.distributed:
        return data
    idx = shard(torch.arange(len(data)), group.rank, group.world_size)
    lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
    if isinstance(data, TensorPairs):
        return TensorPairs(data.x[lo:hi], data.y[lo:hi])
    return Subset(data, range(lo, hi))
