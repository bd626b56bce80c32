"""Fit, predict and measure any classifier the same way: what every approach's notebook records."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis.metrics import classification_metrics
from .record import Timer, peak_memory_mb

WARM_UP_BATCH = 16  # texts predicted once, untimed, before inference is timed (CUDA kernels, caches, lazy loading)


@dataclass
class Result:
    metrics: dict                          # on the test split, at the chosen threshold
    test_proba: np.ndarray
    costs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    val_proba: np.ndarray | None = None    # on the validation split: for calibration (temperature / Platt) and floors
    test_invalid: np.ndarray | None = None  # (n,) bool: test outputs that named no label (None: the approach has none)
    val_invalid: np.ndarray | None = None


def fit_and_evaluate(clf, task, epochs: float = 1.0) -> Result:
    """`clf.fit(task)`, a validation pass, then `clf.predict_proba` on the test split; times, throughput, memory,
    parameters and the input budget.

    Timings are kept apart (approaches.contract, `phase_seconds`): `load_seconds` (reading the model),
    `train_seconds` (training alone: the fit's time less loading and less any validation pass inside the fit),
    `validation_seconds` (predicting the validation split: the threshold search's pass, or one made here when the
    fit made none; its probabilities are recorded for calibration), `predict_seconds` (the test split, timed after
    one untimed warm-up batch). Training throughput counts examples seen (train size x epochs) per second of
    training; inference throughput counts test examples per second of `predict_proba`. A multi-label threshold
    tuned inside `fit` on validation is used for the headline metrics; the metrics at 0.5 are recorded beside
    them. A classifier whose outputs can name no label (generated answers) sets `invalid_mask` in
    `predict_proba`; those rows are scored as wrong.
    """
    timer = Timer()
    with timer("fit"):
        clf.fit(task)
    in_fit = dict(getattr(clf, "phase_seconds", None) or {})  # loading and validation inside the fit
    val_proba = getattr(clf, "validation_proba", None)  # kept by a fit that already predicted validation
    if val_proba is None:
        with timer("validation"):
            val_proba = clf.predict_proba(task.validation.texts)
    val_invalid = _mask(clf, len(task.validation))  # the last prediction was of validation, in the fit or here
    validation_seconds = in_fit.get("validation", 0.0) + timer.seconds.get("validation", 0.0)
    _warm_up(clf, task.test.texts)
    with timer("predict"):
        proba = clf.predict_proba(task.test.texts)
    threshold = _threshold(clf.threshold)  # a float, or one per label (threshold: validation_per_label)
    invalid = _mask(clf, len(task.test))  # predictions that name no label (generated answers)
    metrics = classification_metrics(task.test.y, proba, task.labels, task.multi_label, threshold, invalid)
    extra = {}
    if task.multi_label:
        extra["metrics_at_0.5"] = classification_metrics(task.test.y, proba, task.labels, True, 0.5, invalid)
    trainable, total = clf.trainable_params, clf.total_params
    fit_stats = dict(getattr(clf, "fit_stats", None) or {})
    reused = fit_stats.pop("reused_train_seconds", None)
    load_seconds = dict(getattr(clf, "phase_seconds", None) or {}).get("load", 0.0)  # the warm-up may load too
    # a learning-rate search (approaches.tuning) reports the other values' cost as `tuning`, apart from training
    trained = max(timer.seconds["fit"] - in_fit.get("load", 0.0) - in_fit.get("validation", 0.0)
                  - in_fit.get("tuning", 0.0), 0.0)
    if trainable == 0:  # nothing trained (zero-shot): the fit only loaded the model
        train_seconds = 0.0
    else:
        train_seconds = trained if reused is None else reused
    costs = {
        "timings": {"load_seconds": load_seconds, "train_seconds": train_seconds,
                    "validation_seconds": validation_seconds, "predict_seconds": timer.seconds["predict"],
                    "fit_seconds": timer.seconds["fit"], "predict_warm_up": True,
                    **({"tuning_seconds": in_fit["tuning"]} if "tuning" in in_fit else {}),
                    # training reused from an earlier run (an instruction adapter): this run only loaded it
                    **({"adapter_load_seconds": trained} if reused is not None else {})},
        "throughput": {
            # None when nothing was trained (zero-shot)
            "train_examples_per_second": (len(task.train) * epochs / max(train_seconds, 1e-9)
                                          if trainable != 0 else None),
            "inference_examples_per_second": len(task.test) / max(timer.seconds["predict"], 1e-9),
        },
        "memory": peak_memory_mb(),
        "parameters": {"trainable": trainable, "total": total,
                       "trainable_share": (trainable / total) if trainable and total else None},
        "input_budget": input_budget(clf, task),
    }
    # Approach-specific measurements of the prediction (e.g. the invalid-output rate of generated answers).
    extra.update(fit_stats)
    extra.update(getattr(clf, "prediction_stats", None) or {})
    history = getattr(clf, "log_history", None)
    if history:
        extra["loss_curve"] = [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h]
    return Result(metrics=metrics, test_proba=proba, costs=costs, extra=extra,
                  val_proba=None if val_proba is None else np.asarray(val_proba), test_invalid=invalid,
                  val_invalid=val_invalid)


def _mask(clf, n: int) -> np.ndarray | None:
    """A copy of the classifier's `invalid_mask` of its last prediction of `n` texts (None when it keeps none)."""
    mask = getattr(clf, "invalid_mask", None)
    if mask is None or len(mask) != n:
        return None
    return np.array(mask, dtype=bool)


def input_budget(clf, task) -> dict:
    """What each example could contribute: `max_length` (tokens the model reads, None when unbounded), the text
    tokens left for the text itself (after special tokens, or after the prompt for instruction tuning), and the
    share of test and training texts cut to fit. From the classifier's `input_budget(texts)` when it has one."""
    measure = getattr(clf, "input_budget", None)
    if not callable(measure):
        return {"max_length": None, "text_tokens": None, "truncated_share": None}
    out = dict(measure(task.test.texts))
    out["truncated_share_train"] = measure(task.train.texts).get("truncated_share")
    return out


def _warm_up(clf, texts):
    """One untimed batch before timing inference; `warm_up(texts)` when the classifier has its own."""
    batch = list(texts[:WARM_UP_BATCH])
    if not batch:
        return
    hook = getattr(clf, "warm_up", None)
    hook(batch) if callable(hook) else clf.predict_proba(batch)


def _threshold(value):
    """A float, or one threshold per label (a list)."""
    if np.ndim(value) == 0:
        return float(value)
    return np.asarray(value, dtype=float)
