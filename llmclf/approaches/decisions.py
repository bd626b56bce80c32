"""Decision rules: from probabilities to labels. Every approach uses them (a multi-label threshold is chosen on
validation inside `fit`), and the metrics score with them.

Multi-label threshold rules (the `threshold` parameter): 'validation' (one global threshold, the best micro F1 on
validation), 'validation_per_label' (each label's own best F1 on validation; a label with fewer than
`MIN_POSITIVES_PER_LABEL` positives in validation keeps the global one, since a threshold tuned on one or two
examples is noise), or a fixed number. A threshold is a float or an (n_labels,) array."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)
MIN_POSITIVES_PER_LABEL = 3


def predict_labels(proba: np.ndarray, multi_label: bool, threshold=0.5) -> np.ndarray:
    """Single-label: the argmax index per row. Multi-label: a 0/1 indicator matrix at `threshold` (a float, or one
    per label)."""
    if multi_label:
        return (proba >= np.asarray(threshold, dtype=float)).astype(np.int8)
    return proba.argmax(axis=1)


def tune_threshold(y_true: np.ndarray, proba: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The global threshold that maximizes micro F1 on (validation) data; ties go to the one nearest 0.5."""
    grid = GRID if grid is None else grid
    scores = [f1_score(y_true, (proba >= t).astype(np.int8), average="micro", zero_division=0) for t in grid]
    best = max(scores)
    candidates = [t for t, s in zip(grid, scores) if s == best]
    return float(min(candidates, key=lambda t: abs(t - 0.5)))


def tune_thresholds_per_label(y_true: np.ndarray, proba: np.ndarray, fallback: float | None = None,
                              min_positives: int = MIN_POSITIVES_PER_LABEL,
                              grid: np.ndarray | None = None) -> np.ndarray:
    """(n_labels,) thresholds: each label's best F1 on (validation) data, ties nearest 0.5; labels with fewer than
    `min_positives` positives there get `fallback` (default: the global tuned threshold)."""
    grid = GRID if grid is None else grid
    y_true = np.asarray(y_true)
    fallback = tune_threshold(y_true, proba, grid) if fallback is None else float(fallback)
    out = np.full(y_true.shape[1], fallback, dtype=float)
    for j in range(y_true.shape[1]):
        if y_true[:, j].sum() < min_positives:
            continue
        scores = [f1_score(y_true[:, j], (proba[:, j] >= t).astype(np.int8), zero_division=0) for t in grid]
        best = max(scores)
        out[j] = float(min((t for t, s in zip(grid, scores) if s == best), key=lambda t: abs(t - 0.5)))
    return out


def is_tuned(rule) -> bool:
    return rule in ("validation", "validation_per_label")


def choose_threshold(rule, y_val: np.ndarray, proba_val: np.ndarray | None):
    """The multi-label threshold a rule gives: a float ('validation', a number) or an array (per label)."""
    if rule == "validation":
        return tune_threshold(y_val, proba_val)
    if rule == "validation_per_label":
        return tune_thresholds_per_label(y_val, proba_val)
    return float(rule)


def threshold_on_validation(clf, task) -> None:
    """A fine-tuned multi-label classifier's threshold, chosen inside its `fit`: with a tuned rule, predict the
    validation split once (kept as `clf.validation_proba` for calibration; timed as the 'validation' phase), then
    apply `clf.cfg.threshold`'s rule."""
    import time

    if is_tuned(clf.cfg.threshold):
        start = time.perf_counter()
        clf.validation_proba = clf.predict_proba(task.validation.texts, phase="predict validation")
        clf.phase_seconds["validation"] = time.perf_counter() - start
    clf.threshold = choose_threshold(clf.cfg.threshold, task.validation.y, clf.validation_proba)


def threshold_for_record(threshold):
    """A float, or a list of floats (per label): what a JSON record holds."""
    arr = np.asarray(threshold, dtype=float)
    return float(arr) if arr.ndim == 0 else [float(v) for v in arr]


def balanced_weights(y: np.ndarray, n_labels: int, multi_label: bool) -> np.ndarray:
    """class_weight 'balanced': single-label, n / (k * count) per class (scikit-learn's rule; absent classes 1);
    multi-label, BCE pos_weight = negatives / positives per label (labels without positives 1)."""
    y = np.asarray(y)
    if multi_label:
        pos = y.sum(axis=0).astype(float)
        neg = len(y) - pos
        return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)
    counts = np.bincount(y, minlength=n_labels).astype(float)
    return np.where(counts > 0, len(y) / (n_labels * np.maximum(counts, 1)), 1.0).astype(np.float32)
