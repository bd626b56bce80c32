"""Which configuration is best, said with honest uncertainty.

Every configuration is scored on the same test examples, usually with several training seeds. So the comparisons
here are paired: one set of bootstrap resamples of the test examples is shared by every configuration, and on each
resample the seeds' scores are averaged. The interval of a difference then reflects how much it would move with
another test set of the same size, for these trained models. By default the seeds themselves are held fixed, so the
interval is about these trained models; `resample_seeds=True` also redraws the seeds (with replacement) on every
resample, so that a new round of training would be covered too (crude with 3 seeds, but not zero).

Conventions: `y` is (n,) label indices (single-label) or an (n, L) 0/1 matrix (multi-label); a prediction has the
same shape; F1 follows sklearn with zero_division=0 over all L labels. A single-label prediction may be `L` itself
(INVALID: a generated answer that named no label, `predictions(..., invalid=)`), scored as
`analysis.metrics.classification_metrics` scores it: wrong for accuracy and micro F1, a miss of the true class and
no false positive of any real class for macro F1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

METRICS = ("f1_micro", "f1_macro", "accuracy")
BOOTSTRAP = "paired bootstrap"
MCNEMAR = "McNemar exact (seeds by majority vote)"
COLUMNS = ["configuration_a", "configuration_b", "metric", "difference", "ci_low", "ci_high", "p_value", "test",
           "p_holm", "decision"]


def predictions(proba, multi_label: bool, threshold=0.5, invalid=None) -> np.ndarray:
    """Single-label: the argmax index per row. Multi-label: 0/1 at `threshold` (a float, or one per label).

    `invalid`: (n,) bool, rows whose output named no label. Single-label: they predict the pseudo-class L (never
    the argmax of their zero row, which would quietly be label 0); multi-label: they predict no label."""
    proba = np.asarray(proba, dtype=float)
    bad = None if invalid is None else np.asarray(invalid, dtype=bool)
    if multi_label:
        pred = (proba >= np.asarray(threshold, dtype=float)).astype(np.int8)  # (L,) thresholds broadcast over rows
        return pred if bad is None else pred * ~bad[:, None]
    pred = proba.argmax(axis=1)
    return pred if bad is None else np.where(bad, proba.shape[1], pred)


def score(y, pred, metric: str, multi_label: bool, n_labels: int) -> float:
    """One metric on the full test set, by sklearn: the reference that `resampled_scores` must match.

    Single-label F1 is taken over all `n_labels` labels, so a label that neither occurs nor is predicted counts as 0
    in the macro average (sklearn's zero_division=0), whatever this particular sample happens to contain.
    """
    _check_metric(metric)
    if metric == "accuracy":  # for multi-label this is subset accuracy: every label of the row right
        return float(accuracy_score(y, pred))
    # micro F1 counts an invalid prediction (the pseudo-class n_labels) as wrong, as accuracy does; macro F1 leaves
    # the pseudo-class out, so it is a miss of the true class and no false positive (analysis.metrics)
    labels = {} if multi_label else {"labels": list(range(n_labels + (metric == "f1_micro")))}
    return float(f1_score(y, pred, average=metric[3:], zero_division=0, **labels))


def bootstrap_indices(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) row indices drawn with replacement: one bootstrap resample of the test set per row."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def resampled_scores(y, pred, metric: str, multi_label: bool, n_labels: int, indices) -> np.ndarray:
    """`score` on every resample in `indices` (R, m) at once; equals sklearn on `y[indices[r]], pred[indices[r]]`.

    Why not sklearn in a loop: 2,000 calls take seconds per configuration. Instead each resample becomes a row of
    draw counts per example, and per-label TP/FP/FN over the resample are one matrix product with the per-example
    TP/FP/FN indicators. Resamples are processed in chunks so memory stays small for large test sets.
    """
    _check_metric(metric)
    truth, guess = _indicators(y, multi_label, n_labels), _indicators(pred, multi_label, n_labels)
    if metric == "accuracy":
        parts = [np.all(truth == guess, axis=1)]  # one-hot rows are equal exactly when the class is right
    else:
        parts = [truth & guess, guess & ~truth, truth & ~guess]  # TP, FP, FN per example and label
    parts = [p.astype(float) for p in parts]
    indices = np.atleast_2d(indices)
    n, out = len(truth), np.empty(len(indices))
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, len(indices), chunk):
        idx = indices[start:start + chunk]
        rows = np.arange(len(idx))[:, None] * n
        weights = np.bincount((idx + rows).ravel(), minlength=len(idx) * n).reshape(len(idx), n).astype(float)
        counts = [weights @ p for p in parts]
        out[start:start + chunk] = _from_counts(counts, metric, idx.shape[1], n_labels)
    return out


def bootstrap_ci(y, preds_by_seed, metric: str, multi_label: bool, n_labels: int, n_resamples: int = 2000,
                 confidence: float = 0.95, seed: int = 0, resample_seeds: bool = False) -> dict:
    """Percentile bootstrap interval of the mean-over-seeds score.

    estimate: the mean over seeds on the full test set. low/high: percentiles of the mean-over-seeds score over
    resamples of the test examples (and of the seeds too, with `resample_seeds`).
    """
    indices = bootstrap_indices(len(y), n_resamples, seed)
    dist = _seed_mean_distribution(y, preds_by_seed, metric, multi_label, n_labels, indices,
                                   _seed_rng(seed, 1) if resample_seeds else None)
    low, high = _percentile_interval(dist, confidence)
    return {"estimate": _mean_score(y, preds_by_seed, metric, multi_label, n_labels), "low": low, "high": high,
            "n_resamples": int(n_resamples)}


def paired_bootstrap_difference(y, preds_a_by_seed, preds_b_by_seed, metric: str, multi_label: bool, n_labels: int,
                                n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                                resample_seeds: bool = False) -> dict:
    """Mean-over-seeds score of A minus B, with A and B scored on the SAME resamples (pairing removes the shared
    difficulty of the examples from the noise).

    p_value: two-sided, 2 * min(share of resampled differences <= 0, share >= 0), clipped to [1/(R+1), 1]: roughly
    the smallest level at which the percentile interval would exclude 0; the lower clip says that R resamples
    cannot show a p-value smaller than about 1/R.
    """
    indices = bootstrap_indices(len(y), n_resamples, seed)
    rng = [_seed_rng(seed, k) if resample_seeds else None for k in (1, 2)]
    dist_a = _seed_mean_distribution(y, preds_a_by_seed, metric, multi_label, n_labels, indices, rng[0])
    dist_b = _seed_mean_distribution(y, preds_b_by_seed, metric, multi_label, n_labels, indices, rng[1])
    difference = (_mean_score(y, preds_a_by_seed, metric, multi_label, n_labels)
                  - _mean_score(y, preds_b_by_seed, metric, multi_label, n_labels))
    return _difference_row(difference, dist_a - dist_b, confidence)


def mcnemar_exact(correct_a, correct_b) -> dict:
    """Exact McNemar test on per-example correctness: only the discordant examples carry information.

    b: A right and B wrong; c: A wrong and B right; statistic: min(b, c); p_value: the exact two-sided binomial
    test of b out of b + c at 1/2 (1.0 when there are no discordant examples).
    """
    a, b_ = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    table = [[np.sum(a & b_), np.sum(a & ~b_)], [np.sum(~a & b_), np.sum(~a & ~b_)]]
    result = mcnemar(table, exact=True)
    return {"b": int(table[0][1]), "c": int(table[1][0]), "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def majority_correct(preds_by_seed, y) -> np.ndarray:
    """(n,) bool: an example counts as correct when more than half of the seeds got it right.

    McNemar needs one right/wrong per example, so the seeds vote. A tie (e.g. 1 of 2 seeds right) is split
    deterministically: the tied examples, in test order, count right and wrong in turn (the first right). Counting
    every tie as wrong would put a 2-seed configuration below both of its seeds; this way the vote's accuracy is
    the seeds' mean accuracy to within half an example, never below the worst seed nor above the best.
    Multi-label: right means every label of the row right (subset accuracy).
    """
    y = np.asarray(y)
    right = np.array([_row_correct(y, np.asarray(p)) for p in preds_by_seed])
    votes, k = 2 * right.sum(axis=0), len(right)
    out = votes > k
    out[np.flatnonzero(votes == k)[::2]] = True
    return out


def resamples_for_holm(n_tests: int, n_resamples: int, alpha: float = 0.05) -> int:
    """Enough bootstrap resamples for a family of `n_tests` Holm-adjusted tests: a bootstrap p-value cannot go below
    1/(R+1), and Holm multiplies the smallest by n_tests, so with fewer than about n_tests/alpha resamples no
    difference, however large, could survive the adjustment. This keeps the floor's adjusted value at alpha/2 or
    below (and never lowers `n_resamples`)."""
    return max(int(n_resamples), int(np.ceil(2 * max(n_tests, 1) / alpha)))


def n_for_power(difference: float, sd: float, n: int, alpha: float = 0.05, power: float = 0.8,
                seed_sd: float = 0.0) -> int | None:
    """Test-set size at which a paired difference of this size would be detected with `power` by a two-sided test
    at level `alpha` (normal approximation). `sd`: the bootstrap SD of the difference over the n test examples with
    the seeds held fixed, which shrinks as 1/sqrt(n); `seed_sd`: the part that comes from the seeds (the SD with
    seeds redrawn, less the examples' part, in quadrature), which more test examples do not shrink. Solves
    seed_sd^2 + sd^2 n / n' = (|difference| / z)^2 with z = z_(1-alpha/2) + z_power. None when no difference was
    observed, when it has no spread, or when the seeds' spread alone is too large for any test set (then more
    seeds, not more test examples, are what would show it)."""
    from scipy.stats import norm

    if not (np.isfinite(difference) and np.isfinite(sd)) or difference == 0 or sd <= 0:
        return None
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    room = (abs(difference) / z) ** 2 - (seed_sd if np.isfinite(seed_sd) else 0.0) ** 2
    if room <= 0:
        return None
    return int(np.ceil(n * sd ** 2 / room))


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error over the given tests); NaNs stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def compare_configurations(y, preds: dict, multi_label: bool, n_labels: int, metrics=("f1_micro", "f1_macro"),
                           n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                           resample_seeds: bool = False, order=None) -> pd.DataFrame:
    """Every configuration against the best one, one row per (configuration, metric, test).

    `preds`: configuration name -> list of per-seed predictions on the same test examples. `order`: the
    configurations ranked as chosen elsewhere (analysis.verdict ranks them on validation), its first the best, the
    next the runner-up. Without it the best is the highest test mean-over-seeds of `metrics[0]` (ties: the first in
    `preds` order): a selection on the test set itself, for callers that have nothing else. Each row: difference = best minus other, a paired-bootstrap percentile
    interval and p-value; for single-label also an exact McNemar row on per-example correctness (seeds by majority
    vote), whose interval is the exact (Clopper-Pearson) one for the discordant split, scaled to an accuracy
    difference, so that it excludes 0 exactly when McNemar's p < 1 - confidence. p_holm adjusts over all rows.
    decision reads the interval: containing 0 -> indistinguishable from the best; above 0 -> worse than the best;
    below 0 (only possible on a metric other than the one that chose the best) -> better than the best on it.
    The decision uses the unadjusted interval; p_holm is there for a reader who wants family-wise control.
    """
    y = np.asarray(y)
    names = list(preds)
    means = {(k, m): _mean_score(y, preds[k], m, multi_label, n_labels) for k in names for m in metrics}
    if order is None:
        order = sorted(names, key=lambda k: -means[k, metrics[0]])  # a stable sort: ties keep the given order
    order = [k for k in order if k in preds]
    best = order[0]
    indices = bootstrap_indices(len(y), n_resamples, seed)
    dist = {(k, m): _seed_mean_distribution(y, preds[k], m, multi_label, n_labels, indices,
                                            configuration_seed_rng(seed, k) if resample_seeds else None)
            for k in names for m in metrics}
    rows = []
    for other in order[1:]:
        for m in metrics:
            row = _difference_row(means[best, m] - means[other, m], dist[best, m] - dist[other, m], confidence)
            rows.append({"configuration_a": best, "configuration_b": other, "metric": m,
                         "ci_low": row["low"], "ci_high": row["high"], "difference": row["difference"],
                         "p_value": row["p_value"], "test": BOOTSTRAP})
        if not multi_label:
            t = mcnemar_exact(majority_correct(preds[best], y), majority_correct(preds[other], y))
            low, high = _mcnemar_interval(t["b"], t["c"], len(y), confidence)
            rows.append({"configuration_a": best, "configuration_b": other, "metric": "accuracy",
                         "difference": (t["b"] - t["c"]) / len(y), "ci_low": low, "ci_high": high,
                         "p_value": t["p_value"], "test": MCNEMAR})
    table = pd.DataFrame(rows, columns=COLUMNS[:-2])
    table["p_holm"] = holm(table["p_value"].to_numpy())
    table["decision"] = [_decision(lo, hi, confidence) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    return table


# ---- helpers -------------------------------------------------------------------------------------------------

def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _indicators(labels, multi_label, n_labels):
    """(n, L) bool: the 0/1 matrix itself; single-label, (n, L + 1): the one-hot of the indices, the last column
    the invalid pseudo-class."""
    labels = np.asarray(labels)
    return labels.astype(bool) if multi_label else np.eye(n_labels + 1, dtype=bool)[labels]


def _from_counts(counts, metric, m, n_labels):
    """Scores from per-resample counts: accuracy from correct-row counts, F1 from TP/FP/FN with 0 for 0/0."""
    if metric == "accuracy":
        return counts[0] / m
    tp, fp, fn = counts
    if metric == "f1_micro":  # every column: an invalid prediction is the pseudo-class's false positive
        tp, fp, fn = tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    # macro: over the L real labels (absent ones count 0), never the pseudo-class
    return f1 if metric == "f1_micro" else f1[:, :n_labels].mean(axis=1)


def _mean_score(y, preds_by_seed, metric, multi_label, n_labels):
    return float(np.mean([score(y, p, metric, multi_label, n_labels) for p in preds_by_seed]))


def _seed_rng(seed, k):
    return np.random.default_rng([seed, k])  # a stream of its own per configuration, apart from the resamples


def configuration_seed_rng(seed: int, name: str) -> np.random.Generator:
    """The stream that redraws one configuration's seeds: fixed by its name (not by its position among the others),
    so that its interval and every difference it enters draw the same seeds, whatever else the report holds."""
    import zlib

    return np.random.default_rng([seed, 1 + zlib.crc32(str(name).encode())])


def _seed_mean_distribution(y, preds_by_seed, metric, multi_label, n_labels, indices, seed_rng=None):
    """(R,) mean-over-seeds score per resample; with `seed_rng`, the seeds are drawn with replacement per resample."""
    per_seed = np.array([resampled_scores(y, p, metric, multi_label, n_labels, indices) for p in preds_by_seed])
    if seed_rng is None:
        return per_seed.mean(axis=0)
    n_seeds, n_resamples = per_seed.shape
    drawn = seed_rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    return per_seed[drawn, np.arange(n_resamples)[:, None]].mean(axis=1)


def _percentile_interval(dist, confidence):
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(dist, [tail, 100 - tail])
    return float(low), float(high)


def _difference_row(difference, dist, confidence):
    low, high = _percentile_interval(dist, confidence)
    p = 2 * min(np.mean(dist <= 0), np.mean(dist >= 0))
    return {"difference": float(difference), "low": low, "high": high,
            "p_value": float(np.clip(p, 1 / (len(dist) + 1), 1.0))}


def _row_correct(y, pred):
    return pred == y if y.ndim == 1 else np.all(pred == y, axis=1)


def _mcnemar_interval(b, c, n, confidence):
    """Exact interval of (b - c) / n given the b + c discordant examples: Clopper-Pearson for b / (b + c)."""
    if b + c == 0:
        return 0.0, 0.0
    ci = binomtest(b, b + c).proportion_ci(confidence_level=confidence, method="exact")
    scale = (b + c) / n
    return float(scale * (2 * ci.low - 1)), float(scale * (2 * ci.high - 1))


def _decision(low, high, confidence):
    if low <= 0 <= high:
        return f"indistinguishable from the best ({confidence:.0%} CI of the difference contains 0)"
    return "worse than the best" if low > 0 else "better than the best on this metric"
