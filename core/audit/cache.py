"""The expensive audit results (the label model's cross-fitting, the near-duplicate search) cached on disk
under a digest of everything the scan read, so reopening a project does not redo them.

The key is exact, never a sample: every split's scan digests each sample's values (as the audit reads them),
its label, and every sample that failed to load, in order (``SplitScan.digest``). The scan reads all of the
data on every job anyway (data-stats is made of it), so a dataset edited in place — a NaN fixed, a label
corrected — gets a new key, and a cached verdict is never stale. The cheap checks are not cached at all.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from .scan import SplitScan

AUDIT_VERSION = 2  # the cache key also holds a digest of the audit source, so edits invalidate it too


def fingerprint_scans(scans: dict[str, SplitScan], info: Any) -> str:
    """The data as the audit saw it: the description of the splits and each split's scan digest, in order."""
    h = hashlib.sha256(f"audit-v{AUDIT_VERSION}".encode())
    h.update(repr(info).encode())
    for name, scan in scans.items():
        h.update(f"{name}:{scan.digest}".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the audit's own source: upgrading recipe-tui never serves results of older code."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(str(AUDIT_VERSION).encode())
    for path in sorted(here.glob("*.py")) + sorted((here.parent / "checks").glob("data_*.py")):
        try:
            h.update(path.name.encode() + path.read_bytes())
        except OSError:
            pass
    return h.hexdigest()[:16]


def cache_key(fingerprint: str, check_id: str, params: dict[str, Any]) -> str:
    blob = json.dumps({"fp": fingerprint, "check": check_id, "params": params, "code": code_version()},
                      sort_keys=True, default=str)
    return f"{check_id}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


class AuditCache:
    """JSON files under ``root`` (``runs/.cache/audit``); unreadable or unwritable caches are ignored."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Not mkstemp: its files are 0600 whatever the umask, and the runs dir follows the user's umask.
            tmp = self.root / f".tmp-{os.getpid()}-{threading.get_ident()}-{key}.json"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(value, f, default=_json_default)
            os.replace(tmp, self.root / f"{key}.json")  # readers never see half a file
        except OSError:
            pass


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
