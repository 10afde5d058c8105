"""The sample browser: step through the data with the keyboard, filtered by what the data checks found.

``SampleBrowser(splits, findings)`` is a modal screen. ``findings`` maps a check id to its result (a
``CheckResult`` or its ``metrics`` dict): ``duplicates`` (groups), ``outliers``, ``label-issues``
(candidates) and ``losses`` (``core.audit.after_training_findings``: top losses after training);
``data-stats`` gives the data's value range, shown beside each image's own. Missing findings
just leave their filter out. Images are drawn with half blocks, sequences as text, with the given
label and the suggested one beside each sample.

Brightness is scaled per view (the samples on screen together), from their 1st to 99th percentile:
one mis-scaled sample (×16) cannot turn every other image black, and a few hot pixels do not wash
out the rest. Each image says its own value range, beside the data's (from ``data-stats``), so a
sample that is out of scale still shows as such.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..halfblock import render_sample, render_tokens, robust_range, to_chw
from ..marks import styled

MODES = ("all", "duplicates", "outliers", "label-issues", "losses")
MODE_TITLES = {"all": "all samples", "duplicates": "duplicate groups", "outliers": "outliers, most extreme first",
               "label-issues": "label issues, most suspicious first", "losses": "largest loss first"}
MAX_MEMBERS = 4  # duplicate groups: members drawn side by side


@dataclass(frozen=True)
class Entry:
    """One stop of the browser: a sample, or a group of (near-)identical samples."""

    members: tuple[tuple[str, int], ...]  # (split, index in that split)
    note: str = ""
    label: int | None = None  # the given label (class filter)
    suggested: int | None = None


class _AllEntries(Sequence):
    """Every sample of a split (optionally of one class), built on demand: no list of 60,000 objects."""

    def __init__(self, split: str, indices: np.ndarray, labels: np.ndarray | None) -> None:
        self.split, self.indices, self.labels = split, indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Entry:  # type: ignore[override]
        j = int(self.indices[i])
        return Entry(((self.split, j),), label=None if self.labels is None else int(self.labels[j]))


def _metrics(findings: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = findings.get(key)
    value = getattr(value, "metrics", value)
    return value if isinstance(value, dict) else {}


def finding_entries(findings: Mapping[str, Any]) -> dict[str, list[Entry]]:
    """The entries of each finding mode, in the order the checks rank them."""
    out: dict[str, list[Entry]] = {}
    dup = _metrics(findings, "duplicates")
    groups, info = dup.get("groups") or [], dup.get("group_info") or []
    entries = []
    for k, g in enumerate(groups):
        gi = info[k] if k < len(info) else {}
        labels = gi.get("labels") or []
        first = labels[0] if labels and isinstance(labels[0], int) else None
        tags = [gi.get("kind", "exact"), f"{len(g)} copies"]
        if len(gi.get("splits", [])) > 1:
            tags.append("across splits: leakage")
        if gi.get("conflicting"):
            tags.append(f"conflicting labels {sorted(set(map(str, labels)))}")
        entries.append(Entry(tuple((m["split"], int(m["index"])) for m in g), "duplicates: " + ", ".join(tags), first))
    out["duplicates"] = entries
    out["outliers"] = [
        Entry(((o["split"], int(o["index"])),),
              f"outlier: {o.get('stat')} = {o.get('value')} (robust z {o.get('score')}, vs its "
              f"{'class' if o.get('reference') == 'class' else 'data'})", o.get("label"))
        for o in _metrics(findings, "outliers").get("outliers") or []]
    out["label-issues"] = [
        Entry(((c["split"], int(c["index"])),), f"label issue: quality score {c.get('score')} (lower is worse)",
              c.get("given"), c.get("suggested"))
        for c in _metrics(findings, "label-issues").get("candidates") or []]
    losses = _metrics(findings, "losses") or _metrics(findings, "after-training")
    out["losses"] = [
        Entry(((t.get("split", losses.get("split", "val")), int(t["index"])),),
              f"loss {t['loss']:.4g}" + (f", predicted with {t['confidence']:.0%}" if "confidence" in t else ""),
              t.get("given"), t.get("predicted") if t.get("predicted") != t.get("given") else None)
        for t in losses.get("top_losses") or []]
    return out


class SampleBrowser(ModalScreen[None]):
    """Keys: ←/→ (h/l, j/k) step · pgup/pgdn ±10 · home/end · f filter · c class · s split · escape close."""

    BINDINGS = [
        Binding("right,l,j,down,n", "step(1)", "Next", id="browser.next"),
        Binding("left,h,k,up,p", "step(-1)", "Previous", id="browser.previous"),
        Binding("pagedown", "step(10)", "+10", show=False, id="browser.forward"),
        Binding("pageup", "step(-10)", "−10", show=False, id="browser.back"),
        Binding("home,g", "go(0)", "First", show=False, id="browser.first"),
        Binding("end,G", "go(-1)", "Last", show=False, id="browser.last"),
        Binding("f", "next_mode", "Filter", id="browser.filter"),
        Binding("c", "next_class", "Class", id="browser.class"),
        Binding("s", "next_split", "Split", id="browser.split"),
        Binding("escape,q,b", "dismiss", "Close", id="browser.close"),
    ]

    DEFAULT_CSS = """
    SampleBrowser { align: center middle; }
    SampleBrowser > #browser-box {
        width: 94%; height: 94%; border: round $accent; background: $surface; padding: 0 1;
    }
    SampleBrowser #browser-title { height: auto; text-style: bold; }
    SampleBrowser #browser-body { height: 1fr; }
    SampleBrowser #browser-keys { height: auto; color: $text-muted; }
    SampleBrowser > .sample-browser--note { color: $text-warning; }
    SampleBrowser > .sample-browser--error { color: $text-error; }
    SampleBrowser > .sample-browser--suggested { color: $text-success; text-style: bold; }
    SampleBrowser > .sample-browser--bad-token { color: $text-error; text-style: bold; }
    """
    COMPONENT_CLASSES = {"sample-browser--note", "sample-browser--error", "sample-browser--suggested",
                         "sample-browser--bad-token"}

    def __init__(self, splits: Any, findings: Mapping[str, Any] | None = None, *, mode: str = "all",
                 split: str | None = None) -> None:
        super().__init__()
        self.splits = splits
        self.datasets = dict(splits.items())
        self.info = splits.info
        self.findings = dict(findings or {})
        self.by_mode = finding_entries(self.findings)
        self.split = split if split in self.datasets else next(iter(self.datasets))
        self.class_filter: int | None = None
        self.position = 0
        self._labels: dict[str, np.ndarray | None] = {}
        self.mode = mode if mode in self.available_modes() else "all"
        self.data_range = _display_range(_metrics(self.findings, "data-stats"))
        self.view_range: tuple[float, float] | None = None  # the brightness scale of the current view
        self.entries: Sequence[Entry] = self._build()

    # ------------------------------------------------------------------ state

    def available_modes(self) -> list[str]:
        return ["all"] + [m for m in MODES[1:] if self.by_mode.get(m)]

    @property
    def current(self) -> Entry | None:
        return self.entries[self.position] if len(self.entries) else None

    def class_names(self) -> list[str]:
        names = list(self.info.class_names or ())
        if not names and self.info.num_classes:
            names = [str(i) for i in range(self.info.num_classes)]
        return names

    def _labels_of(self, split: str) -> np.ndarray | None:
        """Labels of a whole split when the dataset can give them cheaply; class labels only."""
        if split not in self._labels:
            from recipe_tui.core.data import targets_of

            t = targets_of(self.datasets[split])
            arr = None if t is None else np.asarray(t)
            self._labels[split] = arr if arr is not None and arr.ndim == 1 else None
        return self._labels[split]

    def _build(self) -> Sequence[Entry]:
        if self.mode == "all":
            labels = self._labels_of(self.split)
            idx = np.arange(len(self.datasets[self.split]))
            if self.class_filter is not None and labels is not None:
                idx = np.nonzero(labels == self.class_filter)[0]
            return _AllEntries(self.split, idx, labels)
        entries = self.by_mode.get(self.mode, [])
        if self.class_filter is not None:
            entries = [e for e in entries if e.label == self.class_filter]
        return entries

    def _rebuild(self, keep_position: bool = False) -> None:
        self.entries = self._build()
        self.position = min(self.position, max(0, len(self.entries) - 1)) if keep_position else 0
        self.refresh_view()

    # ------------------------------------------------------------------ actions

    def action_step(self, delta: int) -> None:
        if len(self.entries):
            self.position = max(0, min(len(self.entries) - 1, self.position + delta))
            self.refresh_view()

    def action_go(self, where: int) -> None:
        if len(self.entries):
            self.position = where % len(self.entries)
            self.refresh_view()

    def action_next_mode(self) -> None:
        modes = self.available_modes()
        self.mode = modes[(modes.index(self.mode) + 1) % len(modes)] if self.mode in modes else "all"
        self._rebuild()

    def action_next_class(self) -> None:
        names = self.class_names()
        if not names or self.info.kind == "sequence" or (self.mode == "all" and self._labels_of(self.split) is None):
            self.notify("no class labels to filter by here", severity="warning")
            return
        self.class_filter = 0 if self.class_filter is None else (
            None if self.class_filter + 1 >= len(names) else self.class_filter + 1)
        self._rebuild()

    def action_next_split(self) -> None:
        names = list(self.datasets)
        self.split = names[(names.index(self.split) + 1) % len(names)]
        if self.mode != "all":
            self.mode = "all"
        self._rebuild()

    # ------------------------------------------------------------------ drawing

    def compose(self) -> ComposeResult:
        with Vertical(id="browser-box"):
            yield Static(id="browser-title")
            yield Static(id="browser-body")
            yield Static(Text("←/→ step · pgup/pgdn ±10 · f filter · c class · s split · esc close"),
                         id="browser-keys")

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self) -> None:
        self.refresh_view()

    def _class_name(self, c: int | None) -> str:
        if c is None:
            return "—"
        names = self.class_names()
        return f"{c} ({names[c]})" if 0 <= c < len(names) and names[c] != str(c) else str(c)

    def title_text(self) -> Text:
        n = len(self.entries)
        where = f"{self.position + 1}/{n}" if n else "0/0"
        cls = "all classes" if self.class_filter is None else f"class {self._class_name(self.class_filter)}"
        scope = f"split {self.split}" if self.mode == "all" else "all splits"
        return Text.assemble(("samples", "bold"), f" · {MODE_TITLES[self.mode]} · {where} · {cls} · {scope}")

    def _range_text(self, x: np.ndarray) -> Text:
        """``values 0 … 16 · data 0 … 1``: the sample's own range (and the data's), the note in the warning
        colour when the sample reaches far outside the data's range."""
        finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x.reshape(-1)
        if not finite.size:
            return Text("no finite values", style=self._style("error"))
        lo, hi = float(finite.min()), float(finite.max())
        text = Text(f"values {lo:.3g} … {hi:.3g}", style="dim")
        d_lo, d_hi = self.data_range
        if d_lo is not None and d_hi is not None:
            text.append(f" · data {d_lo:.3g} … {d_hi:.3g}", style="dim")
            span = max(d_hi - d_lo, 1e-12)
            if hi > d_hi + span or lo < d_lo - span:  # more than a whole data range outside it
                text.stylize(self._style("note"))
        return text

    def _style(self, name: str) -> Style:
        return styled(self, f"sample-browser--{name}")

    def refresh_view(self) -> None:
        if not self.is_mounted:
            return
        self.query_one("#browser-title", Static).update(self.title_text())
        self.query_one("#browser-body", Static).update(self.body())

    def body(self) -> RenderableType:
        entry = self.current
        if entry is None:
            what = "nothing in this filter" + ("" if self.class_filter is None else " for this class")
            return Text(f"{what}: press f for the next filter, c for the next class.", style="dim")
        members = entry.members[:MAX_MEMBERS]
        width, height = (self.size.width or 80) - 6, (self.size.height or 24) - 13
        per = max(8, width // len(members) - 2)
        loaded = [self._load(split, index) for split, index in members]
        images = [x for x, _ in (m for m in loaded if not isinstance(m, Text)) if _is_image(x)]
        self.view_range = robust_range(images) if images else None
        grid = Table.grid(padding=(0, 2))
        for _ in members:
            grid.add_column(no_wrap=True)
        grid.add_row(*(self._sample(split, index, data, entry, per, max(4, height))
                       for (split, index), data in zip(members, loaded)))
        parts: list[RenderableType] = [grid]
        if len(entry.members) > MAX_MEMBERS:
            rest = ", ".join(f"{s} #{i}" for s, i in entry.members[MAX_MEMBERS:])
            parts.append(Text(f"also: {rest}", style="dim"))
        if entry.note:
            parts.append(Text(entry.note, style=self._style("note")))
        return Group(*parts)

    def _load(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray] | Text:
        """The sample's (x, y) as arrays, or the sentence that says why there is none."""
        ds = self.datasets.get(split)
        if ds is None or not 0 <= index < len(ds):
            return Text("not in this data", style=self._style("error"))
        try:
            x, y = ds[index][:2]
        except Exception as exc:  # the user's dataset raising is something to show, not a crash
            return Text(f"failed to load: {type(exc).__name__}: {exc}", style=self._style("error"))
        return _np(x), _np(y)

    def _sample(self, split: str, index: int, data: tuple[np.ndarray, np.ndarray] | Text, entry: Entry,
                width: int, rows: int) -> RenderableType:
        head = Text(f"{split} #{index}", style="bold")
        if isinstance(data, Text):
            return Group(head, data)
        x, y = data
        vocab = self.info.vocab
        lines: list[RenderableType] = [head]
        if _is_image(x) and self.view_range is not None:
            h, w = to_chw(x).shape[-2:]  # H×W×C numpy images too
            cols = int(min(width, 2 * rows * w / h, max(w, min(4 * w, 64))))
            lo, hi = self.view_range
            lines += [render_sample(x, width=max(4, cols), vmin=lo, vmax=hi, max_rows=rows), self._range_text(x)]
        else:
            valid = (y != self.info.ignore_index) if y.shape == x.shape else None
            lines.append(render_sample(x, vocab=vocab, valid=valid, bad_style=self._style("bad-token")))
        if y.ndim == 0:
            lines.append(Text.assemble("given ", (self._class_name(int(y)) if y.dtype.kind in "iub" else f"{float(y):.4g}", "bold")))
            if entry.suggested is not None and entry.suggested != int(y) and len(entry.members) == 1:
                lines.append(Text.assemble("suggested ", (self._class_name(int(entry.suggested)), self._style("suggested"))))
        elif y.size and y.dtype.kind in "iu":
            keep = y != self.info.ignore_index
            lines.append(Text.assemble("targets ", render_tokens(np.where(keep, y, 0), vocab, keep,
                                                                 bad_style=self._style("bad-token"))))
        return Group(*lines)


def _is_image(x: np.ndarray) -> bool:
    return x.ndim >= 2 and min(x.shape[-2:]) >= 2


def _np(v: Any) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def _display_range(stats: dict[str, Any]) -> tuple[float | None, float | None]:
    """The training data's value range (what the model sees), so that brightness compares across samples."""
    train = next(iter((stats.get("splits") or {}).values()), None)
    ch = (train or {}).get("model_input") or (train or {}).get("channels")
    if not ch:
        return None, None
    lo = [v for v in ch.get("min", []) if v is not None]
    hi = [v for v in ch.get("max", []) if v is not None]
    return (min(lo) if lo else None), (max(hi) if hi else None)
