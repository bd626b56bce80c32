"""Held-out confirmation (issue 21): the test rows max_test leaves out, scored by the kept models."""

import json

import numpy as np
import pytest

from llmclf.analysis import heldout, report, verdict
from llmclf.approaches.baselines import make_baseline
from llmclf.config import BaselineConfig
from llmclf.data.tasks import load_task
from llmclf.study.confirm import confirm_study
from llmclf.study.experiment import fit_and_evaluate
from llmclf.study.predict import keep_model
from llmclf.study.record import HELD_OUT_PREDICTIONS_FILE, save_run


def test_a_capped_test_split_keeps_the_rest_apart(tiny_csv):
    path = str(tiny_csv / "single.csv")
    whole = load_task(path, id_field="id")
    capped = load_task(path, id_field="id", max_test=4)
    assert whole.held_out is None and len(capped.test) == 4
    assert not set(capped.test.ids) & set(capped.held_out.ids)
    assert sorted(capped.test.ids + capped.held_out.ids) == sorted(whole.test.ids)
    assert capped.checksum() == load_task(path, id_field="id", max_test=4).checksum()


@pytest.fixture(scope="module")
def confirmed(tiny_csv, tmp_path_factory):
    """Two TF-IDF configurations of a study on the tiny task, run as a notebook would (fit, keep the model, save
    the run), then `llmclf confirm`."""
    root = tmp_path_factory.mktemp("runs")
    path = str(tiny_csv / "single.csv")
    for label, model in (("tfidf logreg", "logreg"), ("tfidf svm", "svm")):
        cfg = BaselineConfig(baseline="tfidf", dataset=path, max_test=4, linear_model=model,
                             run_dir=str(root / "s" / label.replace(" ", "-")))
        (root / "s" / label.replace(" ", "-")).mkdir(parents=True)
        (root / "s" / label.replace(" ", "-") / "params.json").write_text(json.dumps(
            {"study": "s", "run_id": label.replace(" ", "-"), "label": label}))
        task = load_task(cfg.dataset, **cfg.task_kwargs())
        clf = make_baseline(cfg)
        result = fit_and_evaluate(clf, task)
        kept = keep_model(clf, cfg.run_dir)
        save_run(cfg.run_dir, notebook="30_baselines", params=cfg.to_dict(), task=task, metrics=result.metrics,
                 costs=result.costs, test_proba=result.test_proba, model_checksum=None, extra=kept,
                 val_proba=result.val_proba)
    out = confirm_study("s", root, progress=False)
    return root, out


def test_confirm_scores_every_kept_model_on_the_held_out_rows_once(confirmed, tiny_csv):
    root, out = confirmed
    assert sorted(out["scored"]) == ["tfidf-logreg", "tfidf-svm"] and not out["failed"]
    import pandas as pd

    held = load_task(str(tiny_csv / "single.csv"), max_test=4).held_out
    frame = pd.read_parquet(root / "s" / "tfidf-logreg" / HELD_OUT_PREDICTIONS_FILE)
    assert frame["id"].astype(str).tolist() == list(map(str, held.ids))
    assert np.allclose(frame.filter(like="p:").sum(axis=1), 1.0, atol=1e-5)
    again = confirm_study("s", root, progress=False)
    assert again["scored"] == [] and set(again["skipped"].values()) == {"already confirmed"}


def test_the_report_reads_the_held_out_rows_apart_from_test(confirmed):
    root, _ = confirmed
    analysis = verdict.analyze(report.load_records("s", root), n_resamples=200)
    (t,) = analysis.tasks.values()
    assert set(t.held_out) == {"tfidf logreg", "tfidf svm"}
    assert not set(t.ids) & set(next(iter(t.held_out.values()))[0].ids)  # other rows than the test split's
    table, lines = heldout.confirmation(t, n_resamples=200)
    assert list(table.configuration[:2]) == list(t.table.configuration[:2])  # validation order
    assert table["held-out f1_micro"].between(0, 1).all() and len(table) == 3  # and the floor
    assert lines[0].startswith("Held-out confirmation (") and "no run, threshold or choice read" in lines[0]
    assert any(line.startswith("the best on validation, ") for line in lines)


def test_a_run_whose_test_split_no_longer_matches_fails_alone(confirmed, tmp_path):
    import shutil

    root, _ = confirmed
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    for p in (copy / "s").glob(f"*/{HELD_OUT_PREDICTIONS_FILE}"):
        p.unlink()
    record = copy / "s" / "tfidf-svm" / "record.json"
    r = json.loads(record.read_text())
    r["params"]["split_seed"] = 7  # another split than the one the run scored
    record.write_text(json.dumps(r))
    out = confirm_study("s", copy, progress=False)
    assert out["scored"] == ["tfidf-logreg"] and "no longer gives the test split" in out["failed"]["tfidf-svm"]


def test_max_held_out_scores_the_same_stratified_sample_for_every_run(confirmed, tmp_path):
    import shutil

    import pandas as pd

    root, _ = confirmed
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    total = len(pd.read_parquet(copy / "s" / "tfidf-logreg" / HELD_OUT_PREDICTIONS_FILE))
    out = confirm_study("s", copy, progress=False, max_held_out=3)
    assert sorted(out["scored"]) == ["tfidf-logreg", "tfidf-svm"]  # another cap: scored again, not "already"
    ids = [pd.read_parquet(copy / "s" / r / HELD_OUT_PREDICTIONS_FILE)["id"].tolist() for r in ("tfidf-logreg",
                                                                                              "tfidf-svm")]
    assert ids[0] == ids[1] and len(ids[0]) == 3 < total
    again = confirm_study("s", copy, progress=False, max_held_out=3)
    assert again["scored"] == []

    def labels(run):
        frame = pd.read_parquet(copy / "s" / run / HELD_OUT_PREDICTIONS_FILE)
        return frame.filter(like="y:").to_numpy().argmax(1)

    counts = np.bincount(labels("tfidf-logreg"), minlength=3)
    assert counts.max() - counts.min() <= 1  # stratified: the three topics alike


def test_max_held_out_is_checked_in_the_study_file(tmp_path):
    from llmclf.config import ConfigError
    from llmclf.study.spec import study_max_held_out

    assert study_max_held_out({}) is None and study_max_held_out({"max_held_out": 600}) == 600
    for bad in (0, -3, 2.5, "600", True):
        with pytest.raises(ConfigError, match="max_held_out"):
            study_max_held_out({"max_held_out": bad}, "params/x.yaml")
