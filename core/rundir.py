"""The run directory: resolved config, events.jsonl, metrics.csv and atomic checkpoints.

Layout: ``<runs>/<recipe>/<YYYYmmdd-HHMMSS>/{config.json, events.jsonl, metrics.csv, checkpoint.pt}``, and ``control``
while someone outside the run asks it to stop or pause.
Events are appended and flushed line by line, so a process killed at any moment leaves at most a
torn last line, which readers skip and ``RunDir.open`` trims before appending.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from .config import ConfigError, Experiment, check_name
from .events import Eval, Event, Step, event_from_dict
from .paths import inside

CONFIG, EVENTS, METRICS, CHECKPOINT = "config.json", "events.jsonl", "metrics.csv", "checkpoint.pt"
CONTROL = "control"  # written by another process (the app, a script) to stop or pause the run: see ControlFile
METRIC_COLUMNS = ("step", "split", "loss", "accuracy", "lr", "grad_norm")


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._events = None
        self._metrics = None

    @classmethod
    def create(cls, runs_root: str | Path, recipe: str) -> "RunDir":
        parent = inside(runs_root, check_name(recipe))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            path = parent / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir(parents=True)
                return cls(path)
            except FileExistsError:
                continue
        raise RuntimeError(f"cannot create a run dir under {parent}")

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run dir, for resuming: a torn last events line is trimmed first."""
        run = cls(Path(path))
        if not (run.path / CONFIG).is_file():
            raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
        _trim_torn_tail(run.path / EVENTS)
        _trim_torn_tail(run.path / METRICS)
        return run

    # -- config -------------------------------------------------------------------------------
    def write_config(self, exp: Experiment) -> None:
        _atomic_write_bytes(self.path / CONFIG, json.dumps(exp.to_dict(), indent=2).encode())

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.path / CONFIG).read_text())

    # -- events -------------------------------------------------------------------------------
    def record(self, event: Event) -> None:
        """Append one event (an ``emit``); steps and evals also go to metrics.csv."""
        if self._events is None:
            self._events = open(self.path / EVENTS, "a", encoding="utf-8")
        self._events.write(event.to_json() + "\n")
        self._events.flush()
        if isinstance(event, (Step, Eval)):
            self._metric_row(event)

    def _metric_row(self, event: Step | Eval) -> None:
        if self._metrics is None:
            new = not (self.path / METRICS).exists()
            self._metrics = open(self.path / METRICS, "a", newline="", encoding="utf-8")
            self._metrics_writer = csv.writer(self._metrics)
            if new:
                self._metrics_writer.writerow(METRIC_COLUMNS)
        if isinstance(event, Step):
            row = (event.step, "train", event.loss, "", event.lr, "" if event.grad_norm is None else event.grad_norm)
        else:
            row = (event.step, event.split, event.loss, event.metrics.get("accuracy", ""), "", "")
        self._metrics_writer.writerow(row)
        self._metrics.flush()

    def events(self) -> list[Event]:
        return list(read_events(self.path / EVENTS))

    def close(self) -> None:
        for f in (self._events, self._metrics):
            if f is not None:
                f.close()
        self._events = self._metrics = None

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    def save_checkpoint(self, state: dict[str, Any], name: str = CHECKPOINT) -> Path:
        """Write to a temporary file, then rename: a failed write (disk full) raises ``OSError`` and leaves the
        previous checkpoint as it was (the partial temporary file is removed). ``name``: checkpoint.pt, or best.pt
        (an open-ended run's best)."""
        tmp, path = self.path / (name + ".tmp"), self.path / name
        try:
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def load_checkpoint(self, map_location: str | torch.device = "cpu", name: str = CHECKPOINT) -> dict[str, Any] | None:
        path = self.path / name
        if not path.is_file():
            return None
        return torch.load(path, map_location=map_location, weights_only=True)


def probe_writable(folder: Path) -> None:
    """Create ``folder`` and write, sync and remove a small file in it: a read-only or full disk is found before
    training starts (``ConfigError``, one sentence), not by the first checkpoint."""
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise ConfigError(f"cannot write to {folder}: {exc.strerror or exc} (choose another place with --runs DIR)."
                          ) from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def require_free_space(folder: Path, need: int) -> None:
    """``ConfigError`` when the disk holding ``folder`` has less than ``need`` bytes free (a checkpoint's size:
    its temporary file is written beside the previous one)."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise ConfigError(f"not enough disk space in {folder}: a checkpoint needs about {need / 2**20:,.1f} MiB, "
                          f"{free / 2**20:,.1f} MiB are free.")


def read_events(path: str | Path) -> Iterator[Event]:
    """Events of an events.jsonl; a torn (unparseable) last line is skipped, any other bad line raises."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield event_from_dict(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError):
            if n == len(lines) - 1 and not line.endswith("\n"):
                return  # torn by a kill mid-write
            raise


def _trim_torn_tail(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
