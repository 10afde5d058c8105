"""Import user factories given as ``module:function``, with the recipes file's folder first on sys.path."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from .config import ConfigError, Experiment, where


def import_factory(spec: str, exp: Experiment, *keys: str) -> Callable[..., Any]:
    module_name, _, func_name = spec.partition(":")
    base = exp.base_dir
    if base not in sys.path:
        sys.path.insert(0, base)
    elif sys.path[0] != base:
        sys.path.remove(base)
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"{where(exp, *keys)}no module named '{exc.name}' (looked in {base} first).") from None
        raise  # the user's module exists but itself imports something missing: their traceback matters
    func = module
    for part in func_name.split("."):
        func = getattr(func, part, None)
        if func is None:
            raise ConfigError(f"{where(exp, *keys)}module '{module_name}' ({module.__file__}) has no '{func_name}'.")
    if not callable(func):
        raise ConfigError(f"{where(exp, *keys)}'{spec}' is not callable.")
    return func
