"""Stage 1: per-split statistics — counts, shapes, channel statistics, sequence lengths, bad samples."""
from __future__ import annotations

from typing import Any

from .context import CheckContext
from .limits import unscaled
from .verdict import Verdict


def _fmt(v: float | None) -> str:
    return "?" if v is None else f"{v:.3g}"


def _where(bad: list[dict[str, Any]], limit: int = 6) -> str:
    shown = ", ".join(f"{b['split']} #{b['index']}" for b in bad[:limit])
    return shown + (f" and {len(bad) - limit} more" if len(bad) > limit else "")


def describe(m: dict[str, Any]) -> str:
    """Counts, shape and dtype of the splits; sequence lengths, or the training split's channel statistics."""
    from ..audit.stats import describe_shape

    train = next(iter(m["splits"].values()))
    counts = " · ".join(f"{name} {d['count']:,}" for name, d in m["splits"].items())
    shape = describe_shape(train["shapes"])
    if "lengths" in train:
        ln = train["lengths"]
        return (f"{counts} sequences of {shape} {train['dtype']} tokens; length median {ln['median']:g} (max {ln['max']})"
                + (f", vocabulary coverage {train['vocab_coverage']:.0%}" if "vocab_coverage" in train else ""))
    ch = train.get("model_input") or train.get("channels") or {}
    mean, std = ch.get("mean", []), ch.get("std", [])
    lo = min((v for v in ch.get("min", []) if v is not None), default=None)
    hi = max((v for v in ch.get("max", []) if v is not None), default=None)
    per = "" if len(mean) <= 1 else " per channel"
    stat = (f"; mean{per} {', '.join(_fmt(v) for v in mean[:4])}, std {', '.join(_fmt(v) for v in std[:4])}, "
            f"range [{_fmt(lo)}, {_fmt(hi)}]") if mean and len(mean) <= 4 else ""
    return f"{counts} samples of {shape} {train['dtype']}{stat}"


def problems_of(m: dict[str, Any], sequences: bool) -> tuple[list[str], list[str]]:
    """(what looks wrong, what to do) — shapes, dtypes, held-out splits distributed unlike train, unscaled inputs."""
    from ..audit.stats import SHIFT_LIMIT, std_ratio_off

    problems, hints = [], []
    if m["inconsistent_shapes"]:
        shapes = {name: list(d["shapes"]) for name, d in m["splits"].items()}
        problems.append(f"input shapes differ: {shapes}")
        hints.append("Resize/pad every sample to one shape (and the same in every split) before batching.")
    if m["dtypes_differ"]:
        problems.append("the splits have different dtypes")
        hints.append("Give every split the same preprocessing.")
    shifted = {s: v for s, v in m["shift"].items() if v > SHIFT_LIMIT}
    if shifted:
        problems.append("channel means shift from train: " + ", ".join(f"{s} by {v:.2f} train std" for s, v in shifted.items()))
    spread = {s: v for s, v in m["std_ratio"].items() if std_ratio_off(v)}
    if spread:
        problems.append("channel stds differ from train: " + ", ".join(f"{s} {v:.2f}× train's" for s, v in spread.items()))
    if shifted or spread:
        hints.append("The held-out data is distributed differently from train: standardise every split with the "
                     "training mean and std (not each split with its own), and check how it was split.")
    train = next(iter(m["splits"].values()))
    ch = train.get("model_input") or train.get("channels")
    if ch and not sequences and unscaled(ch["mean"], ch["std"]):
        problems.append("inputs are not scaled (the model sees values in the hundreds or more)")
        hints.append("Scale inputs to about unit range (e.g. /255, then standardise per channel).")
    return problems, hints


def check(ctx: CheckContext) -> Verdict:
    from ..audit.pipeline import audit_scans, audit_splits
    from ..audit.stats import data_stats

    info = audit_splits(ctx).info
    vocab_size = len(info.vocab) if info.vocab else (info.num_classes if info.kind == "sequence" else None)
    m = data_stats(audit_scans(ctx), vocab=info.vocab, vocab_size=vocab_size)
    desc = describe(m)
    bad = m["bad"]
    if bad:
        kinds = sorted({b["problem"] for b in bad})
        return Verdict("fail", f"{desc}; {len(bad)} bad sample(s) ({', '.join(kinds)}): {_where(bad)}.", m,
                       "Fix or drop them before training: a single NaN/Inf input turns the loss into NaN, an input id "
                       "outside the vocabulary (padding included) crashes nn.Embedding, and a sample that fails to load "
                       "stops the training loop. The full list is under metrics.bad in --json.")
    problems, hints = problems_of(m, info.kind == "sequence")
    if problems:
        return Verdict("warn", f"{desc}; but {'; '.join(problems)}.", m, " ".join(hints))
    return Verdict("pass", f"{desc}; no NaN/Inf, no load errors.", m,
                   "Now look at the samples themselves (the sample browser, key b): scan thousands of them.")
