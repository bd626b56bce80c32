"""What a record carries for the report (issue 11): separate timings with a warm-up, validation probabilities, the
input budget, the training labels the floors need; and TF-IDF reading the same truncated text as the others."""

import json

import numpy as np
import pandas as pd
import pytest

from llmclf.approaches.baselines import make_baseline
from llmclf.config import BaselineConfig
from llmclf.study.experiment import fit_and_evaluate
from llmclf.study.record import save_run

pytestmark = pytest.mark.usefixtures("own_cache")


def config(**kw):
    return BaselineConfig(**{"baseline": "tfidf", "max_length": 4, "eval_batch_size": 8, **kw})


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_record_carries_timings_validation_probabilities_budget_and_train_labels(multi_label, tiny_task_factory,
                                                                                tmp_path):
    task = tiny_task_factory(multi_label)
    clf = make_baseline(config(multi_label=multi_label))
    result = fit_and_evaluate(clf, task)
    timings = result.costs["timings"]
    assert timings["load_seconds"] == 0.0  # TF-IDF reads no model
    assert timings["train_seconds"] == timings["fit_seconds"] > 0  # its fit loads nothing and predicts nothing
    assert timings["validation_seconds"] > 0 and timings["predict_seconds"] > 0
    assert timings["predict_warm_up"] is True
    assert result.val_proba.shape == (len(task.validation), task.n_labels)
    assert result.costs["input_budget"]["max_length"] is None  # full text: no budget
    record = save_run(str(tmp_path), notebook="30_baselines", params=config().to_dict(), task=task,
                      metrics=result.metrics, costs=result.costs, test_proba=result.test_proba,
                      model_checksum=None, extra=result.extra, val_proba=result.val_proba)
    counts = record["task"]["train_label_counts"]
    assert counts == task.train.label_indicator(task.n_labels).sum(axis=0).tolist()
    if multi_label:
        sets = record["task"]["train_label_sets"]
        assert sum(c for _, c in sets) == len(task.train)
    val = pd.read_parquet(tmp_path / "val_predictions.parquet")
    assert list(val["id"]) == list(task.validation.ids)
    assert [c for c in val.columns if c.startswith("p:")] == [f"p:{l}" for l in task.labels]
    test = pd.read_parquet(tmp_path / "predictions.parquet")
    assert "text" in test.columns and test["text"].str.len().max() <= 400
    json.loads((tmp_path / "record.json").read_text())  # JSON-ready


def test_tfidf_truncated_reads_the_first_max_length_tokens(tiny_task_factory, tiny_llama):
    task = tiny_task_factory()
    clf = make_baseline(config(tfidf_input="truncated", max_length=3), str(tiny_llama))
    cut = clf.input_texts(task.train.texts[:5])
    tok = clf.tokenizer()
    for text, full in zip(cut, task.train.texts[:5]):
        assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 3
        assert len(text) < len(full)
    result = fit_and_evaluate(clf, task)
    budget = result.costs["input_budget"]
    assert budget["max_length"] == budget["text_tokens"] == 3 and budget["truncated_share"] == 1.0
    full = make_baseline(config())
    assert full.input_texts(task.train.texts[:2]) == task.train.texts[:2]


def test_truncated_tfidf_without_a_tokenizer_says_what_to_pass(tiny_task_factory):
    clf = make_baseline(config(tfidf_input="truncated"))
    with pytest.raises(ValueError, match="tokenizer"):
        clf.fit(tiny_task_factory())


def test_fine_tuned_classifiers_split_load_train_and_validation(tiny_task_factory, tiny_bert):
    task = tiny_task_factory(True)
    clf = make_baseline(config(baseline="encoder", multi_label=True, max_length=16, learning_rate=1e-3),
                        str(tiny_bert))
    result = fit_and_evaluate(clf, task)
    t = result.costs["timings"]
    assert t["load_seconds"] > 0 and t["validation_seconds"] > 0
    assert t["train_seconds"] <= t["fit_seconds"] - t["load_seconds"] + 1e-9
    np.testing.assert_allclose(result.val_proba, clf.validation_proba)  # the threshold's pass, not a second one
    budget = result.costs["input_budget"]
    assert budget["max_length"] == 16 and budget["text_tokens"] == 14  # [CLS] and [SEP]
    # the fixture's texts are 8 or 11 words, one token a word in the tiny vocabulary: none is cut; doubled, 16 to 22
    assert budget["truncated_share"] == budget["truncated_share_train"] == 0.0
    doubled = [f"{t} {t}" for t in task.test.texts[:3]] + list(task.test.texts[3:5])
    assert clf.input_budget(doubled)["truncated_share"] == 3 / 5
