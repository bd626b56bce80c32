"""Fit, predict and measure any classifier the same way: what every approach's notebook records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis.metrics import classification_metrics
from .record import Timer, peak_memory_mb


@dataclass
class Result:
    metrics: dict                          # on the test split, at the chosen threshold
    test_proba: np.ndarray
    costs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def fit_and_evaluate(clf, task, epochs: float = 1.0) -> Result:
    """`clf.fit(task)`, then `clf.predict_proba` on the test split; times, throughput, memory and parameters.

    Training throughput counts examples seen (train size x epochs) per second of `fit`; inference throughput
    counts test examples per second of `predict_proba`. A multi-label threshold tuned inside `fit` on validation
    is used for the headline metrics; the metrics at 0.5 are recorded beside them. A classifier whose outputs
    can name no label (generated answers) sets `invalid_mask` in `predict_proba`; those rows are scored as wrong.
    """
    timer = Timer()
    with timer("train"):
        clf.fit(task)
    with timer("predict"):
        proba = clf.predict_proba(task.test.texts)
    threshold = clf.threshold  # a float, or one per label (threshold: validation_per_label)
    invalid = getattr(clf, "invalid_mask", None)  # predictions that name no label (generated answers)
    metrics = classification_metrics(task.test.y, proba, task.labels, task.multi_label, threshold, invalid)
    extra = {}
    if task.multi_label:
        extra["metrics_at_0.5"] = classification_metrics(task.test.y, proba, task.labels, True, 0.5, invalid)
    trainable, total = clf.trainable_params, clf.total_params
    fit_stats = dict(getattr(clf, "fit_stats", None) or {})
    reused = fit_stats.pop("reused_train_seconds", None)
    train_seconds = timer.seconds["train"] if reused is None else reused
    costs = {
        "timings": {"train_seconds": train_seconds, "predict_seconds": timer.seconds["predict"],
                    # training reused from an earlier run (an instruction adapter): this run only loaded it
                    **({"adapter_load_seconds": timer.seconds["train"]} if reused is not None else {})},
        "throughput": {
            # None when nothing was trained (zero-shot): its 'training' time is loading the model
            "train_examples_per_second": (len(task.train) * epochs / max(train_seconds, 1e-9)
                                          if trainable != 0 else None),
            "inference_examples_per_second": len(task.test) / max(timer.seconds["predict"], 1e-9),
        },
        "memory": peak_memory_mb(),
        "parameters": {"trainable": trainable, "total": total,
                       "trainable_share": (trainable / total) if trainable and total else None},
    }
    # Approach-specific measurements of the prediction (e.g. the invalid-output rate of generated answers).
    extra.update(fit_stats)
    extra.update(getattr(clf, "prediction_stats", None) or {})
    history = getattr(clf, "log_history", None)
    if history:
        extra["loss_curve"] = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    return Result(metrics=metrics, test_proba=proba, costs=costs, extra=extra)
