"""Multi-label linear fits at scale: one binary model a label on a warm-started C path, labels fitted in parallel,
and the same choice of C and the same probabilities as a reference one-vs-rest fit (tightly converged, cold)."""

import warnings

import numpy as np
import pytest
from scipy import sparse

from llmclf.approaches import linear
from llmclf.approaches.decisions import choose_threshold
from llmclf.approaches.linear import (as_weight_matrix, fit_linear_on_validation, fit_one_vs_rest, label_jobs,
                                      linear_estimator, predict_proba_linear)

C_VALUES = [0.01, 0.1, 1.0, 10.0, 100.0]
# largest difference of a validation probability from the reference fit's: at the chosen C and every smaller one;
# above it (weaker regularization) the solvers stop within tolerance 1e-5 farther from the optimum (lbfgs: 5e-3)
TOLERANCE, TOLERANCE_ABOVE_CHOSEN = 2e-3, 1e-2


def synthetic_multilabel(n=400, features=1500, labels=6, seed=0, dense=False):
    """Documents with one to three labels; each label has ten words of its own, drawn with noise words, and 8%
    of the label entries flipped."""
    rng = np.random.default_rng(seed)
    Y = np.zeros((n, labels), dtype=np.int8)  # int8, as the tasks' multi-label y
    rows, cols = [], []
    for i in range(n):
        own = rng.choice(labels, size=rng.integers(1, 4), replace=False)
        Y[i, own] = 1
        for j in own:
            words = j * 10 + rng.integers(0, 10, 2)
            rows += [i] * len(words)
            cols += words.tolist()
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, features))
    X = X + sparse.random(n, features, density=0.02, random_state=seed, format="csr")
    flip = rng.random(Y.shape) < 0.08  # label noise: no C separates the labels perfectly
    Y[flip] = 1 - Y[flip]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    X = (sparse.diags(1 / norms) @ X).tocsr().astype(np.float32)
    if dense:
        X = np.asarray(X[:, : labels * 10 + 40].todense(), dtype=np.float64)
    return X, Y


def reference_selection(X_train, Y_train, X_val, Y_val):
    """The reference: scikit-learn's own OneVsRestClassifier, every label and C fitted cold and converged tightly
    (lbfgs, tol 1e-10), scored with the same rule (F1 micro at the validation threshold, ties to lower log loss)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier

    best, probas = None, {}
    for C in C_VALUES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = OneVsRestClassifier(LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10_000))
            model.fit(X_train, Y_train.astype(np.int64))
        proba = model.predict_proba(X_val)
        threshold = choose_threshold("validation", Y_val, proba)
        f1 = f1_score(Y_val, (proba >= threshold).astype(np.int8), average="micro", zero_division=0)
        clipped = np.clip(proba, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(Y_val * np.log(clipped) + (1 - Y_val) * np.log(1 - clipped)))
        probas[C] = proba
        if best is None or (f1, -loss) > (best[0], -best[1]):
            best = (f1, loss, C)
    return best[2], best[0], probas


@pytest.mark.parametrize("dense", [False, True], ids=["sparse-newton-cg", "dense-lbfgs"])
def test_the_path_picks_the_reference_C_and_its_probabilities(dense, monkeypatch):
    monkeypatch.setattr(linear, "N_JOBS", 2)
    X, Y = synthetic_multilabel(dense=dense)
    tr, va = slice(0, 300), slice(300, 400)
    sel = fit_linear_on_validation(X[tr], Y[tr], X[va], Y[va], n_labels=Y.shape[1], multi_label=True,
                                   kind="logreg", c_values=C_VALUES)
    ref_C, ref_f1, ref_probas = reference_selection(X[tr], Y[tr], X[va], Y[va])
    solvers = {e.solver for e in sel.model.estimators_}
    assert solvers == {"lbfgs" if dense else "newton-cg"}
    assert sel.C == ref_C
    chosen = next(s for s in sel.scores if s["C"] == sel.C)
    assert chosen["f1_micro"] == pytest.approx(ref_f1, abs=0.005)
    proba = predict_proba_linear(sel.model, X[va], Y.shape[1], True)
    np.testing.assert_allclose(proba, ref_probas[sel.C], atol=TOLERANCE)
    # every C of the warm path, not only the chosen one
    model = None
    for C in C_VALUES:
        template = linear_estimator("logreg", C, True, Y[tr], sparse=not dense)
        model = fit_one_vs_rest(template, X[tr], Y[tr], warm_from=model)
        np.testing.assert_allclose(predict_proba_linear(model, X[va], Y.shape[1], True), ref_probas[C],
                                   atol=TOLERANCE if C <= sel.C else TOLERANCE_ABOVE_CHOSEN, err_msg=f"C={C}")


def test_each_label_walks_its_C_path_from_the_previous_solution(monkeypatch):
    X, Y = synthetic_multilabel()
    iterations = {}
    for warm in (True, False):
        monkeypatch.setattr(linear, "WARM_START", warm)
        fits = []
        real = linear._fit_label

        def counting(base, previous, X_, column, real=real, fits=fits):
            fits.append((base.C, previous is not None))
            return real(base, previous, X_, column)

        monkeypatch.setattr(linear, "_fit_label", counting)
        sel = fit_linear_on_validation(X[:300], Y[:300], X[300:], Y[300:], n_labels=Y.shape[1], multi_label=True,
                                       kind="logreg", c_values=[1.0, 10.0, 100.0], threshold_rule=0.5)
        # every label once per C, started from its previous fit from the second C on (warm) or never (cold)
        assert sorted(fits) == sorted((C, warm and C > 1.0) for C in [1.0, 10.0, 100.0] for _ in range(6))
        iterations[warm] = sum(int(e.n_iter_[0]) for e in sel.model.estimators_)
        assert all(e.C == sel.C for e in sel.model.estimators_)  # the kept model is its C's, not the last C's
    assert iterations[True] < iterations[False]


def test_parallel_labels_give_the_sequential_result(monkeypatch):
    X, Y = synthetic_multilabel()
    probas = []
    for jobs in (1, 2):
        monkeypatch.setattr(linear, "N_JOBS", jobs)
        sel = fit_linear_on_validation(X[:300], Y[:300], X[300:], Y[300:], n_labels=Y.shape[1], multi_label=True,
                                       kind="logreg", c_values=C_VALUES)
        probas.append(predict_proba_linear(sel.model, X[300:], Y.shape[1], True))
    np.testing.assert_array_equal(probas[0], probas[1])
    with linear.label_pool(6) as pool:
        assert pool.n_jobs == 2
    with linear.label_pool(1) as pool:
        assert pool is None


def test_label_jobs_follow_omp_num_threads(monkeypatch):
    monkeypatch.setattr(linear, "N_JOBS", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert label_jobs() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        label_jobs()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert label_jobs() >= 1


def test_the_model_is_a_one_vs_rest_classifier_as_its_own_fit_makes_it(tmp_path):
    """Same attributes, estimators and probabilities as OneVsRestClassifier.fit (a label present in every training
    example included), so persistence and the weight-matrix export take it as before."""
    from llmclf.approaches.persistence import load_sklearn, save_sklearn

    X, Y = synthetic_multilabel(n=120)
    Y[:, 2] = 1  # always present: scikit-learn's constant predictor
    template = linear_estimator("logreg", 1.0, True, Y, sparse=True)
    ours = fit_one_vs_rest(template, X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = linear_estimator("logreg", 1.0, True, Y, sparse=True).fit(X, Y)
    assert set(vars(ours)) == set(vars(theirs))
    assert [type(e) for e in ours.estimators_] == [type(e) for e in theirs.estimators_]
    assert type(ours.estimators_[2]).__name__ == "_ConstantPredictor"
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-4)
    save_sklearn({"model": ours}, tmp_path, "m")
    loaded = load_sklearn(tmp_path, "m")["model"]
    np.testing.assert_array_equal(loaded.predict_proba(X), ours.predict_proba(X))
    W, b = as_weight_matrix(ours, Y.shape[1], True)
    np.testing.assert_allclose(1 / (1 + np.exp(-(X @ W.T + b))), ours.predict_proba(X), atol=1e-5)


def test_more_than_128_labels_keep_their_columns():
    """An int8 indicator of 130 labels: scikit-learn 1.9's LabelBinarizer permutes its columns (it casts the label
    indices to int8); each label's model must still learn its own column."""
    labels, n = 130, 260
    Y = np.zeros((n, labels), dtype=np.int8)
    Y[np.arange(n), np.arange(n) % labels] = 1
    X = sparse.csr_matrix(Y.astype(np.float32))  # one word a label
    sel = fit_linear_on_validation(X, Y, X, Y, n_labels=labels, multi_label=True, kind="logreg", c_values=[10.0],
                                   threshold_rule=0.5)
    proba = predict_proba_linear(sel.model, X, labels, True)
    assert (proba.argmax(axis=1) == np.arange(n) % labels).all()


def test_svm_labels_are_fitted_as_one_vs_rest_fits_them(monkeypatch):
    """linear_model 'svm': the calibrated LinearSVC of each label, in parallel, equal to OneVsRestClassifier.fit."""
    monkeypatch.setattr(linear, "N_JOBS", 2)
    X, Y = synthetic_multilabel(n=200)
    sel = fit_linear_on_validation(X[:150], Y[:150], X[150:], Y[150:], n_labels=Y.shape[1], multi_label=True,
                                   kind="svm", c_values=[0.1, 1.0])
    reference = linear_estimator("svm", sel.C, True, Y[:150]).fit(X[:150], Y[:150])
    np.testing.assert_allclose(predict_proba_linear(sel.model, X[150:], Y.shape[1], True),
                               reference.predict_proba(X[150:]), atol=1e-6)
