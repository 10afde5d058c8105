"""What a check returns: a ``Verdict``. ``run_check`` stamps the check's id on it (the public ``CheckResult``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("pass", "warn", "fail", "error", "skip")


@dataclass(frozen=True)
class Verdict:
    status: str  # pass | warn | fail | error | skip
    summary: str  # one or two sentences: what was measured and what it means
    metrics: dict[str, Any] = field(default_factory=dict)  # the evidence (JSON-safe)
    hint: str = ""  # what to do next, in the recipe's words where it has them

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"a check's status is one of {', '.join(STATUSES)}, not {self.status!r}")


@dataclass(frozen=True)
class Problem:
    """One thing a check found wrong; several make one verdict (``from_problems``)."""

    status: str  # warn | fail
    what: str
    hint: str


def worst(problems: list[Problem]) -> str:
    return "fail" if any(p.status == "fail" for p in problems) else "warn"
