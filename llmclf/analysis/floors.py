"""Floors: predictors that see only the training labels, never a text.

A classifier earns its place only by beating these. Each returns probabilities (n_test, L) and is thresholded and
scored exactly like any configuration, so it can sit in the same tables and comparisons.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score


def majority_class(y_train, n_test: int, n_labels: int) -> np.ndarray:
    """Single-label: every row one-hot on the most frequent training class (ties: the lowest index)."""
    counts = np.bincount(np.asarray(y_train), minlength=n_labels)
    return np.tile(np.eye(n_labels)[counts.argmax()], (n_test, 1))  # argmax takes the first of equal counts


def label_prior(y_train, n_test: int) -> np.ndarray:
    """Multi-label: every row is the training frequency of each label; the threshold decides which to predict."""
    return np.tile(np.asarray(y_train, dtype=float).mean(axis=0), (n_test, 1))


def choose_prior_threshold(y_train, y_val) -> float:
    """The threshold for `label_prior`: among the distinct training frequencies, the one whose rule "predict every
    label whose training frequency clears it" has the best validation micro-F1 (ties: the higher threshold, which
    predicts fewer labels).

    The threshold is one of the frequencies itself, so compare it with `label_prior`'s float64 probabilities
    (a float32 copy could round a frequency just under itself).
    """
    prior, y_val = label_prior(y_train, 1)[0], np.asarray(y_val)
    best_t, best_f1 = None, -1.0
    for t in np.unique(prior)[::-1]:  # from the highest: a tie keeps the higher threshold
        pred = np.tile(prior >= t, (len(y_val), 1)).astype(np.int8)
        f1 = f1_score(y_val, pred, average="micro", zero_division=0)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    return best_t


def most_frequent_label_set(y_train, n_test: int) -> np.ndarray:
    """Multi-label: every row predicts the most frequent training combination of labels (ties: the first in sorted
    order), as 0/1 probabilities for a threshold of 0.5."""
    sets, counts = np.unique(np.asarray(y_train).astype(np.int8), axis=0, return_counts=True)  # rows sorted
    return np.tile(sets[counts.argmax()].astype(float), (n_test, 1))


def floors(y_train, y_val, n_test: int, multi_label: bool, n_labels: int) -> dict:
    """name -> (proba, threshold). Single-label: "majority class" (the threshold, 0.5, goes unused by the argmax).
    Multi-label: "label prior" with its threshold chosen on validation, and "most frequent label set" at 0.5."""
    if not multi_label:
        return {"majority class": (majority_class(y_train, n_test, n_labels), 0.5)}
    return {"label prior": (label_prior(y_train, n_test), choose_prior_threshold(y_train, y_val)),
            "most frequent label set": (most_frequent_label_set(y_train, n_test), 0.5)}
