"""Are the probabilities honest? ECE, Brier, log loss, reliability bins, and post-hoc scaling fitted on validation.

Conventions: `y` is (n,) label indices (single-label) or an (n, L) 0/1 matrix (multi-label); `proba` is (n, L).
Single-label is judged on the top label (is the stated confidence of the argmax its hit rate?); multi-label on
each label as its own binary event (is p the frequency of the label?).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.linear_model import LogisticRegression

EPS = 1e-12  # probabilities are clipped to [EPS, 1 - EPS] before any log, so a confident miss costs a lot, not inf


def is_probabilistic(proba, atol: float = 1e-6) -> bool:
    """False when every probability is 0 or 1 (one-hot answers: constrained decoding, generated text, a floor):
    such outputs state no confidence, so their ECE, log loss and any scaling of them mean nothing."""
    proba = np.asarray(proba, dtype=float)
    return bool(proba.size) and not bool(np.all((np.abs(proba) <= atol) | (np.abs(proba - 1) <= atol)))


def ece(y, proba, multi_label: bool, n_bins: int = 15) -> float:
    """Expected calibration error: sum over equal-width bins of (bin share) * |mean confidence - hit rate|.

    Single-label: top-label ECE (confidence = max probability, hit = argmax is the true class). Multi-label: the
    mean over labels of each label's binary ECE (confidence = p of the label, hit = the label is present), so a
    rare label weighs as much as a common one.
    """
    proba = np.asarray(proba, dtype=float)
    if multi_label:
        y = np.asarray(y)
        return float(np.mean([_ece(proba[:, j], y[:, j], n_bins) for j in range(proba.shape[1])]))
    return _ece(*_top_label(y, proba), n_bins)


def brier(y, proba, multi_label: bool) -> float:
    """Single-label: mean over rows of the summed squared error against the one-hot truth (0 best, 2 worst).
    Multi-label: the mean squared error over all cells."""
    proba = np.asarray(proba, dtype=float)
    truth = _truth_matrix(y, multi_label, proba.shape[1])
    squared = (proba - truth) ** 2
    return float(squared.mean() if multi_label else squared.sum(axis=1).mean())


def log_loss(y, proba, multi_label: bool) -> float:
    """Mean negative log-likelihood of the truth (natural log), probabilities clipped to [EPS, 1 - EPS].

    Single-label: -log p(true class) per row (the same as sklearn.metrics.log_loss with all labels). Multi-label:
    binary cross-entropy averaged over all cells (sklearn's log_loss on the flattened cells).
    """
    proba = np.clip(np.asarray(proba, dtype=float), EPS, 1 - EPS)
    truth = _truth_matrix(y, multi_label, proba.shape[1])
    if multi_label:
        return float(-np.mean(truth * np.log(proba) + (1 - truth) * np.log1p(-proba)))
    return float(-np.mean(np.log(proba[truth.astype(bool)])))


def reliability(y, proba, multi_label: bool, n_bins: int = 15) -> pd.DataFrame:
    """One row per equal-width bin (empty ones too, with NaN means): the points of a reliability diagram.

    Single-label: top-label confidence vs hit rate. Multi-label: every (example, label) cell pooled, p vs presence.
    """
    proba = np.asarray(proba, dtype=float)
    if multi_label:
        confidence, hit = proba.ravel(), np.asarray(y).ravel()
    else:
        confidence, hit = _top_label(y, proba)
    conf_mean, hit_mean, count = _binned(confidence, hit, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "confidence": conf_mean,
                         "accuracy": hit_mean, "count": count})


class TemperatureScaler:
    """Single-label: one temperature T > 0 divides the log-probabilities before the softmax.

    Fitted on validation by minimizing the negative log-likelihood over log T (bounded to T in [0.05, 20]). It
    changes the confidence but never the argmax, so accuracy and F1 stay as they were.
    """

    method = "temperature"

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    def fit(self, y_val, proba_val) -> "TemperatureScaler":
        logp, y_val = _log(proba_val), np.asarray(y_val)

        def nll(log_t):
            return -log_softmax(logp / np.exp(log_t), axis=1)[np.arange(len(y_val)), y_val].mean()

        self.temperature = float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20)),
                                                        method="bounded").x))
        return self

    def transform(self, proba) -> np.ndarray:
        return softmax(_log(proba) / self.temperature, axis=1)

    def to_dict(self) -> dict:
        return {"method": self.method, "temperature": self.temperature}

    @classmethod
    def from_dict(cls, d: dict) -> "TemperatureScaler":
        return cls(d["temperature"])


class PlattScaler:
    """Multi-label: per label, p -> sigmoid(a * logit(p) + b), a logistic regression fitted on validation.

    A label whose validation column is constant (never or always present) gives nothing to fit, so it is left
    unscaled (a = 1, b = 0 is the identity) and listed in `unscaled`. The per-label decision thresholds were tuned on
    the raw probabilities; after scaling they would need tuning again, so scale for calibration, not for decisions.
    """

    method = "platt"

    def __init__(self, a=(), b=(), unscaled=()):
        self.a, self.b, self.unscaled = [float(v) for v in a], [float(v) for v in b], [int(j) for j in unscaled]

    def fit(self, y_val, proba_val) -> "PlattScaler":
        z, y_val = logit(_clip(proba_val)), np.asarray(y_val)
        self.a, self.b, self.unscaled = [], [], []
        for j in range(z.shape[1]):
            if y_val[:, j].min() == y_val[:, j].max():
                a, b = 1.0, 0.0
                self.unscaled.append(j)
            else:  # a huge C: plain maximum likelihood, as Platt intended, not a shrunk fit
                model = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, [j]], y_val[:, j])
                a, b = model.coef_[0, 0], model.intercept_[0]
            self.a.append(float(a))
            self.b.append(float(b))
        return self

    def transform(self, proba) -> np.ndarray:
        return expit(np.asarray(self.a) * logit(_clip(proba)) + np.asarray(self.b))

    def to_dict(self) -> dict:
        return {"method": self.method, "a": self.a, "b": self.b, "unscaled": self.unscaled}

    @classmethod
    def from_dict(cls, d: dict) -> "PlattScaler":
        return cls(d["a"], d["b"], d["unscaled"])


def scaler_from_dict(d: dict):
    """The scaler that `to_dict` described, by its method name."""
    return {"temperature": TemperatureScaler, "platt": PlattScaler}[d["method"]].from_dict(d)


def calibration_summary(y_test, proba_test, y_val, proba_val, multi_label: bool, n_bins: int = 15) -> dict:
    """ECE, Brier and log loss on test before and after a scaler fitted on validation (temperature for
    single-label, Platt per label for multi-label); `scaler` holds its method name and parameters (JSON-ready)."""
    scaler = (PlattScaler() if multi_label else TemperatureScaler()).fit(y_val, proba_val)
    scaled = scaler.transform(proba_test)
    out = {"method": scaler.method, "scaler": scaler.to_dict()}
    for when, p in (("before", proba_test), ("after", scaled)):
        out[f"ece_{when}"] = ece(y_test, p, multi_label, n_bins)
        out[f"brier_{when}"] = brier(y_test, p, multi_label)
        out[f"log_loss_{when}"] = log_loss(y_test, p, multi_label)
    return out


# ---- helpers -------------------------------------------------------------------------------------------------

def _clip(proba):
    return np.clip(np.asarray(proba, dtype=float), EPS, 1 - EPS)


def _log(proba):
    return np.log(np.clip(np.asarray(proba, dtype=float), EPS, None))


def _truth_matrix(y, multi_label, n_labels):
    y = np.asarray(y)
    return y.astype(float) if multi_label else np.eye(n_labels)[y]


def _top_label(y, proba):
    return proba.max(axis=1), (proba.argmax(axis=1) == np.asarray(y)).astype(float)


def _binned(confidence, hit, n_bins):
    """Per equal-width bin: mean confidence, mean hit, count. Bins are [k/B, (k+1)/B), the last one includes 1."""
    which = np.minimum((np.asarray(confidence) * n_bins).astype(int), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_mean = np.bincount(which, weights=confidence, minlength=n_bins) / count
        hit_mean = np.bincount(which, weights=np.asarray(hit, dtype=float), minlength=n_bins) / count
    return conf_mean, hit_mean, count


def _ece(confidence, hit, n_bins):
    conf_mean, hit_mean, count = _binned(confidence, hit, n_bins)
    full = count > 0
    return float(np.sum(count[full] / count.sum() * np.abs(conf_mean[full] - hit_mean[full])))
