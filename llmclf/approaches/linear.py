"""The linear model that the `frozen` and `tfidf` baselines share.

The two linear baselines choose the inverse regularization C on the validation split, as the fine-tuned approaches
choose their threshold there: every C in the grid is fitted on train and scored on validation (F1 micro, ties to the
lower log loss, then to the smaller C), and the fit with the best score is kept, so the test split is never looked at.

Speed (issue 15): single-label logistic regression walks the grid from the smallest C up with warm starts (each fit
starts from the previous C's solution: a path, as glmnet computes one). On sparse features (TF-IDF: tens of
thousands of columns) from SAGA_FROM training examples the solver is saga with tol 1e-3, which fits them in seconds
where lbfgs took minutes; on dense features (frozen embeddings, a few hundred columns) lbfgs stays, being fast
there. On uspto-10k sections (6,667 training abstracts, the 7-value grid, a busy 2-core EPYC) the whole TF-IDF fit
took 569 s before (lbfgs, cold starts, every n-gram: 240k features) and 12 s after (61k features), test F1 micro
0.647 and 0.645; the grid alone on the same features took 92 s with lbfgs and warm starts, 19 s with saga.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# the linear model shared by 'frozen' and 'tfidf'

WARM_START = True  # each C starts from the previous C's fit (single-label logistic regression)
SAGA_FROM = 1000  # training examples from which sparse features are fitted with saga (below, lbfgs is quick)


def linear_estimator(kind: str, C: float, multi_label: bool, y_train: np.ndarray, seed: int = 0,
                     class_weight: str = "none", sparse: bool = False):
    """An unfitted scikit-learn classifier with predict_proba: logistic regression (multinomial for single-label)
    or a linear SVM calibrated by cross-validation; one-vs-rest binary models for multi-label. `class_weight`
    'balanced' is scikit-learn's (per one-vs-rest model for multi-label). `sparse`: the features are a sparse
    matrix (TF-IDF), fitted with saga (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    weight = "balanced" if class_weight == "balanced" else None
    if kind == "logreg":
        solver = dict(solver="saga", tol=1e-3, random_state=seed) if sparse else dict(solver="lbfgs")
        base = LogisticRegression(C=C, max_iter=2000, warm_start=True, class_weight=weight, **solver)
    elif kind == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        # Sigmoid calibration on internal folds; a class needs an example in every fold.
        base = CalibratedClassifierCV(LinearSVC(C=C, random_state=seed, class_weight=weight), method="sigmoid",
                                      cv=_calibration_folds(y_train, multi_label))
    else:
        raise ValueError(f"linear model must be 'logreg' or 'svm', got {kind!r}")
    return OneVsRestClassifier(base) if multi_label else base


def _calibration_folds(y: np.ndarray, multi_label: bool) -> int:
    if multi_label:
        columns = [c for c in y.T if 0 < c.sum() < len(c)]  # a constant column gets no model, so no folds
        counts = [min(int(c.sum()), int(len(c) - c.sum())) for c in columns] or [5]
    else:
        counts = np.bincount(y).tolist()
    folds = min(5, min(counts))
    if folds < 2:
        raise ValueError("linear_model='svm' calibrates on cross-validation folds and needs at least 2 training "
                         "examples of every label (and of its absence); use linear_model='logreg'")
    return folds


def predict_proba_linear(model, X, n_labels: int, multi_label: bool) -> np.ndarray:
    """(n, n_labels) float32 probabilities in the task's label order, whatever classes the model saw."""
    proba = np.asarray(model.predict_proba(X), dtype=np.float32)
    if multi_label:
        return proba
    out = np.zeros((proba.shape[0], n_labels), dtype=np.float32)
    out[:, model.classes_] = proba
    return out


def count_linear_parameters(model) -> int:
    """Coefficients and intercepts of every fitted linear model inside `model` (one-vs-rest models, calibration
    folds and their sigmoid scalings included)."""
    if hasattr(model, "estimators_"):  # OneVsRestClassifier
        return sum(count_linear_parameters(m) for m in model.estimators_)
    if hasattr(model, "calibrated_classifiers_"):
        return sum(count_linear_parameters(c.estimator) + 2 * len(c.calibrators)
                   for c in model.calibrated_classifiers_)
    if hasattr(model, "coef_"):
        return int(np.size(model.coef_) + np.size(model.intercept_))
    return 1  # one-vs-rest's constant predictor for a label that is always (or never) present


@dataclass
class LinearSelection:
    """What choosing C on validation found: the kept model, its C and threshold, and every candidate's scores."""

    model: object
    C: float
    threshold: object  # a float, or one per label
    scores: list[dict] = field(default_factory=list)  # one per C: C, validation f1_micro, log_loss, threshold
    c_values: list[float] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        """Said when the chosen C is at an end of a grid of several: a better C may lie beyond it."""
        grid = sorted(self.c_values)
        if len(grid) < 2 or self.C not in (grid[0], grid[-1]):
            return None
        side = "largest" if self.C == grid[-1] else "smallest"
        return (f"the chosen C = {self.C:g} is the {side} of c_values {grid}: the best C may lie beyond the grid; "
                f"extend c_values")

    def record(self) -> dict:
        from .decisions import threshold_for_record

        return {"C": self.C, "threshold": threshold_for_record(self.threshold), "c_at_grid_edge": self.warning,
                "validation": [{k: (threshold_for_record(v) if k == "threshold" else float(v)) for k, v in s.items()}
                               for s in self.scores]}

    def table(self):
        import pandas as pd

        frame = pd.DataFrame(self.scores).set_index("C")
        frame["chosen"] = frame.index == self.C
        return frame


def fit_linear_on_validation(X_train, y_train: np.ndarray, X_val, y_val: np.ndarray, *, n_labels: int,
                             multi_label: bool, kind: str, c_values: list[float], tune_threshold: bool = True,
                             seed: int = 0, threshold_rule=None, class_weight: str = "none") -> LinearSelection:
    """Fit one linear model per C on train, keep the best on validation (see the module docstring).
    `threshold_rule` (multi-label): 'validation', 'validation_per_label' or a number; when None, `tune_threshold`
    says 'validation' (True) or 0.5. A chosen C at an end of the grid is warned about (`LinearSelection.warning`)."""
    from scipy.sparse import issparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score, log_loss

    from .decisions import choose_threshold, predict_labels

    if threshold_rule is None:
        threshold_rule = "validation" if tune_threshold else 0.5
    from ..progress import track

    sparse = issparse(X_train) and X_train.shape[0] >= SAGA_FROM
    # one-vs-rest clones its estimator on every fit, so only single-label logistic regression can start warm
    warm = WARM_START and kind == "logreg" and not multi_label
    best, scores, model = None, [], None
    for C in track(sorted(c_values), "fit linear model (C grid)"):
        if warm and model is not None:
            model = copy.deepcopy(model)  # starts from the previous C's fit, which stays intact as a candidate
            model.set_params(C=C)
        else:
            model = linear_estimator(kind, C, multi_label, y_train, seed, class_weight, sparse=sparse)
        with warnings.catch_warnings():
            # a label absent from the training split gets a constant one-vs-rest model: expected on small data
            warnings.filterwarnings("ignore", message="Label not present in all training examples")
            # the largest C barely regularizes: saga stops at max_iter there, within its tolerance of the optimum
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            model.fit(X_train, y_train)
        proba = predict_proba_linear(model, X_val, n_labels, multi_label)
        threshold = choose_threshold(threshold_rule, y_val, proba) if multi_label else 0.5
        f1 = f1_score(y_val, predict_labels(proba, multi_label, threshold), average="micro", zero_division=0,
                      **({} if multi_label else {"labels": list(range(n_labels))}))
        if multi_label:
            clipped = np.clip(proba, 1e-7, 1 - 1e-7)
            loss = float(-np.mean(y_val * np.log(clipped) + (1 - y_val) * np.log(1 - clipped)))
        else:
            loss = float(log_loss(y_val, np.clip(proba, 1e-7, 1), labels=list(range(n_labels))))
        scores.append({"C": float(C), "f1_micro": float(f1), "log_loss": loss, "threshold": threshold})
        # strictly better only: ties keep the smaller C (the grid is ascending), the more regularized model
        if best is None or (f1, -loss) > (best[0], -best[1]):
            best = (f1, loss, C, threshold, model)
    selection = LinearSelection(model=best[4], C=float(best[2]), threshold=best[3], scores=scores,
                                c_values=[float(c) for c in c_values])
    if selection.warning:
        warnings.warn(selection.warning, stacklevel=2)
    return selection


def as_weight_matrix(model, n_labels: int, multi_label: bool, scaler=None) -> tuple[np.ndarray, np.ndarray] | None:
    """A fitted logistic-regression model (after an optional StandardScaler) as one weight matrix W (n_labels, d)
    and bias b (n_labels,) in label order, such that predict_proba_linear(model, X) equals softmax(X W' + b)
    (single-label) or sigmoid(X W' + b) (multi-label): what a reader needs to predict with numpy alone.

    A label the single-label model never saw gets bias -1e4 (probability 0); a one-vs-rest column that was constant
    in training gets ±1e4 (its constant). The scaler folds into W and b. None for a calibrated SVM (not linear in
    probability)."""
    def logistic(est) -> bool:
        return hasattr(est, "coef_") and type(est).__name__ == "LogisticRegression"

    estimators = list(getattr(model, "estimators_", [])) if multi_label else [model]
    if not estimators or not all(logistic(e) or hasattr(e, "y_") for e in estimators):
        return None
    d = next((e.coef_.shape[1] for e in estimators if logistic(e)), None)
    if d is None:
        return None
    W, b = np.zeros((n_labels, d), dtype=np.float64), np.zeros(n_labels, dtype=np.float64)
    if multi_label:
        for i, est in enumerate(estimators):
            if logistic(est):
                W[i], b[i] = est.coef_[0], est.intercept_[0]
            else:  # scikit-learn's _ConstantPredictor: the label was always (or never) present in training
                b[i] = 1e4 if float(np.ravel(est.y_)[0]) > 0.5 else -1e4
    else:
        classes = np.asarray(model.classes_)
        b[:] = -1e4
        if len(classes) == 2:  # binary logistic regression: p1 = sigmoid(z) = softmax([0, z])[1]
            b[classes[0]] = 0.0
            W[classes[1]], b[classes[1]] = model.coef_[0], model.intercept_[0]
        else:
            W[classes], b[classes] = model.coef_, model.intercept_
    if scaler is not None:
        mean = getattr(scaler, "mean_", None)
        scale = getattr(scaler, "scale_", None)
        if scale is not None:
            W = W / scale
        if mean is not None:
            b = b - W @ mean
    return W.astype(np.float32), b.astype(np.float32)
