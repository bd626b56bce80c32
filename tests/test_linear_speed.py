"""The fast linear baselines (issue 15): saga with warm starts on sparse features, a capped vocabulary, and the
same accuracy as the cold lbfgs fits they replace."""

import warnings

import numpy as np
import pytest
from scipy import sparse

from llmclf.approaches import tfidf
from llmclf.approaches.linear import fit_linear_on_validation, linear_estimator
from llmclf.approaches.tfidf import TfidfClassifier
from llmclf.config import BaselineConfig

C_VALUES = [0.01, 0.1, 1.0, 10.0, 100.0]


def cold_lbfgs_selection(X_train, y_train, X_val, y_val, X_test):
    """What the baseline did before: one cold lbfgs fit per C, the best validation accuracy kept."""
    from sklearn.linear_model import LogisticRegression

    best = None
    for C in C_VALUES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LogisticRegression(C=C, max_iter=2000).fit(X_train, y_train)
        acc = (model.predict(X_val) == y_val).mean()
        if best is None or acc > best[0]:
            best = (acc, C, model.predict(X_test))
    return best


def synthetic_sparse(n=300, features=2000, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = sparse.random(n, features, density=0.01, random_state=seed, format="csr", dtype=np.float64)
    signal = sparse.csr_matrix((np.ones(n), (np.arange(n), y * 10 + rng.integers(0, 10, n))), shape=(n, features))
    X = X + signal
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    return sparse.diags(1 / norms) @ X, y


def test_sparse_features_use_saga_and_dense_lbfgs():
    y = np.array([0, 1, 2])
    assert linear_estimator("logreg", 1.0, False, y, sparse=True).solver == "saga"
    assert linear_estimator("logreg", 1.0, False, y, sparse=False).solver == "lbfgs"


def test_warm_started_saga_agrees_with_cold_lbfgs(monkeypatch):
    from llmclf.approaches import linear

    monkeypatch.setattr(linear, "SAGA_FROM", 100)
    X, y = synthetic_sparse()
    tr, va, te = slice(0, 180), slice(180, 240), slice(240, 300)
    fast = fit_linear_on_validation(X[tr], y[tr], X[va], y[va], n_labels=4, multi_label=False, kind="logreg",
                                    c_values=C_VALUES, tune_threshold=False)
    acc_cold, _, pred_cold = cold_lbfgs_selection(X[tr], y[tr], X[va], y[va], X[te])
    assert fast.model.solver == "saga"
    pred_fast = fast.model.predict(X[te])
    assert (pred_fast == y[te]).mean() >= (pred_cold == y[te]).mean() - 0.02
    assert (pred_fast == pred_cold).mean() >= 0.9


def test_warm_starts_leave_every_candidate_intact():
    X, y = synthetic_sparse()
    sel = fit_linear_on_validation(X[:200], y[:200], X[200:], y[200:], n_labels=4, multi_label=False,
                                   kind="logreg", c_values=C_VALUES, tune_threshold=False)
    assert sel.model.C == sel.C  # the kept model is the one fitted at the chosen C, not the last one of the path
    assert [s["C"] for s in sel.scores] == C_VALUES


@pytest.mark.parametrize("multi_label", [False, True])
def test_tfidf_accuracy_is_unchanged_on_the_fixtures(tiny_task_factory, multi_label, monkeypatch):
    """The fast TF-IDF baseline against the former one (lbfgs, cold starts, every n-gram) on the tiny tasks."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from llmclf.approaches import linear
    from llmclf.approaches.decisions import predict_labels

    task = tiny_task_factory(multi_label)
    cfg = BaselineConfig(baseline="tfidf", multi_label=multi_label)
    fast = TfidfClassifier(cfg).fit(task)
    fast_pred = predict_labels(fast.predict_proba(task.test.texts), multi_label, fast.threshold)

    # the former: every n-gram, lbfgs from a cold start at every C
    monkeypatch.setattr(tfidf, "MIN_DF_FROM", 10**9)
    original = linear.linear_estimator
    monkeypatch.setattr(linear, "linear_estimator",
                        lambda kind, C, ml, y, seed=0, class_weight="none", sparse=False:
                        original(kind, C, ml, y, seed, class_weight, sparse=False))
    monkeypatch.setattr(linear, "WARM_START", False)
    old = TfidfClassifier(cfg).fit(task)
    old_pred = predict_labels(old.predict_proba(task.test.texts), multi_label, old.threshold)
    truth = task.test.label_indicator(task.n_labels) if multi_label else task.test.y
    assert (fast_pred == truth).mean() >= (old_pred == truth).mean() - 1e-9


def test_the_vocabulary_drops_single_document_ngrams_from_100_documents(monkeypatch):
    from llmclf.data.tasks import Split, Task

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]

    def split(n, offset):
        texts = [" ".join(rng.choice(words, 12)) + f" unique{offset + i}" for i in range(n)]
        return Split(texts=texts, y=np.arange(n) % 2, ids=[str(offset + i) for i in range(n)])

    task = Task(name="t", labels=["a", "b"], multi_label=False, train=split(120, 0), validation=split(20, 200),
                test=split(20, 400))
    clf = TfidfClassifier(BaselineConfig(baseline="tfidf", c_values=[1.0])).fit(task)
    assert clf.prediction_stats["linear_model"]["min_df"] == 2
    assert not any(t.startswith("unique") for t in clf.vectorizer.vocabulary_)
    monkeypatch.setattr(tfidf, "MAX_FEATURES", 50)
    clf = TfidfClassifier(BaselineConfig(baseline="tfidf", c_values=[1.0])).fit(task)
    assert clf.prediction_stats["linear_model"]["n_features"] == 50
