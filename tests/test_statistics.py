import time

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from llmclf.analysis.statistics import (BOOTSTRAP, COLUMNS, MCNEMAR, bootstrap_ci, bootstrap_indices,
                                        compare_configurations, holm, majority_correct, mcnemar_exact,
                                        paired_bootstrap_difference, predictions, resampled_scores, score)


def noisy_copy(y, accuracy, n_labels, rng):
    """Predictions that keep each true label with probability `accuracy`, else guess uniformly."""
    return np.where(rng.random(len(y)) < accuracy, y, rng.integers(0, n_labels, len(y)))


def test_predictions_single_and_multi():
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.6]])
    assert predictions(proba, False).tolist() == [1, 2]
    assert predictions(proba, True, 0.5).tolist() == [[0, 1, 0], [1, 0, 1]]
    assert predictions(proba, True, np.array([0.05, 0.8, 0.7])).tolist() == [[1, 0, 0], [1, 0, 0]]


def test_score_equals_sklearn_and_micro_equals_accuracy():
    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 4, 50), rng.integers(0, 3, 50)  # label 3 is never predicted
    assert score(y, pred, "f1_micro", False, 5) == pytest.approx(accuracy_score(y, pred))
    assert score(y, pred, "f1_macro", False, 5) == pytest.approx(
        f1_score(y, pred, average="macro", labels=range(5), zero_division=0))  # label 4: absent, counted as 0
    with pytest.raises(ValueError):
        score(y, pred, "f1_weighted", False, 5)


@pytest.mark.parametrize("multi_label", [False, True])
def test_resampled_scores_equal_sklearn_on_every_resample(multi_label):
    rng = np.random.default_rng(2)
    n, n_labels = 40, 6
    if multi_label:
        y = (rng.random((n, n_labels)) < [0.5, 0.3, 0.1, 0.03, 0.0, 0.2]).astype(int)  # rare and absent labels
        pred = (rng.random((n, n_labels)) < [0.4, 0.3, 0.05, 0.0, 0.02, 0.2]).astype(int)
        reference = {}
    else:
        y = rng.choice(n_labels, n, p=[0.5, 0.3, 0.15, 0.04, 0.01, 0.0])
        pred = rng.choice(n_labels, n, p=[0.6, 0.2, 0.15, 0.05, 0.0, 0.0])
        reference = {"labels": list(range(n_labels))}
    indices = bootstrap_indices(n, 60, seed=3)
    for metric in ("f1_micro", "f1_macro", "accuracy"):
        fast = resampled_scores(y, pred, metric, multi_label, n_labels, indices)
        for r, idx in enumerate(indices):
            if metric == "accuracy":
                expected = accuracy_score(y[idx], pred[idx])
            else:
                expected = f1_score(y[idx], pred[idx], average=metric[3:], zero_division=0, **reference)
            assert fast[r] == pytest.approx(expected, abs=1e-12), (metric, r)
            assert score(y[idx], pred[idx], metric, multi_label, n_labels) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_ci_estimate_interval_and_determinism():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 200)
    seeds = [noisy_copy(y, 0.7, 3, rng) for _ in range(3)]
    out = bootstrap_ci(y, seeds, "f1_macro", False, 3, n_resamples=500, seed=7)
    assert out["estimate"] == pytest.approx(np.mean([score(y, p, "f1_macro", False, 3) for p in seeds]))
    assert out["low"] < out["estimate"] < out["high"] and out["n_resamples"] == 500
    assert out == bootstrap_ci(y, seeds, "f1_macro", False, 3, n_resamples=500, seed=7)
    assert bootstrap_ci(y, [y, y], "accuracy", False, 3, n_resamples=100) == {
        "estimate": 1.0, "low": 1.0, "high": 1.0, "n_resamples": 100}


def test_resampling_seeds_widens_the_interval():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    seeds = [noisy_copy(y, a, 2, rng) for a in (0.55, 0.75, 0.95)]  # seeds that disagree a lot
    fixed = bootstrap_ci(y, seeds, "accuracy", False, 2, n_resamples=1000)
    redrawn = bootstrap_ci(y, seeds, "accuracy", False, 2, n_resamples=1000, resample_seeds=True)
    assert redrawn["estimate"] == fixed["estimate"]
    assert redrawn["high"] - redrawn["low"] > 2 * (fixed["high"] - fixed["low"])


def test_paired_difference_of_identical_predictions_is_exactly_zero():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 100)
    seeds = [noisy_copy(y, 0.6, 3, rng) for _ in range(2)]
    out = paired_bootstrap_difference(y, seeds, seeds, "f1_macro", False, 3, n_resamples=300)
    assert out == {"difference": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}


def test_paired_difference_always_right_against_always_wrong_is_one():
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    out = paired_bootstrap_difference(y, [y], [(y + 1) % 3], "accuracy", False, 3, n_resamples=999)
    assert out == {"difference": 1.0, "low": 1.0, "high": 1.0, "p_value": pytest.approx(1 / 1000)}


def test_paired_difference_matches_the_enumerated_bootstrap_of_two_examples():
    # A is right on both examples, B only on the first: the resampled accuracy difference is the share of draws of
    # the second example, 0 / 0.5 / 1 with probabilities 1/4, 1/2, 1/4. So the 95% interval is [0, 1], the mean 1/2,
    # and the two-sided p-value 2 * P(difference <= 0) = 1/2.
    y, a, b = np.array([0, 1]), np.array([0, 1]), np.array([0, 0])
    out = paired_bootstrap_difference(y, [a], [b], "accuracy", False, 2, n_resamples=20000, seed=1)
    assert out["difference"] == 0.5 and (out["low"], out["high"]) == (0.0, 1.0)
    assert out["p_value"] == pytest.approx(0.5, abs=0.03)
    dist = (resampled_scores(y, a, "accuracy", False, 2, bootstrap_indices(2, 20000, 1))
            - resampled_scores(y, b, "accuracy", False, 2, bootstrap_indices(2, 20000, 1)))
    shares = [np.mean(dist == v) for v in (0.0, 0.5, 1.0)]
    assert shares == pytest.approx([0.25, 0.5, 0.25], abs=0.02)


def test_paired_difference_at_large_n_covers_the_true_difference():
    rng = np.random.default_rng(8)
    n = 5000
    y = rng.integers(0, 2, n)
    u = rng.random(n)  # shared difficulty: B is right wherever A is, minus a true 5 points
    a, b = np.where(u < 0.80, y, 1 - y), np.where(u < 0.75, y, 1 - y)
    out = paired_bootstrap_difference(y, [a], [b], "accuracy", False, 2)
    assert out["low"] < 0.05 < out["high"] and out["low"] > 0 and out["p_value"] < 0.01


def test_paired_interval_coverage_is_near_nominal():
    # Repeated test sets from one population where A beats B by 0.05 in accuracy: the 95% interval should hold the
    # truth about 95% of the time (binomial sd of the share over 150 draws: about 0.018).
    rng = np.random.default_rng(9)
    covered = []
    for rep in range(150):
        y = rng.integers(0, 2, 250)
        u, v = rng.random(250), rng.random(250)
        a = np.where(u < 0.75, y, 1 - y)
        b = np.where(np.where(v < 0.5, u, rng.random(250)) < 0.70, y, 1 - y)  # correlated with A, accuracy 0.70
        out = paired_bootstrap_difference(y, [a], [b], "accuracy", False, 2, n_resamples=500, seed=rep)
        covered.append(out["low"] <= 0.05 <= out["high"])
    assert 0.89 <= np.mean(covered) <= 0.99


def test_mcnemar_against_statsmodels_and_binomial():
    # both right 30, only A right 12, only B right 4, both wrong 10
    correct_a = np.array([1] * 30 + [1] * 12 + [0] * 4 + [0] * 10, dtype=bool)
    correct_b = np.array([1] * 30 + [0] * 12 + [1] * 4 + [0] * 10, dtype=bool)
    out = mcnemar_exact(correct_a, correct_b)
    reference = mcnemar([[30, 12], [4, 10]], exact=True)
    assert (out["b"], out["c"]) == (12, 4)
    assert out["statistic"] == reference.statistic == 4
    assert out["p_value"] == pytest.approx(reference.pvalue)
    assert out["p_value"] == pytest.approx(binomtest(4, 16, 0.5).pvalue)
    assert mcnemar_exact(correct_a, correct_a)["p_value"] == 1.0


def test_majority_correct_splits_ties_in_turn():
    y = np.array([0, 1, 2, 0])
    three = [np.array([0, 1, 0, 1]), np.array([0, 0, 2, 1]), np.array([1, 1, 2, 1])]  # right 2, 2, 2, 0 times
    assert majority_correct(three, y).tolist() == [True, True, True, False]
    two = [np.array([0, 1, 0, 0]), np.array([0, 0, 2, 0])]  # right 2, 1, 1, 2 times: two ties, one right
    assert majority_correct(two, y).tolist() == [True, True, False, True]
    multi_y = np.array([[1, 0], [1, 1]])
    assert majority_correct([np.array([[1, 0], [1, 0]])] * 3, multi_y).tolist() == [True, False]


def test_a_two_seed_vote_is_never_below_both_seeds():
    # (with more seeds a vote may leave the seeds' range either way: that is what voting does; with two it is the
    # mean of the two, to within half an example)
    rng, n_seeds = np.random.default_rng(13), 2
    for rep in range(50):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 3, n)
        seeds = [noisy_copy(y, rng.uniform(0.2, 0.9), 3, rng) for _ in range(n_seeds)]
        accuracy = [np.mean(p == y) for p in seeds]
        voted = majority_correct(seeds, y).mean()
        assert min(accuracy) <= voted <= max(accuracy), (rep, accuracy, voted)
        assert abs(voted - np.mean(accuracy)) <= 0.5 / n + 1e-12


def test_holm_is_nan_safe():
    out = holm([0.01, 0.04, np.nan, 0.03])
    assert np.isnan(out[2])
    assert out[[0, 1, 3]] == pytest.approx(multipletests([0.01, 0.04, 0.03], method="holm")[1])
    assert out[[0, 1, 3]] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([np.nan])).all() and len(holm([])) == 0


def single_label_study(seed=10, n=400, n_labels=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_labels, n)
    preds = {"weak": [noisy_copy(y, 0.40, n_labels, rng) for _ in range(3)],
             "strong": [noisy_copy(y, 0.85, n_labels, rng) for _ in range(3)]}
    twin = [p.copy() for p in preds["strong"]]
    twin[0][:3] = (twin[0][:3] + 1) % n_labels  # three changed predictions: far too few to tell apart
    preds["strong twin"] = twin
    return y, preds, n_labels


def test_compare_configurations_single_label():
    y, preds, n_labels = single_label_study()
    table = compare_configurations(y, preds, False, n_labels, n_resamples=1000, seed=3)
    assert list(table.columns) == COLUMNS
    assert set(table["configuration_a"]) == {"strong"}
    assert table["configuration_b"].tolist() == ["strong twin"] * 3 + ["weak"] * 3  # runner-up first
    assert table["test"].tolist() == [BOOTSTRAP, BOOTSTRAP, MCNEMAR] * 2
    assert table["metric"].tolist() == ["f1_micro", "f1_macro", "accuracy"] * 2
    twin, weak = table[table["configuration_b"] == "strong twin"], table[table["configuration_b"] == "weak"]
    assert set(twin["decision"]) == {"indistinguishable from the best (95% CI of the difference contains 0)"}
    assert set(weak["decision"]) == {"worse than the best"}
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    assert table["p_holm"].tolist() == pytest.approx(holm(table["p_value"]).tolist())
    # each bootstrap row is the paired bootstrap of the best against that configuration on the same resamples
    row = weak.iloc[1]
    direct = paired_bootstrap_difference(y, preds["strong"], preds["weak"], "f1_macro", False, n_labels,
                                         n_resamples=1000, seed=3)
    assert (row["difference"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (direct["difference"], direct["low"], direct["high"], direct["p_value"]))
    # the McNemar row is McNemar on majority-vote correctness; its interval excludes 0 iff p < 0.05
    mc = mcnemar_exact(majority_correct(preds["strong"], y), majority_correct(preds["weak"], y))
    assert weak.iloc[2]["p_value"] == mc["p_value"] and weak.iloc[2]["difference"] == (mc["b"] - mc["c"]) / len(y)
    for _, r in table[table["test"] == MCNEMAR].iterrows():
        assert (r["ci_low"] > 0) == (r["p_value"] < 0.05)
    assert table.equals(compare_configurations(y, preds, False, n_labels, n_resamples=1000, seed=3))


def test_compare_configurations_multi_label_has_no_mcnemar_rows():
    rng = np.random.default_rng(11)
    y = (rng.random((300, 5)) < 0.3).astype(int)
    flip = lambda rate: [np.where(rng.random(y.shape) < rate, 1 - y, y) for _ in range(2)]  # noqa: E731
    table = compare_configurations(y, {"noisy": flip(0.3), "clean": flip(0.05)}, True, 5, n_resamples=500)
    assert len(table) == 2 and set(table["test"]) == {BOOTSTRAP}
    assert table["configuration_a"].iloc[0] == "clean" and set(table["decision"]) == {"worse than the best"}
    assert compare_configurations(y, {"only": flip(0.1)}, True, 5).columns.tolist() == COLUMNS


def test_bootstrap_is_fast_enough():
    rng = np.random.default_rng(12)
    y = rng.integers(0, 10, 500)
    preds = {f"c{k}": [noisy_copy(y, 0.5 + 0.05 * k, 10, rng) for _ in range(3)] for k in range(4)}
    start = time.perf_counter()
    bootstrap_ci(y, preds["c0"], "f1_macro", False, 10, n_resamples=2000)
    assert time.perf_counter() - start < 2.0
    start = time.perf_counter()
    compare_configurations(y, preds, False, 10, n_resamples=2000)
    assert time.perf_counter() - start < 6.0  # 4 configurations x 3 seeds x 2 metrics, on a shared machine


def test_compare_configurations_can_say_better_on_a_secondary_metric():
    # "always 0" wins on micro F1 (= accuracy) but is far worse on macro F1 than a model that gets the rare classes
    y = np.array([0] * 800 + [1] * 100 + [2] * 100)
    always_zero = np.zeros_like(y)
    balanced = y.copy()
    balanced[:260] = 1  # wrong on 260 of class 0, right on every rare example: accuracy 0.74
    table = compare_configurations(y, {"balanced": [balanced], "always 0": [always_zero]}, False, 3, n_resamples=500)
    assert table["configuration_a"].iloc[0] == "always 0"
    macro = table[table["metric"] == "f1_macro"].iloc[0]
    assert macro["ci_high"] < 0 and macro["decision"] == "better than the best on this metric"
