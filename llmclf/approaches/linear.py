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

Multi-label: one binary logistic regression a label, each on its own warm-started C path (`fit_one_vs_rest`: the
grid walked once, every label's fit at a C starting from its own fit at the previous C), the labels spread over
`label_jobs()` threads (joblib), BLAS held to one thread. Sparse features are fitted with newton-cg, dense ones
with lbfgs, both at tol 1e-5 (`BINARY_TOL`): at scikit-learn's 1e-4 newton-cg stopped short at large C (uspto-10k
subclasses: validation F1 micro 0.515 at C = 100 against 0.519 converged). The result is the OneVsRestClassifier
its own fit would make (saved, loaded and exported as before). Before, OneVsRestClassifier cloned the estimator
for every label and C (no warm start), with saga at tol 1e-3 on one core. On uspto-10k subclasses (72 labels with
50 documents, 5,254 training abstracts, 49k features, the 7-value grid, a quiet 2-core Xeon; bench/linear_scale.py)
the TF-IDF fit took 173.2 s before and 11.8 s after, chosen C 100 both, validation F1 micro 0.5213 and 0.5194
(saga's large-C fits are far from converged: its probabilities differ from the optimum's by up to 0.4 at C = 100).
Frozen-embedding features (dense; measured on 384 LSA dimensions of the same abstracts): 75 s before, 11 s after,
probabilities within 0.001 of a tightly converged fit (before: 0.008). `linear_model: svm` (calibrated LinearSVC,
cold: liblinear has no warm start) gains the parallel labels only: 42 s before, 23 s after on 3 values of C,
the same probabilities.
"""

from __future__ import annotations

import copy
import os
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# the linear model shared by 'frozen' and 'tfidf'

WARM_START = True  # each C starts from the previous C's fit (logistic regression; multi-label: label by label)
SAGA_FROM = 1000  # training examples from which sparse single-label features are fitted with saga (below, lbfgs)
BINARY_TOL = 1e-5  # multi-label's binary fits (newton-cg, lbfgs): at scikit-learn's 1e-4 they stopped short
N_JOBS = None  # multi-label: labels fitted at once; None: label_jobs() decides (OMP_NUM_THREADS, else every core)
# joblib backend of the label fits: threads share the features; processes (loky) took longer than one core, the
# features and every label's model pickled to them on each C (uspto-10k subclasses, the grid: 22 s in 2 processes,
# 20 s in turn on one core, 15 s in 2 threads)
BACKEND = "threading"


def label_jobs() -> int:
    """How many labels a multi-label fit trains at once: `N_JOBS` when set; else OMP_NUM_THREADS when set (a study
    worker's share of the cores: `llmclf run --workers` sets it), else every core this process may use."""
    if N_JOBS is not None:
        return int(N_JOBS)
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"OMP_NUM_THREADS={value!r} is not a positive whole number: it sets how many labels "
                             f"a multi-label linear model fits at once")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def linear_estimator(kind: str, C: float, multi_label: bool, y_train: np.ndarray, seed: int = 0,
                     class_weight: str = "none", sparse: bool = False):
    """An unfitted scikit-learn classifier with predict_proba: logistic regression (multinomial for single-label)
    or a linear SVM calibrated by cross-validation; one-vs-rest binary models for multi-label (fitted label by
    label in parallel by `fit_one_vs_rest`). `class_weight` 'balanced' is scikit-learn's (per one-vs-rest model for
    multi-label). `sparse`: fit with the sparse-features solver (see the module docstring): saga for single-label,
    newton-cg for the binary models of multi-label; otherwise lbfgs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    weight = "balanced" if class_weight == "balanced" else None
    if kind == "logreg":
        if multi_label:  # one binary model a label, on a warm-started C path (see the module docstring)
            solver = dict(solver="newton-cg" if sparse else "lbfgs", tol=BINARY_TOL)
        elif sparse:
            solver = dict(solver="saga", tol=1e-3, random_state=seed)
        else:
            solver = dict(solver="lbfgs")
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


@contextmanager
def label_pool(n_labels: int):
    """A context holding the joblib pool that fits a multi-label model's labels (`label_jobs()` threads, each label
    on one core: BLAS is held to one thread meanwhile), or None to fit them one after the other (one job, or one
    label). Held around a whole C grid."""
    from joblib import Parallel
    from threadpoolctl import threadpool_limits

    jobs = min(label_jobs(), n_labels)
    with threadpool_limits(limits=1):  # a binary fit's products are small: BLAS threads only wait on each other
        if jobs < 2:
            yield None
            return
        with Parallel(n_jobs=jobs, backend=BACKEND) as parallel:
            yield parallel


def fit_one_vs_rest(template, X, Y: np.ndarray, warm_from=None, parallel=None):
    """`template` (an unfitted OneVsRestClassifier) fitted on X and the (n, n_labels) indicator Y, one binary model
    a label as OneVsRestClassifier.fit makes them (a constant column gets scikit-learn's constant predictor), but
    the labels spread over `parallel` (a joblib Parallel; None: in turn) and each label's logistic regression
    started from its model in `warm_from` (the previous C's fitted one-vs-rest model; left intact), so a C grid
    walked upwards is a path per label. The result is a fitted OneVsRestClassifier with the attributes its own fit
    sets (saved, loaded and exported as one)."""
    from joblib import delayed
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import LabelBinarizer

    # int64: scikit-learn 1.9's label_binarize casts the column indices to an integer y's dtype, so an int8
    # indicator (the tasks' multi-label y) of more than 128 labels came out with its columns permuted
    binarizer = LabelBinarizer(sparse_output=True)
    Y = np.asarray(Y).astype(np.int64)
    columns = [c.toarray().ravel() for c in binarizer.fit_transform(Y).tocsc().T]  # as OneVsRestClassifier.fit
    if Y.ndim != 2 or Y.shape[1] < 2 or not np.array_equal(binarizer.classes_, np.arange(Y.shape[1])):
        raise ValueError(f"one-vs-rest needs an (n, n_labels) 0/1 indicator of at least 2 labels; got shape "
                         f"{Y.shape} (classes {binarizer.classes_[:10]})")
    previous = list(warm_from.estimators_) if warm_from is not None else [None] * len(columns)
    if len(previous) != len(columns):
        raise ValueError(f"warm start from a model of {len(previous)} labels for {len(columns)} labels")
    base = template.estimator
    with warnings.catch_warnings():  # here, not in the threads: the filters are global, catch_warnings not safe
        # the largest C barely regularizes: a solver may stop at max_iter there, within tolerance of the optimum
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        if parallel is None:
            estimators = [_fit_label(base, prev, X, column) for prev, column in zip(previous, columns)]
        else:
            estimators = parallel(delayed(_fit_label)(base, prev, X, column)
                                  for prev, column in zip(previous, columns))
    model = clone(template)
    model.label_binarizer_, model.classes_, model.estimators_ = binarizer, binarizer.classes_, list(estimators)
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(model.estimators_[0], name):
            setattr(model, name, getattr(model.estimators_[0], name))
    return model


def _fit_label(base, previous, X, column: np.ndarray):
    """One label's binary model: a copy of `previous` (its fit at the previous C) refitted with `base`'s
    parameters (warm start), or a clone of `base` fitted from scratch."""
    from sklearn.base import clone
    from sklearn.multiclass import _ConstantPredictor

    unique = np.unique(column)
    if len(unique) == 1:  # what OneVsRestClassifier does with a label always (or never) present
        return _ConstantPredictor().fit(X, unique)
    if previous is not None and hasattr(previous, "coef_"):
        estimator = copy.deepcopy(previous)  # starts from the previous C's solution, which stays a candidate
        estimator.set_params(**base.get_params(deep=False))
    else:
        estimator = clone(base)
    return estimator.fit(X, column)


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

    # single-label sparse features: saga from SAGA_FROM examples; multi-label sparse ones: newton-cg, label by label
    sparse = issparse(X_train) and (multi_label or X_train.shape[0] >= SAGA_FROM)
    warm = WARM_START and kind == "logreg"
    best, scores, model = None, [], None
    with label_pool(y_train.shape[1]) if multi_label else nullcontext(None) as pool:
        for C in track(sorted(c_values), "fit linear model (C grid)"):
            if multi_label:  # every label's binary model, in parallel, each from its own fit at the previous C
                template = linear_estimator(kind, C, multi_label, y_train, seed, class_weight, sparse=sparse)
                model = fit_one_vs_rest(template, X_train, y_train, warm_from=model if warm else None,
                                        parallel=pool)
            else:
                if warm and model is not None:
                    model = copy.deepcopy(model)  # starts from the previous C's fit, which stays intact
                    model.set_params(C=C)
                else:
                    model = linear_estimator(kind, C, multi_label, y_train, seed, class_weight, sparse=sparse)
                with warnings.catch_warnings():
                    # the largest C barely regularizes: saga stops at max_iter there, within tolerance of the optimum
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
