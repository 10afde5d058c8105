"""recipes.toml → frozen dataclasses, strictly validated.

Every error is a ``ConfigError`` whose message is one sentence naming the file, the line where it
can be found, the key path and, for unknown keys, the closest valid key. Every numeric key declares
its range on its field (``ranged``); ``validate.build`` enforces it, NaN and ±inf are refused.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .checklist_schema import Item, Stage, load_stages
from .plans import PLANS, DistillConfig, EnsembleConfig, RegularizeConfig, TuneConfig, check_plans
from .tomlfile import read_text, read_toml
from .validate import (INT64_MAX, MAX_BATCH, MAX_STEPS, ConfigError, KeyPath, Locator, build, check_keys, describe,
                       dotted, plain_values, ranged, suggest, tomllib, typed)

TASKS = ("classification", "language-model", "regression")
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("adam", "adamw", "sgd")
# An experiment's name becomes a folder under the runs dir: one path component of a safe alphabet,
# starting with a letter or digit (no "..", "a/b", "/abs", ".hidden").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The check ids an item's ``check`` may name: the automated stage 1–2 checks, then those of stages 3–6
# (``run_check`` reports an id without an implementation as "not automated yet").
CHECK_IDS = (
    "data-stats", "class-balance", "duplicates", "outliers", "label-issues",
    "seed", "init-loss", "init-bias", "zero-input", "overfit-batch", "batch-independence", "causality",
    "batch-view", "baselines", "eval-mode", "grad-flow", "output-range",
    "lr-find", "capacity", "first-layer", "regularize", "tune", "ensemble", "distill",
)
BUILTIN_MODELS = ("linear", "mlp", "cnn", "char-mlp", "char-transformer")

__all__ = ["ConfigError", "CHECK_IDS", "TASKS", "DataConfig", "ModelConfig", "TrainConfig", "ChecksConfig", "Experiment",
           "Item", "Stage", "RecipesFile", "SECTIONS", "load_recipes", "apply_overrides", "experiment_from_dict",
           "check_name", "where", "shipped_recipes_path", "find_recipes_file", "apply_values", "parse_value",
           "check_override_key", "BUILTIN_MODELS"]


# ----------------------------------------------------------------------------- experiment schema


@dataclass(frozen=True)
class DataConfig:
    source: str | None = None  # digits | names | mnist | fashion-mnist | cifar10 | cifar100 | imagefolder
    factory: str | None = None  # "module:function" returning {"train": ds, "val": ds, "test"?: ds}
    kwargs: dict[str, Any] = field(default_factory=dict)
    root: str = "data"  # torchvision download/cache folder, relative to the recipes file
    download: bool = False
    path: str | None = None  # imagefolder: a folder with train/ and val/ (or one folder to split)
    image_size: int | None = ranged(None, 1, 4_096)  # imagefolder: resize to a square of this side
    val_fraction: float = ranged(0.2, 0.0, 1.0, hi_open=True)  # when the source has no validation split of its own
    test_fraction: float = ranged(0.0, 0.0, 1.0, hi_open=True)  # and val_fraction + test_fraction < 1
    seq_len: int = ranged(16, 2, 4_096)  # names: tokens per sequence
    augment: bool = False  # vision sources: random crop + flip on train
    augmentation: str = "none"  # a preset on the train split: none | shift-rotate | crop-flip-colour | token-dropout
    token_dropout: float = ranged(0.1, 0.0, 1.0, lo_open=True, hi_open=True)  # token-dropout: share of tokens replaced
    limit: int | None = ranged(None, 1, INT64_MAX)  # use at most this many training samples
    split_seed: int = ranged(0, 0, INT64_MAX)  # the train/val/test split is fixed by this, not by train.seed


@dataclass(frozen=True)
class ModelConfig:
    name: str | None = None  # linear | mlp | cnn | char-mlp | char-transformer | any torchvision.models name
    factory: str | None = None  # "module:function" returning an nn.Module
    kwargs: dict[str, Any] = field(default_factory=dict)
    width: int = ranged(128, 1, 65_536)
    depth: int = ranged(2, 1, 1_000)
    dropout: float = ranged(0.0, 0.0, 1.0, hi_open=True)
    dropout2d: float = ranged(0.0, 0.0, 1.0, hi_open=True)  # cnn: channel dropout after each convolution block
    batchnorm: bool = False
    heads: int = ranged(4, 1, 1_024)  # char-transformer; must divide width
    context: int = ranged(3, 1, 1_024)  # char-mlp: characters of context
    init_bias: bool = False  # "init well": final-layer bias ← log class priors / target mean (see init-bias)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = ranged(3e-4, 0.0, 10.0, lo_open=True)  # "Adam with 3e-4 LR is safe"
    batch_size: int = ranged(64, 1, MAX_BATCH)
    steps: int = ranged(2000, 0, MAX_STEPS)  # 0: open-ended ("leave it training"), until stopped
    seed: int = ranged(1337, 0, INT64_MAX)
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = ranged(0.0, 0.0, 10.0)
    momentum: float = ranged(0.9, 0.0, 1.0, hi_open=True)  # sgd
    schedule: str = "constant"  # constant | cosine | linear ("initially, disable LR decays entirely")
    warmup_steps: int = ranged(0, 0, MAX_STEPS)
    grad_clip: float = ranged(0.0, 0.0, 1e6)  # max global grad norm; 0 = off
    amp: bool = False  # autocast: bf16 on CPU and NVIDIA compute ≥ 8, else fp16 + GradScaler
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:N | mps
    eval_every: int = ranged(200, 1, MAX_STEPS)
    log_every: int = ranged(10, 1, MAX_STEPS)
    checkpoint_every: int = ranged(500, 1, MAX_STEPS)
    eval_batch_size: int = ranged(512, 1, MAX_BATCH)
    num_workers: int = ranged(0, 0, 1_024)
    pin_memory: bool = True  # CUDA: page-locked host batches, copied asynchronously (no-op elsewhere)
    channels_last: bool = True  # CUDA and a model with Conv2d: NHWC memory format (no-op elsewhere)
    compile: bool = False  # CUDA: torch.compile the model (first steps slower while it compiles)
    nproc: int = ranged(1, 1, 1_024)  # > 1: `recipe-tui train` starts this many processes with torchrun (DDP)
    early_stop: int = ranged(0, 0, MAX_STEPS)  # stop after this many evaluations without a better val loss; 0 = off
    early_stop_delta: float = ranged(0.0, 0.0, 1e6)  # "better" means lower by more than this
    predictions: int = ranged(8, 0, 64)  # validation examples whose predictions are recorded at each evaluation
    threads: int = ranged(0, 0, 1_024)  # torch intra-op threads on the CPU; 0 = auto (core/threads.py)
    teacher: str | None = None  # distillation: a teacher-outputs file the distill item wrote (core/distill.py)


@dataclass(frozen=True)
class ChecksConfig:
    batch_size: int = ranged(32, 2, 4_096)  # batch used by the skeleton checks (≥ 2: they compare examples)
    init_loss_tolerance: float = ranged(0.15, 0.0, 10.0, lo_open=True)  # relative deviation from the expected loss
    init_loss_batches: int = ranged(8, 1, 10_000)
    overfit_batch_size: int = ranged(8, 2, 16)  # a batch of a few examples
    overfit_steps: int = ranged(500, 1, 1_000_000)  # patience: steps without a 1 % better eval-mode loss
    overfit_seconds: float = ranged(60.0, 0.0, 86_400.0, lo_open=True)  # time budget of overfit-batch
    overfit_lr: float = ranged(3e-3, 0.0, 10.0, lo_open=True)
    overfit_loss: float = ranged(0.05, 0.0, 10.0, lo_open=True)  # "near-zero" loss
    zero_input_steps: int = ranged(200, 1, 1_000_000)
    zero_input_margin: float = ranged(0.1, 0.0, 1.0, hi_open=True)  # real must beat zeroed by this relative margin
    seed_steps: int = ranged(5, 1, 10_000)
    dependency_samples: int = ranged(3, 1, 1_024)  # how many i to test in batch-independence / causality
    imbalance_ratio: float = ranged(0.5, 0.0, 1.0)  # warn when least/most common class count is below this
    near_duplicate_ratio: float = ranged(0.1, 0.0, 1.0)  # near duplicate: NN distance below this × median NN distance
    outlier_z: float = ranged(6.0, 0.0, 1000.0, lo_open=True)  # robust z-score past which a sample is an outlier
    label_folds: int = ranged(5, 2, 100)
    label_max_candidates: int = ranged(100, 1, 1_000_000)
    label_issue_fraction: float = ranged(0.02, 0.0, 1.0)  # label-issues warns above this fraction of train flagged
    lr_find_steps: int = ranged(300, 10, 1_000_000)  # lr-find: steps of one sweep (it stops early once the loss diverges)
    lr_find_start: float = ranged(1e-7, 0.0, 1.0, lo_open=True, hi_open=True)  # below lr_find_end by construction
    lr_find_end: float = ranged(10.0, 1.0, 1000.0)
    lr_find_repeats: int = ranged(3, 1, 20)  # sweeps with seeds train.seed, +1, …
    capacity_steps: int = ranged(300, 1, MAX_STEPS)  # capacity: training steps of each capacity point
    # capacity: model overrides, one table per point, smallest first; e.g. [{ width = 32 }, { width = 64 }] for a
    # built-in model (its keys), [{ channels = 16 }, …] for a factory or torchvision model (its kwargs). Empty: the
    # built-in model's width at ×¼, ×½, ×1 and ×2.
    capacities: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    name: str
    task: str = "classification"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    regularize: RegularizeConfig = field(default_factory=RegularizeConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    base_dir: str = "."  # folder of the recipes file: factories import from here, relative paths start here
    source: str = ""  # the recipes file this came from, for error messages

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> "Experiment":
        """A copy with ``changes`` applied to one section (``train``, ``model`` …)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "checks": ChecksConfig,
                             **PLANS}

@dataclass(frozen=True)
class RecipesFile:
    path: Path
    stages: tuple[Stage, ...]
    experiments: Mapping[str, Experiment]

    @property
    def default(self) -> str:
        return next(iter(self.experiments))

    def experiment(self, name: str | None) -> Experiment:
        if name is None:
            if not self.experiments:
                raise ConfigError(f"{self.path}: no [recipe.NAME] table; add one to train anything.")
            name = self.default
        if name not in self.experiments:
            raise ConfigError(
                f"{self.path}: no recipe named '{name}'{suggest(name, self.experiments)}"
                f" (available: {', '.join(self.experiments) or 'none'})."
            )
        return self.experiments[name]

    def items(self) -> list[Item]:
        return [item for stage in self.stages for item in stage.items]

    def stage_of(self, item_id: str) -> int:
        for stage in self.stages:
            if any(item.id == item_id for item in stage.items):
                return stage.number
        raise KeyError(item_id)


# ----------------------------------------------------------------------------- loading


def shipped_recipes_path() -> Path:
    return Path(__file__).resolve().parent / "recipes.toml"


def find_recipes_file(file: str | Path | None = None) -> Path:
    """``--file`` if given, else ./recipes.toml if present (even if unreadable: then say so), else the shipped one."""
    if file is not None:
        return Path(file)
    local = Path("recipes.toml")
    return local if local.exists() or local.is_symlink() else shipped_recipes_path()


def load_recipes(file: str | Path | None = None) -> RecipesFile:
    path = find_recipes_file(file)
    raw, text = read_toml(path)
    loc = Locator(path, text)
    check_keys(raw, {"stage", "recipe"}, (), loc)
    if "stage" in raw:
        stages = load_stages(raw["stage"], loc, CHECK_IDS)
    elif path.resolve() != shipped_recipes_path():
        stages = load_recipes(shipped_recipes_path()).stages  # a file of experiments only: the recipe's checklist
    else:
        stages = ()
    recipes = raw.get("recipe", {})
    if not isinstance(recipes, dict):
        raise loc.error(("recipe",), f"expected tables [recipe.NAME], got {describe(recipes)}")
    base_dir = str(path.resolve().parent)
    for name in recipes:
        check_name(name, loc.where(("recipe", name)))
    experiments = {
        name: dataclasses.replace(_load_experiment(name, body, base_dir, loc, ("recipe", name)), source=str(path))
        for name, body in recipes.items()
    }
    return RecipesFile(path=path, stages=stages, experiments=experiments)


def apply_overrides(exp: Experiment, overrides: list[str] | tuple[str, ...]) -> Experiment:
    """Apply ``--set section.key=value`` overrides with the same validation as the file."""
    values: list[tuple[str, Any, str]] = []
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set train.lr=1e-3.")
        key, value = (s.strip() for s in text.split("=", 1))
        values.append((key, parse_value(value), f"--set {text}: "))
    return _set_values(exp, values)


def check_override_key(key: str, prefix: str = "") -> list[str]:
    """The parts of a ``--set`` key (``train.lr`` → [train, lr]); ``ConfigError`` when it names no section."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in ("task", "description"):
        return parts
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise ConfigError(
            f"{prefix}key must be SECTION.KEY with SECTION one of {', '.join(SECTIONS)}"
            f"{suggest(parts[0], SECTIONS)}."
        )
    return parts


def apply_values(exp: Experiment, values: Mapping[str, Any]) -> Experiment:
    """``exp`` with typed values set at dotted keys (``{"model.width": 64, "model.kwargs.depth": 3}``), validated
    like the file and ``--set`` (which parses its text first)."""
    return _set_values(exp, [(key, value, f"--set {key}: ") for key, value in values.items()])


def _set_values(exp: Experiment, values: list[tuple[str, Any, str]]) -> Experiment:
    raw = _experiment_to_raw(exp)
    for key, value, prefix in values:
        parts = check_override_key(key, prefix)
        target = raw
        for p in parts[:-1]:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{prefix}{p} is not a table.")
        target[parts[-1]] = value
    return dataclasses.replace(_load_experiment(exp.name, raw, exp.base_dir, Locator("--set", ""), ()), source=exp.source)


def check_name(name: Any, where_: str = "") -> str:
    """``name`` if it can be a run-dir folder name, else a ``ConfigError``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where_}recipe name {name!r} is not allowed: it names a folder under the runs dir, so it "
                          "must be one path component of letters, digits, '_', '-' and '.', starting with a letter or "
                          "digit (at most 100 characters).")
    return name


def experiment_from_dict(d: Mapping[str, Any]) -> Experiment:
    """Rebuild an Experiment from ``Experiment.to_dict()`` (a run dir's config.json), validated like the file."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"a run's config.json: expected a JSON object, got {describe(d)}.")
    d = dict(d)
    source = str(d.pop("source", "config.json"))
    name = check_name(d.pop("name", None), "a run's config.json: ")
    base_dir = str(d.pop("base_dir", "."))
    exp = _load_experiment(name, d, base_dir, Locator(f"a run's config.json (recipe {name})", ""), ())
    return dataclasses.replace(exp, source=source)


def _experiment_to_raw(exp: Experiment) -> dict[str, Any]:
    d = exp.to_dict()
    for key in ("name", "base_dir", "source"):
        d.pop(key)
    return d


def parse_value(value: str) -> Any:
    """A ``--set`` value: TOML (``1e-3``, ``true``, ``"x"``, ``[{ width = 8 }]``), else the bare word as a string."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return value  # bare words such as mnist or cuda:0 (and values TOML cannot read: then a type error)


def _load_experiment(name: str, body: Any, base_dir: str, loc: Locator, path: KeyPath) -> Experiment:
    check_keys(body, {"task", "description", *SECTIONS}, path, loc)
    task = typed(body.get("task", "classification"), str, path + ("task",), loc)
    if task not in TASKS:
        raise loc.error(path + ("task",), f"'{task}' is not a task{suggest(task, TASKS)} (one of {', '.join(TASKS)})")
    description = typed(body.get("description", ""), str, path + ("description",), loc)
    sections = {key: build(cls, body.get(key, {}), path + (key,), loc) for key, cls in SECTIONS.items()}
    _check_experiment(sections, loc, path)
    return Experiment(name=name, task=task, description=description, base_dir=base_dir, **sections)


def _check_experiment(sections: dict[str, Any], loc: Locator, path: KeyPath) -> None:
    """What one key's type and range cannot say: choices, exclusive keys, keys that depend on each other."""
    data, model, train = sections["data"], sections["model"], sections["train"]
    _one_of(data, ("source", "factory", "path"), path + ("data",), loc)
    _one_of(model, ("name", "factory"), path + ("model",), loc)
    for key, choices in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS)):
        value = getattr(train, key)
        if value not in choices:
            raise loc.error(path + ("train", key), f"'{value}' is not {'an' if key == 'optimizer' else 'a'} {key}"
                            f"{suggest(value, choices)} ({', '.join(choices[:-1])} or {choices[-1]})")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", train.device):
        raise loc.error(path + ("train", "device"), f"'{train.device}' is not a device"
                        f"{suggest(train.device, ('auto', 'cpu', 'cuda', 'mps'))} (auto, cpu, cuda, cuda:N or mps)")
    if data.val_fraction + data.test_fraction >= 1:
        raise loc.error(path + ("data", "test_fraction"), f"val_fraction + test_fraction must be below 1, got "
                        f"{data.val_fraction:g} + {data.test_fraction:g}: nothing would be left to train on")
    _check_capacities(sections, loc, path)
    check_plans(sections, SECTIONS, loc, path, _check_experiment)
    if model.name == "char-transformer" and model.width % model.heads:
        raise loc.error(path + ("model", "heads"), f"{model.heads} heads do not divide model.width {model.width} "
                        "(each head gets width / heads channels)")
    for factory, key in ((data.factory, "data"), (model.factory, "model")):
        if factory is not None and not re.fullmatch(r"[\w.]+:[\w.]+", factory):
            raise loc.error(path + (key, "factory"), f"'{factory}' is not of the form module:function")


def _check_capacities(sections: dict[str, Any], loc: Locator, path: KeyPath) -> None:
    """Each ``checks.capacities`` entry is a non-empty table; for a built-in model its keys are model keys,
    checked (types, ranges) as if written in the model table."""
    model = sections["model"]
    for n, entry in enumerate(sections["checks"].capacities, start=1):
        where_ = path + ("checks", "capacities", n)
        if not entry:
            raise loc.error(where_, "is empty: name the model keys (or factory kwargs) of this capacity")
        if model.factory is None and model.name in BUILTIN_MODELS:
            fixed = {"name", "factory", "kwargs"} & set(entry)
            if fixed:
                raise loc.error(where_ + (sorted(fixed)[0],), "cannot change between capacities (only sizes can)")
            build(ModelConfig, {**plain_values(model), **entry}, where_, loc)


def _one_of(section: Any, keys: tuple[str, ...], path: KeyPath, loc: Locator) -> None:
    given = [k for k in keys if getattr(section, k) is not None]
    if len(given) > 1 and not (set(given) == {"source", "path"} and section.source == "imagefolder"):
        raise ConfigError(loc.where(path + (given[1],)) + f"{dotted(path)}: give only one of {', '.join(keys)}.")
    if not given:
        raise loc.error(path, f"needs one of {', '.join(keys)}")


def where(exp: Experiment, *keys: str) -> str:
    """``file:line: recipe.NAME.key…: `` prefix for an error found after loading (e.g. a factory)."""
    path = Path(exp.source) if exp.source else Path("recipes.toml")
    try:
        text = read_text(path)
    except ConfigError:
        text = ""
    keypath = ("recipe", exp.name, *keys)
    return Locator(path, text).where(keypath) + dotted(keypath) + ": "
