import json

import numpy as np
import pytest

from llmclf.analysis.metrics import classification_metrics, tune_threshold
from llmclf.study.record import provenance, write_json_atomic


def test_single_label_metrics():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[.9, .1, 0], [.2, .7, .1], [.1, .1, .8], [.6, .3, .1]])
    m = classification_metrics(y, proba, ["a", "b", "c"], multi_label=False)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["f1_micro"] == pytest.approx(0.75)
    assert m["f1_per_label"]["b"] == pytest.approx(1.0)
    assert m["f1_per_label"]["c"] == pytest.approx(2 / 3)


def test_multi_label_metrics_and_threshold():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    proba = np.array([[.9, .2, .4], [.3, .8, .1], [.7, .35, .2]])
    at_half = classification_metrics(y, proba, ["a", "b", "c"], True, 0.5)
    t = tune_threshold(y, proba)
    tuned = classification_metrics(y, proba, ["a", "b", "c"], True, t)
    assert tuned["f1_micro"] == 1.0 and at_half["f1_micro"] < 1.0
    assert 0.2 < t <= 0.35
    assert tuned["precision_at_1"] == 1.0 and tuned["subset_accuracy"] == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.ones((2, 3)), ["a", "b"], False)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"a": np.float32(1.5), "b": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1]}
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1]}  # the old record survives
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_provenance_names_commit_packages_and_machine():
    p = provenance(model_checksum="m", data_checksum="d")
    assert set(p["git"]) >= {"commit", "dirty"}
    assert p["packages"]["torch"] and p["packages"]["python"]
    assert p["machine"]["cpu"] and p["model_checksum"] == "m"
