"""recipes.toml → frozen dataclasses, strictly validated.

Every error is a ``ConfigError`` whose message is one sentence naming the file, the line where it
can be found, the key path and, for unknown keys, the closest valid key.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TASKS = ("classification", "language-model", "regression")
# An experiment's name becomes a folder under the runs dir: one path component of a safe alphabet,
# starting with a letter or digit (no "..", "a/b", "/abs", ".hidden").
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class ConfigError(ValueError):
    """Bad recipes file or override; the message is meant for the user as is."""


# ----------------------------------------------------------------------------- experiment schema


@dataclass(frozen=True)
class DataConfig:
    source: str | None = None  # digits | names | mnist | fashion-mnist | cifar10 | cifar100 | imagefolder
    factory: str | None = None  # "module:function" returning {"train": ds, "val": ds, "test"?: ds}
    kwargs: dict[str, Any] = field(default_factory=dict)
    root: str = "data"  # torchvision download/cache folder, relative to the recipes file
    download: bool = False
    path: str | None = None  # imagefolder: a folder with train/ and val/ (or one folder to split)
    image_size: int | None = None  # imagefolder: resize to a square of this side
    val_fraction: float = 0.2  # when the source has no validation split of its own
    test_fraction: float = 0.0
    seq_len: int = 16  # names: tokens per sequence
    augment: bool = False  # vision sources: random crop + flip on train
    limit: int | None = None  # use at most this many training samples
    split_seed: int = 0  # the train/val/test split is fixed by this, not by train.seed


@dataclass(frozen=True)
class ModelConfig:
    name: str | None = None  # linear | mlp | cnn | char-mlp | char-transformer | any torchvision.models name
    factory: str | None = None  # "module:function" returning an nn.Module
    kwargs: dict[str, Any] = field(default_factory=dict)
    width: int = 128
    depth: int = 2
    dropout: float = 0.0
    batchnorm: bool = False
    heads: int = 4  # char-transformer
    context: int = 3  # char-mlp: characters of context
    init_bias: bool = False  # "init well": final-layer bias ← log class priors / target mean (see init-bias)


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 3e-4  # "Adam with 3e-4 LR is safe"
    batch_size: int = 64
    steps: int = 2000
    seed: int = 1337
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd
    schedule: str = "constant"  # constant | cosine | linear ("initially, disable LR decays entirely")
    warmup_steps: int = 0
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    amp: bool = False  # autocast: bf16 on CPU and NVIDIA compute ≥ 8, else fp16 + GradScaler
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:N | mps
    eval_every: int = 200
    log_every: int = 10
    checkpoint_every: int = 500
    eval_batch_size: int = 512
    num_workers: int = 0


@dataclass(frozen=True)
class ChecksConfig:
    batch_size: int = 32  # batch used by the skeleton checks
    init_loss_tolerance: float = 0.15  # relative deviation from the expected loss at init
    init_loss_batches: int = 8
    overfit_batch_size: int = 8  # 2..16
    overfit_steps: int = 500
    overfit_lr: float = 3e-3
    overfit_loss: float = 0.05  # "near-zero" loss
    zero_input_steps: int = 200
    zero_input_margin: float = 0.1  # real must beat zeroed by this relative margin
    seed_steps: int = 5
    dependency_samples: int = 3  # how many i to test in batch-independence / causality
    imbalance_ratio: float = 0.5  # warn when least/most common class count is below this
    near_duplicate_ratio: float = 0.1  # near duplicate: NN distance below this × median NN distance
    outlier_z: float = 6.0  # robust z-score past which a sample is an outlier
    label_folds: int = 5
    label_max_candidates: int = 100
    label_issue_fraction: float = 0.02  # label-issues warns when more than this fraction of train is flagged


@dataclass(frozen=True)
class Experiment:
    name: str
    task: str = "classification"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    base_dir: str = "."  # folder of the recipes file: factories import from here, relative paths start here
    source: str = ""  # the recipes file this came from, for error messages

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> "Experiment":
        """A copy with ``changes`` applied to one section (``train``, ``model`` …)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "checks": ChecksConfig}

# ----------------------------------------------------------------------------- checklist schema


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    check: str | None = None  # automated: the check id; manual items have guidance only
    guidance: str = ""


@dataclass(frozen=True)
class Stage:
    number: int
    title: str
    items: tuple[Item, ...] = ()


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
                f"{self.path}: no recipe named '{name}'{_suggest(name, self.experiments)}"
                f" (available: {', '.join(self.experiments)})."
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
    """``--file`` if given, else ./recipes.toml if present, else the shipped one."""
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such recipes file.")
        return path
    local = Path("recipes.toml")
    return local if local.is_file() else shipped_recipes_path()


def load_recipes(file: str | Path | None = None) -> RecipesFile:
    path = find_recipes_file(file)
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}.") from None
    loc = _Locator(path, text)
    _check_keys(raw, {"stage", "recipe"}, (), loc)
    if "stage" in raw:
        stages = _load_stages(raw["stage"], loc)
    elif path.resolve() != shipped_recipes_path():
        stages = load_recipes(shipped_recipes_path()).stages  # a file of experiments only: the recipe's checklist
    else:
        stages = ()
    recipes = raw.get("recipe", {})
    if not isinstance(recipes, dict):
        raise ConfigError(loc.where(("recipe",)) + "recipe: expected tables [recipe.NAME].")
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
    raw = _experiment_to_raw(exp)
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set train.lr=1e-3.")
        key, value = (s.strip() for s in text.split("=", 1))
        parts = key.split(".")
        if len(parts) == 1 and parts[0] in ("task", "description"):
            raw[parts[0]] = _parse_value(value)
            continue
        if len(parts) < 2 or parts[0] not in SECTIONS:
            raise ConfigError(
                f"--set {text}: key must be SECTION.KEY with SECTION one of {', '.join(SECTIONS)}"
                f"{_suggest(parts[0], SECTIONS)}."
            )
        target = raw.setdefault(parts[0], {})
        for p in parts[1:-1]:
            target = target.setdefault(p, {})
        target[parts[-1]] = _parse_value(value)
    return dataclasses.replace(_load_experiment(exp.name, raw, exp.base_dir, _Locator(Path("--set"), ""), ()), source=exp.source)


def check_name(name: Any, where_: str = "") -> str:
    """``name`` if it can be a run-dir folder name, else a ``ConfigError``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where_}recipe name {name!r} is not allowed: it names a folder under the runs dir, so it "
                          "must be one path component of letters, digits, '_', '-' and '.', starting with a letter or "
                          "digit (at most 100 characters).")
    return name


def experiment_from_dict(d: Mapping[str, Any]) -> Experiment:
    """Rebuild an Experiment from ``Experiment.to_dict()`` (a run dir's config.json)."""
    d = dict(d)
    source = str(d.pop("source", "config.json"))
    name = check_name(d.pop("name", None), f"{source}: ")
    base_dir = str(d.pop("base_dir", "."))
    exp = _load_experiment(name, d, base_dir, _Locator(Path(source), ""), ())
    return dataclasses.replace(exp, source=source)


def _experiment_to_raw(exp: Experiment) -> dict[str, Any]:
    d = exp.to_dict()
    for key in ("name", "base_dir", "source"):
        d.pop(key)
    return d


def _parse_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value  # bare words such as mnist or cuda:0


def _load_stages(raw: Any, loc: "_Locator") -> tuple[Stage, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(loc.where(("stage",)) + "stage: expected [[stage]] tables (or none: the recipe's own checklist).")
    stages, seen = [], set()
    for n, body in enumerate(raw, start=1):
        _check_keys(body, {"title", "item"}, ("stage",), loc)
        title = _typed(body.get("title"), str, ("stage", str(n), "title"), loc)
        items = []
        for item_body in body.get("item", []):
            _check_keys(item_body, {f.name for f in dataclasses.fields(Item)}, ("stage", "item"), loc)
            item_id = _typed(item_body.get("id"), str, ("stage", "item", "id"), loc)
            if item_id in seen:
                raise ConfigError(loc.where(("stage", "item", "id")) + f"stage.item.id: duplicate item id '{item_id}'.")
            seen.add(item_id)
            items.append(_build(Item, item_body, ("stage", "item", item_id), loc))
        stages.append(Stage(number=n, title=title, items=tuple(items)))
    return tuple(stages)


def _load_experiment(name: str, body: Any, base_dir: str, loc: "_Locator", path: tuple[str, ...]) -> Experiment:
    if not isinstance(body, dict):
        raise ConfigError(loc.where(path) + f"{_dotted(path)}: expected a table.")
    _check_keys(body, {"task", "description", *SECTIONS}, path, loc)
    task = _typed(body.get("task", "classification"), str, path + ("task",), loc)
    if task not in TASKS:
        raise ConfigError(
            loc.where(path + ("task",)) + f"{_dotted(path + ('task',))}: '{task}' is not a task{_suggest(task, TASKS)}"
            f" (one of {', '.join(TASKS)})."
        )
    sections = {}
    for key, cls in SECTIONS.items():
        sec = body.get(key, {})
        if not isinstance(sec, dict):
            raise ConfigError(loc.where(path + (key,)) + f"{_dotted(path + (key,))}: expected a table.")
        sections[key] = _build(cls, sec, path + (key,), loc)
    data, model = sections["data"], sections["model"]
    _one_of(data, ("source", "factory", "path"), path + ("data",), loc)
    _one_of(model, ("name", "factory"), path + ("model",), loc)
    train = sections["train"]
    if train.schedule not in ("constant", "cosine", "linear"):
        raise ConfigError(loc.where(path + ("train", "schedule")) + f"{_dotted(path + ('train', 'schedule'))}: "
                          f"'{train.schedule}' is not a schedule (constant, cosine or linear).")
    if train.optimizer not in ("adam", "adamw", "sgd"):
        raise ConfigError(loc.where(path + ("train", "optimizer")) + f"{_dotted(path + ('train', 'optimizer'))}: "
                          f"'{train.optimizer}' is not an optimizer (adam, adamw or sgd).")
    for key in ("steps", "batch_size", "log_every", "eval_every", "checkpoint_every", "eval_batch_size"):
        if getattr(train, key) < 1:
            raise ConfigError(loc.where(path + ("train", key)) + f"{_dotted(path + ('train', key))}: must be at least 1.")
    if not 2 <= sections["checks"].overfit_batch_size <= 16:
        key = path + ("checks", "overfit_batch_size")
        raise ConfigError(loc.where(key) + f"{_dotted(key)}: must be between 2 and 16 (a batch of a few examples).")
    if train.lr <= 0:
        raise ConfigError(loc.where(path + ("train", "lr")) + f"{_dotted(path + ('train', 'lr'))}: must be positive.")
    for factory, key in ((data.factory, "data"), (model.factory, "model")):
        if factory is not None and not re.fullmatch(r"[\w.]+:[\w.]+", factory):
            raise ConfigError(loc.where(path + (key, "factory")) + f"{_dotted(path + (key, 'factory'))}: "
                              f"'{factory}' is not of the form module:function.")
    return Experiment(name=name, task=task, description=body.get("description", ""), base_dir=base_dir, **sections)


def _one_of(section: Any, keys: tuple[str, ...], path: tuple[str, ...], loc: "_Locator") -> None:
    given = [k for k in keys if getattr(section, k) is not None]
    if len(given) > 1 and not (set(given) == {"source", "path"} and section.source == "imagefolder"):
        raise ConfigError(loc.where(path + (given[1],)) + f"{_dotted(path)}: give only one of {', '.join(keys)}.")
    if not given:
        raise ConfigError(loc.where(path) + f"{_dotted(path)}: needs one of {', '.join(keys)}.")


def _build(cls: type, body: Mapping[str, Any], path: tuple[str, ...], loc: "_Locator") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(body, set(names), path, loc)
    values = {k: _typed(v, hints[k], path + (k,), loc) for k, v in body.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        missing = re.findall(r"'(\w+)'", str(exc))
        key = missing[0] if missing else "?"
        raise ConfigError(loc.where(path) + f"{_dotted(path)}: missing required key '{key}'.") from None


def _typed(value: Any, hint: Any, path: tuple[str, ...], loc: "_Locator") -> Any:
    ok, coerced = _coerce(value, hint)
    if not ok:
        raise ConfigError(
            loc.where(path) + f"{_dotted(path)}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}."
        )
    return coerced


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            ok, v = _coerce(value, arg)
            if ok:
                return True, v
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is Any:
        return True, value
    if origin is dict or hint is dict:
        return isinstance(value, dict), dict(value) if isinstance(value, dict) else value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is dict or hint is dict:
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(hint, str(hint))


def _check_keys(body: Any, allowed: set[str], path: tuple[str, ...], loc: "_Locator") -> None:
    if not isinstance(body, dict):
        raise ConfigError(loc.where(path) + f"{_dotted(path) or 'file'}: expected a table.")
    for key in body:
        if key not in allowed:
            raise ConfigError(
                loc.where(path + (key,))
                + f"{_dotted(path + (key,))}: unknown key{_suggest(key, allowed)}"
                + f" (valid: {', '.join(sorted(allowed))})."
            )


def _suggest(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def where(exp: Experiment, *keys: str) -> str:
    """``file:line: recipe.NAME.key…: `` prefix for an error found after loading (e.g. a factory)."""
    path = Path(exp.source) if exp.source else Path("recipes.toml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    keypath = ("recipe", exp.name, *keys)
    return _Locator(path, text).where(keypath) + _dotted(keypath) + ": "


class _Locator:
    """Best-effort line numbers for key paths (tomllib reports lines only for syntax errors)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, keypath: tuple[str, ...]) -> int | None:
        if not self.lines:
            return None
        # Narrow to the innermost [header] that is a prefix of the key path, then find the key.
        start, end = 0, len(self.lines)
        for depth in range(len(keypath), 0, -1):
            dotted = r"\s*\.\s*".join(_key_pattern(k) for k in keypath[:depth])
            header = re.compile(r"^\s*\[\[?\s*" + dotted + r"\s*\]\]?\s*(#.*)?$")
            hits = [i for i, line in enumerate(self.lines) if header.match(line)]
            if hits:
                start = hits[0]
                nxt = [i for i in range(start + 1, len(self.lines)) if re.match(r"^\s*\[", self.lines[i])]
                end = nxt[0] if nxt else len(self.lines)
                rest = keypath[depth:]
                break
        else:
            rest = keypath
        if not rest:
            return start + 1
        for i in range(start, end):
            if re.search(r"(^|[\s{,])" + re.escape(rest[-1]) + r"\s*=", self.lines[i]):
                return i + 1
        return start + 1 if start else None

    def where(self, keypath: tuple[str, ...]) -> str:
        line = self.line_of(keypath) if keypath else None
        return f"{self.path}:{line}: " if line else f"{self.path}: "


def _key_pattern(key: str) -> str:
    """A TOML key as it may be written: bare, "quoted" or 'literal'."""
    k = re.escape(key)
    return f"(?:{k}|\"{re.escape(key.replace(chr(92), chr(92) * 2))}\"|'{k}')"
