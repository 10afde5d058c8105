"""torchvision datasets by name, and image folders."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from ..config import ConfigError, Experiment, where
from ..augment import IMAGE_PRESETS, image_ops
from . import DataInfo, Splits, random_split_indices

# name → (torchvision class, channel means, channel stds)
TORCHVISION_SOURCES = {
    "mnist": ("MNIST", (0.1307,), (0.3081,)),
    "fashion-mnist": ("FashionMNIST", (0.2860,), (0.3530,)),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
NATIVE_SIZE = {"mnist": 28, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32}


def _root(exp: Experiment) -> Path:
    root = Path(exp.data.root).expanduser()
    return root if root.is_absolute() else Path(exp.base_dir) / root


def _transforms(exp: Experiment, mean: tuple[float, ...], std: tuple[float, ...], size: int | None, train: bool):
    from torchvision import transforms as T

    ops = []
    if size:
        ops.append(T.Resize((size, size)))
    if train and exp.data.augment:
        ops += [T.RandomCrop(size or 32, padding=4) if size or len(mean) == 3 else T.RandomCrop(28, padding=2)]
        if len(mean) == 3:
            ops.append(T.RandomHorizontalFlip())
    if train and exp.data.augmentation in IMAGE_PRESETS:  # on the PIL image: colour jitter sees real colours
        ops += image_ops(exp.data.augmentation, size or NATIVE_SIZE.get(exp.data.source or ""))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)


def load_torchvision(exp: Experiment) -> Splits:
    import torchvision.datasets as tvd

    cls_name, mean, std = TORCHVISION_SOURCES[exp.data.source]
    cls = getattr(tvd, cls_name)
    root = _root(exp)
    try:
        train = cls(root, train=True, download=exp.data.download, transform=_transforms(exp, mean, std, None, True))
        val = cls(root, train=False, download=exp.data.download, transform=_transforms(exp, mean, std, None, False))
    except (RuntimeError, OSError) as exc:
        if not _missing_or_offline(exc):
            raise
        raise ConfigError(f"{where(exp, 'data', 'source')}{offline_message(exp.data.source, cls, root, exp.data.download, exc)}") from None
    x0, _ = train[0]
    classes = tuple(str(c) for c in getattr(train, "classes", ()))
    info = DataInfo(kind="image", input_shape=tuple(x0.shape), num_classes=len(classes), class_names=classes)
    return Splits(train=train, val=val, info=info)


def _missing_or_offline(exc: BaseException) -> bool:
    """torchvision's "not found" (download off) or a failed download (no network, a proxy, a timeout)."""
    from urllib.error import URLError

    if isinstance(exc, (URLError, ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("not found" in text or "download" in text)


def _reason(exc: BaseException) -> str:
    """The network error in a few words: MNIST wraps it in a RuntimeError listing every mirror it tried."""
    import re

    text = " ".join(str(exc).split())
    found = re.search(r"<urlopen error (.*?)>", text)
    reason = found.group(1) if found else f"{type(exc).__name__}: {text}"
    return reason if len(reason) <= 160 else reason[:159] + "…"


def offline_message(source: str, cls: type, root: Path, download: bool, exc: BaseException) -> str:
    """Which files to put where so that torchvision finds ``source`` under ``root`` without a network.

    The MNIST family reads ``<root>/<Class>/raw/``: unpacked files when ``download`` is off; the
    ``.gz`` files are unpacked there (not downloaded) when it is on. CIFAR reads ``<root>/<base_folder>/``,
    unpacked; its archive in ``<root>`` is unpacked (not downloaded) when ``download`` is on."""
    root = root.resolve()
    if download:
        why = f"could not be downloaded into {root} ({_reason(exc)})"
    else:
        why = f"is not in {root} (data.download = false)"
    resources = getattr(cls, "resources", None)
    if resources:  # MNIST, FashionMNIST: (file name or URL, md5)
        folder = root / cls.__name__ / "raw"
        archives = [Path(name).name for name, _ in resources]
        unpacked = [Path(name).stem if name.endswith(".gz") else name for name in archives]
        put = (f"put {', '.join(archives)} into {folder}/ (torchvision unpacks them there instead of downloading)"
               if download else
               f"put {', '.join(unpacked)} (unpacked) into {folder}/, or the .gz files there with data.download = true")
    else:  # CIFAR: one archive that unpacks into base_folder
        folder = root / cls.base_folder
        members = [name for name, _ in [*cls.train_list, *cls.test_list]] + [cls.meta["filename"]]
        put = (f"put {cls.filename} into {root}/ (torchvision unpacks it instead of downloading), "
               f"or its unpacked folder {folder}/ ({', '.join(members)})")
        if not download:
            put = (f"put the unpacked folder {cls.base_folder}/ ({', '.join(members)}) into {root}/, "
                   f"or {cls.filename} there with data.download = true")
    return f"{source} {why}: {put}. data.root sets the folder (relative to the recipes file)."


def load_imagefolder(exp: Experiment) -> Splits:
    from torchvision.datasets import ImageFolder

    if not exp.data.path:
        raise ConfigError(f"{where(exp, 'data')}imagefolder needs data.path, a folder of class folders.")
    root = Path(exp.data.path).expanduser()
    root = root if root.is_absolute() else Path(exp.base_dir) / root
    if not root.is_dir():
        raise ConfigError(f"{where(exp, 'data', 'path')}no such folder: {root}.")
    size = exp.data.image_size
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    if (root / "train").is_dir() and (root / "val").is_dir():
        train = ImageFolder(root / "train", transform=_transforms(exp, mean, std, size, True))
        val: Dataset = ImageFolder(root / "val", transform=_transforms(exp, mean, std, size, False))
        test = ImageFolder(root / "test", transform=_transforms(exp, mean, std, size, False)) if (root / "test").is_dir() else None
        classes = train.classes
    else:
        full_train = ImageFolder(root, transform=_transforms(exp, mean, std, size, True))
        full_eval = ImageFolder(root, transform=_transforms(exp, mean, std, size, False))
        parts = random_split_indices(len(full_train), (exp.data.val_fraction, exp.data.test_fraction), exp.data.split_seed)
        train = Subset(full_train, parts[0].tolist())
        val = Subset(full_eval, parts[1].tolist())
        test = Subset(full_eval, parts[2].tolist()) if len(parts[2]) else None
        classes = full_train.classes
    x0, _ = val[0]
    info = DataInfo(kind="image", input_shape=tuple(x0.shape), num_classes=len(classes), class_names=tuple(classes))
    return Splits(train=train, val=val, test=test, info=info)
