"""Automated checklist items.

A check is a plain function ``(ctx: CheckContext) -> Verdict``; ``stages.py`` lists every check of
every stage under its public id, and ``run_check`` stamps that id on the verdict (the public
``CheckResult`` event). To add a check: write ``def check(ctx) -> Verdict`` in a module of its own,
add one line to its stage's dict in ``stages.py``, and name the id in an item of ``recipes.toml``.
"""
from __future__ import annotations

from .context import CheckContext, CheckStopped
from .runner import STOPPED, Check, registry, run_check, run_checks
from .verdict import Problem, Verdict

__all__ = ["Check", "CheckContext", "CheckStopped", "Problem", "STOPPED", "Verdict", "registry", "run_check",
           "run_checks"]
