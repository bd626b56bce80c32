"""Invalid outputs (generated answers that name no label) in the report: predictions.parquet keeps the mask, and the
report scores those rows exactly as the run's record does (analysis.metrics.classification_metrics): wrong, a miss
of the true class, no false positive; a file without the mask reads as all valid."""

import numpy as np
import pandas as pd
import pytest

from llmclf.analysis import report, verdict
from llmclf.analysis.metrics import classification_metrics
from llmclf.analysis.runs import read_run_predictions
from llmclf.analysis.statistics import bootstrap_indices, predictions, resampled_scores, score
from llmclf.study.experiment import fit_and_evaluate
from llmclf.study.record import save_run


class Generating:
    """A stand-in for generate-mode instruction tuning: one-hot answers, every third text names no label (a zero
    row, marked in `invalid_mask`), the valid answers mostly right."""

    threshold = 0.5
    trainable_params, total_params = 10, 100

    def __init__(self, task):
        self.task, self.invalid_mask = task, None
        self.multi_label, self.labels = task.multi_label, task.labels

    def fit(self, task):
        return self

    def predict_proba(self, texts):
        truth = {t: row for split in (self.task.validation, self.task.test)
                 for t, row in zip(split.texts, split.label_indicator(self.task.n_labels))}
        proba = np.array([truth[t] for t in texts], dtype=np.float32)
        if not self.multi_label:
            proba[1::4] = np.roll(proba[1::4], 1, axis=1)  # some wrong answers too
        self.invalid_mask = np.arange(len(texts)) % 3 == 0
        proba[self.invalid_mask] = 0.0
        return proba


def _run(task, folder, label, clf=None):
    clf = clf or Generating(task)
    result = fit_and_evaluate(clf, task)
    save_run(str(folder), notebook="20_instruction_tuning", params={"seed": 0}, task=task,
             metrics=result.metrics, costs=result.costs, test_proba=result.test_proba, model_checksum=None,
             extra={"label": label, "run_id": folder.name}, val_proba=result.val_proba,
             test_invalid=result.test_invalid, val_invalid=result.val_invalid)
    return result


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_the_report_scores_invalid_outputs_as_the_record_does(multi_label, tiny_task_factory, tmp_path):
    task = tiny_task_factory(multi_label)
    run_dir = tmp_path / "study" / "generate"
    result = _run(task, run_dir, "generate")
    assert result.test_invalid.any() and result.val_invalid.shape == (len(task.validation),)
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    assert frame["invalid"].dtype == bool
    np.testing.assert_array_equal(frame["invalid"], result.test_invalid)
    np.testing.assert_array_equal(pd.read_parquet(run_dir / "val_predictions.parquet")["invalid"], result.val_invalid)

    run = read_run_predictions(run_dir)
    np.testing.assert_array_equal(run.invalid, result.test_invalid)
    pred, n = run.predicted(), task.n_labels
    if multi_label:
        assert not pred[run.invalid].any()  # an invalid answer predicts no label
    else:
        assert (pred[run.invalid] == n).all()  # never label 0, the argmax of a zero row
    for m in ("f1_micro", "f1_macro", "accuracy" if not multi_label else "f1_micro"):
        assert score(run.y, pred, m, multi_label, n) == pytest.approx(result.metrics[m], abs=1e-12), m
        # the bootstrap's fast scores agree with sklearn on every resample, invalid rows included
        idx = bootstrap_indices(len(run.y), 20, seed=1)
        fast = resampled_scores(run.y, pred, m, multi_label, n, idx)
        assert fast == pytest.approx([score(run.y[i], pred[i], m, multi_label, n) for i in idx], abs=1e-12)

    records = report.load_records("study", tmp_path)
    table = verdict.analyze(records, n_resamples=50).tasks[records.task.iloc[0]].table.set_index("configuration")
    assert table.loc["generate", "f1_micro"] == pytest.approx(result.metrics["f1_micro"], abs=1e-12)
    assert table.loc["generate", "f1_macro"] == pytest.approx(result.metrics["f1_macro"], abs=1e-12)
    if multi_label:
        assert table.loc["generate", "P@1"] == pytest.approx(result.metrics["precision_at_1"], abs=1e-12)


def test_single_label_invalid_rows_are_a_miss_and_no_false_positive():
    y = np.array([0, 0, 1, 2])
    proba = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float)
    invalid = np.array([False, True, False, True])
    pred = predictions(proba, False, invalid=invalid)
    assert pred.tolist() == [0, 3, 1, 3]
    expected = classification_metrics(y, proba, ["a", "b", "c"], False, invalid=invalid)
    for m in ("f1_micro", "f1_macro", "accuracy"):
        assert score(y, pred, m, False, 3) == pytest.approx(expected[m])
    assert score(y, pred, "accuracy", False, 3) == 0.5
    # the plain argmax would have called both invalid rows label 0: right once, and a false positive of label 0
    assert score(y, proba.argmax(1), "accuracy", False, 3) == 0.75


def test_a_predictions_file_without_the_mask_reads_as_all_valid(tiny_task_factory, tmp_path):
    task = tiny_task_factory()
    run_dir = tmp_path / "study" / "old"
    _run(task, run_dir, "old")
    for name in ("predictions.parquet", "val_predictions.parquet"):
        frame = pd.read_parquet(run_dir / name)
        frame.drop(columns="invalid").to_parquet(run_dir / name, index=False)
    run = read_run_predictions(run_dir)
    assert run.invalid is None and run.val_invalid is None
    np.testing.assert_array_equal(run.predicted(), run.proba.argmax(axis=1))
