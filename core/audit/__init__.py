"""Stage 1 of the recipe, "become one with the data", as UI-free algorithms.

``scan`` reads every split once (hashes, per-sample statistics, embeddings, features); ``stats``,
``balance``, ``duplicates``, ``outliers`` and ``labels`` turn scans into findings; ``after_training``
ranks validation samples by loss; ``cache`` keys results by a fingerprint of the data. The checks in
``core/checks/data_*.py`` wrap these; the TUI's sample browser displays their findings.
"""
from __future__ import annotations

from .after_training import (SampleLosses, after_training_findings, confusion_matrix, most_confused,
                             per_sample_losses, top_losses)
from .balance import class_balance
from .cache import AuditCache, fingerprint_scans
from .duplicates import find_duplicates, near_pairs
from .labels import (confident_joint, cross_val_probs, estimated_noise_rate, find_label_issues,
                     label_quality_scores, per_class_thresholds, rank_by_label_quality)
from .outliers import find_outliers, robust_z
from .scan import SplitScan, scan_split, scan_splits
from .stats import data_stats

__all__ = [
    "AuditCache", "SampleLosses", "SplitScan", "after_training_findings", "class_balance", "confident_joint",
    "confusion_matrix", "cross_val_probs", "data_stats", "estimated_noise_rate", "find_duplicates",
    "find_label_issues", "find_outliers", "fingerprint_scans", "label_quality_scores", "most_confused",
    "near_pairs", "per_class_thresholds", "per_sample_losses", "rank_by_label_quality", "robust_z", "scan_split",
    "scan_splits", "top_losses",
]
