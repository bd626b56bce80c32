import json

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.metrics import log_loss as sk_log_loss

from llmclf.analysis.calibration import (PlattScaler, TemperatureScaler, brier, calibration_summary, ece, log_loss,
                                         reliability, scaler_from_dict)


def test_ece_of_constant_overconfidence_is_the_gap():
    # every top confidence 0.8, 60% right -> ECE 0.2
    proba = np.tile([0.8, 0.1, 0.1], (10, 1))
    y = np.array([0] * 6 + [1] * 4)
    assert ece(y, proba, False) == pytest.approx(0.2)
    # multi-label: each label predicted at 0.8, present in 60% of rows -> 0.2 per label, 0.2 on average
    y_multi = np.column_stack([y == 0, y == 0]).astype(int)
    assert ece(y_multi, np.full((10, 2), 0.8), True) == pytest.approx(0.2)
    # labels average: the second label at 0.6 with 60% present is calibrated -> (0.2 + 0) / 2
    assert ece(y_multi, np.column_stack([np.full(10, 0.8), np.full(10, 0.6)]), True) == pytest.approx(0.1)


def test_ece_of_a_calibrated_case_is_zero():
    # confidence 0.7 on 10 rows with 7 right, 0.9 on 10 rows with 9 right
    proba = np.array([[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10)
    y = np.array([0] * 7 + [1] * 3 + [1] * 9 + [0])
    assert ece(y, proba, False) == pytest.approx(0.0, abs=1e-12)


def test_brier_and_log_loss():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    y = np.array([0, 1, 2])
    expected = np.mean([0.09 + 0.04 + 0.01, 0.01 + 0.81 + 0.64, 0.25 + 0.25 + 1.0])
    assert brier(y, proba, False) == pytest.approx(expected)
    clipped = np.clip(proba, 1e-12, 1)
    assert log_loss(y, proba, False) == pytest.approx(sk_log_loss(y, clipped / clipped.sum(1, keepdims=True),
                                                                  labels=[0, 1, 2]), rel=1e-6)
    y_multi = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    assert brier(y_multi, proba, True) == pytest.approx(np.mean((proba - y_multi) ** 2))
    assert log_loss(y_multi, proba, True) == pytest.approx(
        sk_log_loss(y_multi.ravel(), np.clip(proba.ravel(), 1e-12, 1 - 1e-12), labels=[0, 1]))


def test_reliability_bins():
    proba = np.array([[0.7, 0.3]] * 10 + [[0.1, 0.9]] * 10 + [[1.0, 0.0]])
    y = np.array([0] * 7 + [1] * 3 + [1] * 9 + [0] + [0])
    table = reliability(y, proba, False, n_bins=10)
    assert list(table.columns) == ["bin_low", "bin_high", "confidence", "accuracy", "count"]
    assert len(table) == 10 and table["count"].sum() == 21
    assert table["count"].tolist() == [0] * 7 + [10, 0, 11]  # confidence 1.0 falls in the last bin
    assert table.loc[7, ["confidence", "accuracy"]].tolist() == pytest.approx([0.7, 0.7])
    assert table.loc[9, "bin_low"] == pytest.approx(0.9) and table.loc[9, "bin_high"] == 1.0
    assert np.isnan(table.loc[0, "confidence"])
    multi = reliability(np.array([[1, 0], [0, 0]]), np.array([[0.9, 0.1], [0.2, 0.05]]), True, n_bins=10)
    assert multi["count"].sum() == 4  # every (example, label) cell pooled


def overconfident_single(seed, n=3000, n_labels=5):
    """True probabilities softmax(z); the classifier reports softmax(z / 0.3), far too sure of itself."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, n_labels))
    truth = softmax(logits, axis=1)
    y = np.array([rng.choice(n_labels, p=p) for p in truth])
    return y, softmax(logits / 0.3, axis=1)


def overconfident_multi(seed, n=3000, n_labels=4):
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.2, (n, n_labels))
    y = (rng.random((n, n_labels)) < expit(z)).astype(int)
    return y, expit(z / 0.3)


def test_temperature_scaling_fixes_overconfidence():
    y_val, p_val = overconfident_single(0)
    y_test, p_test = overconfident_single(1)
    scaler = TemperatureScaler().fit(y_val, p_val)
    assert scaler.temperature == pytest.approx(1 / 0.3, rel=0.15)  # it undoes the sharpening
    after = scaler.transform(p_test)
    assert np.allclose(after.sum(axis=1), 1) and (after.argmax(1) == p_test.argmax(1)).all()
    before_ece, after_ece = ece(y_test, p_test, False), ece(y_test, after, False)
    assert before_ece > 0.1 and after_ece < before_ece / 3


def test_platt_scaling_fixes_overconfidence_and_skips_constant_labels():
    y_val, p_val = overconfident_multi(2)
    y_test, p_test = overconfident_multi(3)
    y_val[:, 3] = 0  # a label never present on validation: nothing to fit
    scaler = PlattScaler().fit(y_val, p_val)
    assert scaler.unscaled == [3] and (scaler.a[3], scaler.b[3]) == (1.0, 0.0)
    assert scaler.a[:3] == pytest.approx([0.3] * 3, rel=0.2)
    after = scaler.transform(p_test)
    assert np.allclose(after[:, 3], p_test[:, 3])
    before_ece, after_ece = ece(y_test[:, :3], p_test[:, :3], True), ece(y_test[:, :3], after[:, :3], True)
    assert before_ece > 0.1 and after_ece < before_ece / 3


@pytest.mark.parametrize("multi_label", [False, True])
def test_scalers_round_trip_through_json(multi_label):
    y, p = overconfident_multi(4, n=500) if multi_label else overconfident_single(4, n=500)
    scaler = (PlattScaler() if multi_label else TemperatureScaler()).fit(y, p)
    text = json.dumps(scaler.to_dict())
    again = type(scaler).from_dict(json.loads(text))
    assert np.array_equal(again.transform(p), scaler.transform(p))
    assert np.array_equal(scaler_from_dict(json.loads(text)).transform(p), scaler.transform(p))


def test_calibration_summary():
    y_val, p_val = overconfident_single(5, n=1500)
    y_test, p_test = overconfident_single(6, n=1500)
    out = calibration_summary(y_test, p_test, y_val, p_val, False)
    assert out["method"] == "temperature" and out["scaler"]["method"] == "temperature"
    for name in ("ece", "brier", "log_loss"):
        assert out[f"{name}_after"] < out[f"{name}_before"]
    assert out["ece_before"] == pytest.approx(ece(y_test, p_test, False))
    json.dumps(out)
    y_val, p_val = overconfident_multi(7, n=1500)
    y_test, p_test = overconfident_multi(8, n=1500)
    out = calibration_summary(y_test, p_test, y_val, p_val, True)
    assert out["method"] == "platt" and len(out["scaler"]["a"]) == 4
    assert out["log_loss_after"] < out["log_loss_before"] and out["ece_after"] < out["ece_before"]


def test_one_hot_outputs_are_not_probabilistic():
    from llmclf.analysis.calibration import is_probabilistic

    assert not is_probabilistic(np.eye(3)[[0, 2, 1]])
    assert not is_probabilistic(np.array([[1.0, 0.0], [0.0, 0.0]]))  # an invalid answer's zero row too
    assert not is_probabilistic(np.array([[1, 0, 1], [0, 0, 1]], dtype=np.float32))  # multi-label 0/1
    assert is_probabilistic(np.array([[0.9, 0.1], [0.0, 1.0]]))


def _task_analysis(runs, multi_label=False):
    import pandas as pd

    from llmclf.analysis.verdict import TaskAnalysis

    first = next(iter(runs.values()))[0]
    return TaskAnalysis("t", multi_label, first.labels, first.ids, first.y, None, runs, {}, pd.DataFrame(),
                        pd.DataFrame())


def _run(name, y, proba, y_val, proba_val, n_labels):
    from llmclf.analysis.runs import RunPredictions

    eye = np.eye(n_labels, dtype=np.int8)
    return RunPredictions(name, [f"l{j}" for j in range(n_labels)], False, 0.5, np.arange(len(y)).astype(str),
                          proba, eye[y], None, proba_val, eye[y_val])


def test_the_calibration_table_marks_one_hot_rows_and_flags_a_scaling_that_hurts_on_test():
    from llmclf.analysis.tables import NOT_PROBABILISTIC, calibration_table

    n_labels = 5
    rng = np.random.default_rng(20)
    # calibrated on test, over-confident on validation: the temperature fitted on validation softens a test set
    # that needed nothing, and its test ECE goes up
    logits = rng.normal(0, 1.0, (3000, n_labels))
    p_test = softmax(logits, axis=1)
    y_test = np.array([rng.choice(n_labels, p=p) for p in p_test])
    y_val, p_val = overconfident_single(21, n=3000, n_labels=n_labels)
    one_hot = np.eye(n_labels)[(y_test + (rng.random(3000) < 0.3)) % n_labels]  # constrained decoding: 0/1 rows
    runs = {"scores": [_run("a", y_test, p_test, y_val, p_val, n_labels)],
            "constrained": [_run("b", y_test, one_hot, y_val, np.eye(n_labels)[y_val], n_labels)]}
    table = calibration_table(_task_analysis(runs)).set_index("configuration")
    row = table.loc["scores"]
    assert row["ECE after scaling"] > row["ECE"] and row["scaling on test"].startswith("⚠ WORSE")
    row = table.loc["constrained"]
    assert row["scaling (fitted on validation)"] == NOT_PROBABILISTIC
    assert np.isnan(row["ECE"]) and np.isnan(row["log loss"]) and np.isnan(row["ECE after scaling"])
    assert row["Brier"] == pytest.approx(2 * np.mean(one_hot.argmax(1) != y_test))
