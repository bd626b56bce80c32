"""Named checks of the classifier contract (approaches.contract), as scikit-learn's `utils/estimator_checks`.

Each check takes a `Case`: an approach's maker (a function of `multi_label` returning an unfitted classifier), a
tiny task, a folder to save into and the tolerance of the run's precision; the case fits the classifier once and
the checks share it (a check that needs another fit makes its own). `parametrize_with_checks(names)` turns every
(approach, check) into one pytest id, so a failure names the approach and the property:

    @parametrize_with_checks(["embedding_head", "encoder"])
    def test_contract(approach, check): check(case_for(approach))

Any approach added to the library is checked by listing its maker with the others (tests/test_contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .contract import Classifier


@dataclass
class Case:
    """One approach on one task: fitted on first use, shared by the checks."""

    make: Callable[[bool], object]
    task: object
    folder: Path
    atol: float = 1e-5              # for probabilities computed in another batch shape (the run's precision)
    _clf: object = field(default=None, repr=False)
    _proba: np.ndarray | None = field(default=None, repr=False)
    _fit_returned: object = field(default=None, repr=False)

    @property
    def clf(self):
        if self._clf is None:  # kept only once fitted: a fit that raised is raised again by every check
            clf = self.make(self.task.multi_label)
            self._fit_returned = clf.fit(self.task)
            self._clf = clf
        return self._clf

    @property
    def proba(self) -> np.ndarray:
        if self._proba is None:
            self._proba = np.asarray(self.clf.predict_proba(self.task.test.texts))
        return self._proba


def check_fit_returns_self(case: Case):
    clf = case.clf
    assert case._fit_returned is clf, f"{type(clf).__name__}.fit must return self"


def check_contract_attributes(case: Case):
    clf = case.clf
    assert isinstance(clf, Classifier), "missing an attribute or method of approaches.contract.Classifier"
    assert list(clf.labels) == list(case.task.labels) and clf.multi_label == case.task.multi_label
    assert clf.trainable_params is None or clf.trainable_params >= 0
    assert clf.total_params is None or clf.total_params >= (clf.trainable_params or 0)


def check_proba_shape_and_range(case: Case):
    proba = case.proba
    assert proba.shape == (len(case.task.test), case.task.n_labels), proba.shape
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1 + 1e-6).all()


def check_proba_rows_sum(case: Case):
    """Single-label rows are a distribution; multi-label columns are independent (nothing to sum)."""
    if not case.task.multi_label:
        np.testing.assert_allclose(case.proba.sum(axis=1), 1.0, atol=1e-4)


def check_thresholds_respected(case: Case):
    """A multi-label threshold (one, or one per label) lies in (0, 1), and the decisions the record scores are
    `proba >= threshold`; single-label decides by argmax whatever the threshold."""
    clf, proba = case.clf, case.proba
    if not case.task.multi_label:
        return
    threshold = np.asarray(clf.threshold, dtype=float)
    assert threshold.shape in ((), (case.task.n_labels,)), threshold.shape
    assert ((0 < threshold) & (threshold < 1)).all(), threshold
    from .decisions import predict_labels

    np.testing.assert_array_equal(predict_labels(proba, True, clf.threshold), (proba >= threshold).astype(np.int8))


def check_validation_probabilities(case: Case):
    """What the run records for calibration and for choices on validation: when the fit kept validation
    probabilities, they are the classifier's own on the validation split."""
    clf = case.clf
    kept = getattr(clf, "validation_proba", None)
    if kept is None:
        return
    kept = np.asarray(kept)
    assert kept.shape == (len(case.task.validation), case.task.n_labels)
    np.testing.assert_allclose(clf.predict_proba(case.task.validation.texts), kept, atol=max(case.atol, 1e-4))


def check_order_invariance(case: Case):
    """The order of the texts changes nothing (batches are sorted by length inside)."""
    texts = case.task.test.texts
    order = np.arange(len(texts))[::-1]
    np.testing.assert_allclose(case.clf.predict_proba([texts[i] for i in order]), case.proba[order], atol=case.atol)


def check_reload_equal(case: Case):
    """Saved and loaded back (by the folder's own metadata), the same probabilities (the same computation:
    float32's bound)."""
    from .persistence import load_classifier

    folder = case.folder / "saved"
    case.clf.save(str(folder))
    loaded = load_classifier(str(folder))  # as `llmclf predict` loads it: by the approach the folder names
    np.testing.assert_allclose(loaded.predict_proba(case.task.test.texts), case.proba, atol=1e-5)


def check_refit_same_seed(case: Case):
    """The same seed, the same model."""
    again = case.make(case.task.multi_label).fit(case.task).predict_proba(case.task.test.texts)
    np.testing.assert_allclose(again, case.proba, atol=1e-4)


CHECKS = (check_fit_returns_self, check_contract_attributes, check_proba_shape_and_range, check_proba_rows_sum,
          check_thresholds_respected, check_validation_probabilities, check_order_invariance, check_reload_equal,
          check_refit_same_seed)


def yield_checks():
    """Every named check, in the order a failure is most telling first."""
    yield from CHECKS


def check_classifier(case: Case) -> np.ndarray:
    """Every check on one case (stops at the first failure); the fitted probabilities."""
    for check in yield_checks():
        check(case)
    return case.proba


def parametrize_with_checks(approaches):
    """A pytest parametrization over (approach, check), one id each: `<approach>-<check name>`."""
    import pytest

    pairs = [(a, c) for a in approaches for c in yield_checks()]
    return pytest.mark.parametrize("approach, check", pairs,
                                   ids=[f"{a}-{c.__name__.removeprefix('check_')}" for a, c in pairs])
