"""Decision rules: from probabilities to labels. Every approach uses them (a multi-label threshold is tuned on
validation inside `fit`), and the metrics score with them."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def predict_labels(proba: np.ndarray, multi_label: bool, threshold: float = 0.5) -> np.ndarray:
    """Single-label: the argmax index per row. Multi-label: a 0/1 indicator matrix at `threshold`."""
    if multi_label:
        return (proba >= threshold).astype(np.int8)
    return proba.argmax(axis=1)


def tune_threshold(y_true: np.ndarray, proba: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The global threshold that maximizes micro F1 on (validation) data; ties go to the one nearest 0.5."""
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if grid is None else grid
    scores = [f1_score(y_true, (proba >= t).astype(np.int8), average="micro", zero_division=0) for t in grid]
    best = max(scores)
    candidates = [t for t, s in zip(grid, scores) if s == best]
    return float(min(candidates, key=lambda t: abs(t - 0.5)))
