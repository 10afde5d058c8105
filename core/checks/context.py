"""What a check gets: the experiment, lazily loaded data, fresh models, and ways to report."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Experiment
from ..control import RunControl, Stopped
from ..events import Emit

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from ..data import Splits
    from ..tasks import Task


CheckStopped = Stopped  # raised by ``ctx.tick`` when the user stopped the job; the check ends as ``skip``


@dataclass
class CheckContext:
    exp: Experiment
    control: RunControl = field(default_factory=RunControl)
    fix: bool = False  # checks that can repair (init-bias) apply their fix
    device_name: str = "auto"
    cache: dict[str, Any] = field(default_factory=dict)  # shared between checks of one job (data scans …)
    runs_root: str = "runs"  # on-disk caches (e.g. data audit results by fingerprint) live under here
    _splits: Any = None
    _after_load: Any = None  # the global RNG state right after the data was loaded (``restart``)

    def splits(self) -> "Splits":
        """The data, loaded once per job the way ``run_training`` loads it: right after seeding, because loading
        may draw from the global RNG (``random_split`` without a generator, a dataset augmenting on first read)."""
        if self._splits is None:
            from ..data import load_seeded
            self.use_data(load_seeded(self.exp))
        return self._splits

    def use_data(self, splits: "Splits") -> None:
        """Check data loaded by the caller (the app loads it once for every job); ``splits.after_load`` is the
        global RNG state right after loading (``core.data.load_seeded``), None when nothing drew from it."""
        self._splits, self._after_load = splits, splits.after_load

    def restart(self) -> None:
        """Put the global RNG where a training run has it after "seed, then load the data": every check starts
        here (``run_check``) and every fresh model is built from here, so that no result depends on which
        checks ran before it in the same job, or on what they drew."""
        import torch

        from ..data.rng import capture, restore
        from ..trainer import seed_everything
        self.splits()
        if self._after_load is None:  # data handed in directly (tests, the app): nothing was drawn loading it
            seed_everything(self.exp.train.seed)
            self._after_load = capture()
        torch.manual_seed(self.exp.train.seed)  # accelerator generators (the CPU state is restored next)
        restore(self._after_load)

    @property
    def device(self) -> "torch.device":
        from ..trainer import resolve_device
        return resolve_device(self.device_name if self.device_name != "auto" else self.exp.train.device)

    def new_model(self, seed: int | None = None, exp: Experiment | None = None) -> "nn.Module":
        """A freshly initialised model on the check device: with ``train.seed``, exactly the model a training run
        builds (``restart``, then build); with another seed, built right after seeding with it. ``exp``: build
        this variant of the experiment instead (same data)."""
        from ..models import build_initialized_model
        from ..trainer import seed_everything
        if seed is None or seed == self.exp.train.seed:
            self.restart()
        else:
            seed_everything(seed)
        return build_initialized_model(exp or self.exp, self.splits()).to(self.device)

    @property
    def task(self) -> "Task":
        """What the recipe's task means for the loss, the metric and the targets."""
        from ..tasks import task_of
        return task_of(self.exp.task)

    @property
    def emit(self) -> Emit:
        return self.control.emit

    @property
    def stop(self) -> threading.Event:
        return self.control.stop

    def log(self, message: str, level: str = "info", detail: str = "") -> None:
        self.control.log(message, level, detail)

    def tick(self, task: str = "", done: int = 0, total: int = 0) -> None:
        """Call at least once per step of any loop: honours stop, reports progress when given."""
        self.control.tick(task, done, total)
