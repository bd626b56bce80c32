"""Metrics from probabilities: the same code for every approach, which never asks who made the scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from ..approaches.decisions import (predict_labels, threshold_for_record, tune_threshold,  # noqa: F401 - API
                                    tune_thresholds_per_label)

INVALID_LABEL = "(invalid output)"


def with_invalid_column(proba: np.ndarray, invalid: np.ndarray, labels: list[str]):
    """Single-label probabilities with one more column, `(invalid output)`, that the `invalid` rows predict."""
    ext = np.zeros((len(proba), len(labels) + 1), dtype=np.float32)
    ext[:, :-1] = proba
    ext[invalid] = 0.0
    ext[invalid, -1] = 1.0
    return ext, [*labels, INVALID_LABEL]


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, labels: list[str], multi_label: bool,
                           threshold=0.5, invalid: np.ndarray | None = None) -> dict:
    """Accuracy, micro/macro/weighted F1, per-label F1; for multi-label P@1 and subset accuracy (the share of
    examples whose whole label set is right) instead of accuracy, so that it is never read as per-label accuracy.
    `threshold`: multi-label, a float or one per label (recorded as a list).

    `y_true`: (n,) label indices for single-label, (n, L) 0/1 for multi-label; `proba`: (n, L).
    `invalid`: optional (n,) mask of predictions that name no label (a generated answer that parses to nothing);
    they are scored as wrong. Single-label: an invalid row predicts a class of its own, so it is wrong for accuracy
    and micro F1 (which stay equal) and a miss of its true class; that pseudo-class is left out of the per-label,
    macro and weighted F1, so it adds no false positive to any real class (the argmax of its zero row would quietly
    predict label 0). Multi-label: an invalid row predicts no label, a miss of each true one, and has no top label
    for precision@1.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(y_true), len(labels)):
        raise ValueError(f"probabilities have shape {proba.shape}, expected {(len(y_true), len(labels))}")
    invalid = np.zeros(len(y_true), dtype=bool) if invalid is None else np.asarray(invalid, dtype=bool)
    if invalid.shape != (len(y_true),):
        raise ValueError(f"the invalid mask has shape {invalid.shape}, expected {(len(y_true),)}")
    if multi_label:
        y_pred = predict_labels(proba, True, threshold) * ~invalid[:, None]
    elif invalid.any():
        y_pred = np.where(invalid, len(labels), proba.argmax(axis=1))  # the pseudo-class `len(labels)`
    else:
        y_pred = proba.argmax(axis=1)
    label_ids = list(range(len(labels)))
    kw = {} if multi_label else {"labels": label_ids}
    micro_kw = {} if multi_label else {"labels": label_ids + [len(labels)]}  # invalid rows: wrong, as in accuracy
    out = {"n": int(len(y_true)),
           "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0, **micro_kw))}
    out["f1_macro"] = float(f1_score(y_true, y_pred, average="macro", zero_division=0, **kw))
    out["f1_weighted"] = float(f1_score(y_true, y_pred, average="weighted", zero_division=0, **kw))
    _, _, per_label, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0, **kw)
    out["f1_per_label"] = {name: float(v) for name, v in zip(labels, per_label)}
    out["support_per_label"] = {name: int(v) for name, v in zip(labels, support)}
    if multi_label:
        out["subset_accuracy"] = float(accuracy_score(y_true, y_pred))
        top1 = proba.argmax(axis=1)
        out["precision_at_1"] = float(np.mean((y_true[np.arange(len(y_true)), top1] == 1) & ~invalid))
        out["threshold"] = threshold_for_record(threshold)
    else:
        out["accuracy"] = float(accuracy_score(y_true, y_pred))
    return out
