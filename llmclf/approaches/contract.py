"""The one interface every approach implements, as scikit-learn's estimators share fit / predict_proba.

Metrics, thresholds, calibration and the report never ask which approach made the scores: they read what this
protocol promises. `approaches.checks` holds the named checks of it (as scikit-learn's `utils/estimator_checks`),
and `tests/test_contract.py` runs each on every approach, one test id per approach and check.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Classifier(Protocol):
    """fit(task) -> self; predict_proba(texts) -> (n, len(labels)) probabilities in [0, 1]; save / load.

    Single-label rows sum to 1; multi-label columns are independent and `threshold` is the decision threshold
    (tuned on validation inside `fit`, or 0.5). Optional attributes the run record reads when present:
    `invalid_mask` ((n,) bool, set by predict_proba: rows that name no label, scored as wrong), `prediction_stats`
    (dict, merged into the record), `fit_stats` (dict; `reused_train_seconds` there means training was reused
    from an earlier run and is what the run's training cost is), `log_history` (Trainer's loss curve).
    """

    labels: list[str]
    multi_label: bool
    threshold: float
    trainable_params: int | None
    total_params: int | None

    def fit(self, task) -> "Classifier": ...

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def save(self, folder: str) -> None:
        """What was trained, with `llmclf_model.json` (labels, thresholds, max_length, the base's checksum)."""

    @classmethod
    def load(cls, folder: str, model_path: str | None = None) -> "Classifier":
        """The saved classifier, giving the same probabilities (`approaches.persistence`)."""
