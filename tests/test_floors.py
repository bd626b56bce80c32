import numpy as np
import pytest
from sklearn.metrics import f1_score

from llmclf.analysis.floors import (choose_prior_threshold, floors, label_prior, majority_class,
                                    most_frequent_label_set)


def test_majority_class_breaks_ties_to_the_lowest_index():
    proba = majority_class(np.array([2, 2, 1, 0, 1]), n_test=3, n_labels=4)  # 1 and 2 tie
    assert proba.tolist() == [[0, 1, 0, 0]] * 3
    assert majority_class(np.array([3, 3, 0]), 2, 4).argmax(axis=1).tolist() == [3, 3]


# label frequencies in training: 0.75, 0.5, 0.25, 0.0
Y_TRAIN = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]])


def test_label_prior_rows_are_training_frequencies():
    assert label_prior(Y_TRAIN, 2).tolist() == [[0.75, 0.5, 0.25, 0.0]] * 2


def test_prior_threshold_maximizes_validation_micro_f1():
    # validation: label 0 always, label 1 in half the rows, label 2 never.
    y_val = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    # thresholds 0.75 -> {0}: F1 = 2*2/(2*2+0+1) = 0.8; 0.5 -> {0,1}: 2*3/(6+1+0) = 0.857; 0.25 -> {0,1,2}: 6/9
    assert choose_prior_threshold(Y_TRAIN, y_val) == 0.5
    # only label 0 on validation: {0} is perfect
    assert choose_prior_threshold(Y_TRAIN, np.array([[1, 0, 0, 0]] * 3)) == 0.75
    # a tie between 0.75 and 0.5 (both F1 2/3 here) keeps the higher threshold
    y_tie = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    pred = lambda t: np.tile(np.array([0.75, 0.5, 0.25, 0.0]) >= t, (3, 1)).astype(int)  # noqa: E731
    assert f1_score(y_tie, pred(0.75), average="micro") == f1_score(y_tie, pred(0.5), average="micro")
    assert choose_prior_threshold(Y_TRAIN, y_tie) == 0.75


def test_most_frequent_label_set_breaks_ties_by_sorted_order():
    y = np.array([[0, 1, 1], [1, 0, 0], [0, 1, 1], [1, 0, 0], [1, 1, 1]])  # {1,2} and {0} twice each
    assert most_frequent_label_set(y, 2).tolist() == [[0, 1, 1]] * 2  # (0,1,1) sorts before (1,0,0)
    assert most_frequent_label_set(np.array([[1, 0], [1, 0], [0, 0]]), 1).tolist() == [[1, 0]]


def test_floors_single_and_multi_label():
    single = floors(np.array([1, 1, 0]), np.array([0, 1]), n_test=4, multi_label=False, n_labels=3)
    assert list(single) == ["majority class"]
    proba, threshold = single["majority class"]
    assert proba.shape == (4, 3) and proba.argmax(1).tolist() == [1] * 4 and threshold == 0.5
    multi = floors(Y_TRAIN, np.array([[1, 1, 0, 0], [1, 0, 0, 0]]), n_test=5, multi_label=True, n_labels=4)
    assert list(multi) == ["label prior", "most frequent label set"]
    proba, threshold = multi["label prior"]
    assert proba.shape == (5, 4) and threshold == 0.5
    assert ((proba >= threshold).astype(int) == [1, 1, 0, 0]).all()
    proba, threshold = multi["most frequent label set"]
    assert threshold == 0.5 and proba.shape == (5, 4)
    # scored like any configuration: predict at the threshold, then F1
    y_test = np.array([[1, 1, 0, 0]] * 5)
    assert f1_score(y_test, (proba >= threshold).astype(int), average="micro", zero_division=0) == pytest.approx(
        f1_score(y_test, np.tile(most_frequent_label_set(Y_TRAIN, 1), (5, 1)).astype(int), average="micro"))
