"""What a user sees around a run (issue 9): progress inside a run, a stalled run flagged, --only that matches
nothing, the kernel's TCP warning silenced; and the multi-label decision rules and class weights."""

import json
import threading
import time

import numpy as np
import pytest

from llmclf.config import ConfigError
from llmclf.progress import PROGRESS_FILE, Progress, describe, read_progress, track


def test_progress_writes_phase_step_total_elapsed_and_eta(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from llmclf import progress

    monkeypatch.setenv("LLMCLF_RUN_DIR", str(tmp_path))
    clock = SimpleNamespace(now=100.0)  # the module's clock, set by hand: elapsed and eta are exact
    with monkeypatch.context() as mp:
        mp.setattr(progress, "time", SimpleNamespace(perf_counter=lambda: clock.now, time=time.time))
        with Progress("embed train", total=4, bar=False) as p:
            state = read_progress(tmp_path)
            assert state["phase"] == "embed train" and state["step"] == 0 and state["total"] == 4
            assert state["elapsed"] == 0.0 and state["eta"] is None  # no step yet: no rate to project
            clock.now = 102.5
            p.update(1)
            state = read_progress(tmp_path)
            assert (state["step"], state["elapsed"], state["eta"]) == (1, 2.5, 7.5)  # 2.5 s a step, 3 steps left
            clock.now = 103.0
            p.update(3)
    state = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert (state["step"], state["elapsed"], state["eta"]) == (4, 3.0, 0)
    assert describe(state) == "embed train 4/4 (100%), 3 s, about 0 s left"
    assert list(track(range(3), "predict", bar=False)) == [0, 1, 2]
    assert read_progress(tmp_path)["phase"] == "predict" and read_progress(tmp_path)["step"] == 3
    assert describe(read_progress(tmp_path)).startswith("predict 3/3 (100%)")


def test_progress_without_a_run_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMCLF_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with Progress("train", total=2, bar=False) as p:
        p.update(2)
    assert not list(tmp_path.iterdir())


def test_trainer_steps_are_reported(tmp_path):
    from llmclf.approaches.training import progress_callback

    cb = progress_callback(str(tmp_path))

    class State:
        max_steps, global_step = 10, 0

    state = State()
    cb.on_train_begin(None, state, None)
    state.global_step = 7
    cb.on_step_end(None, state, None)
    cb.on_train_end(None, state, None)
    got = read_progress(tmp_path)
    assert (got["phase"], got["step"], got["total"]) == ("train", 7, 10)


def test_a_run_without_progress_is_flagged(tmp_path, monkeypatch):
    from llmclf import progress
    from llmclf.study.runner import Watcher

    monkeypatch.setattr(progress, "MIN_WRITE_INTERVAL", 0.0)
    messages = []

    class Bar:
        def write(self, text):
            messages.append(text)

    with Progress("train", total=100, run_dir=tmp_path, bar=False) as p:
        p.update(3)
        thread = threading.Thread(target=time.sleep, args=(1.5,))
        thread.start()
        Watcher(Bar(), stall_seconds=0.5, poll_seconds=0.1)(tmp_path, thread)
    assert len(messages) == 1 and "no progress for" in messages[0] and "train 3/100" in messages[0]


def test_only_matching_nothing_is_an_error_listing_labels_and_ids(tmp_path):
    from llmclf.study.runner import run_study

    study = tmp_path / "s.yaml"
    study.write_text("runs: [{notebook: 30_baselines, label: tfidf run}]")
    with pytest.raises(ConfigError) as e:
        run_study(study, tmp_path / "runs", only="nothing-like-this")
    assert "matches no run" in str(e.value) and "tfidf run" in str(e.value) and "30_baselines-" in str(e.value)
    assert not (tmp_path / "runs").exists()


def test_the_kernel_tcp_warning_is_silenced(tmp_path, capfd):
    import nbformat
    import papermill

    from llmclf.config import KERNEL_ARGUMENTS

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "k.ipynb")
    papermill.execute_notebook(str(tmp_path / "k.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, extra_arguments=KERNEL_ARGUMENTS)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out


# --- decisions ---------------------------------------------------------------------------------------------------

def test_per_label_thresholds_with_a_fallback_for_rare_labels():
    from llmclf.approaches.decisions import choose_threshold, predict_labels, tune_threshold

    rng = np.random.default_rng(0)
    n = 200
    y = np.zeros((n, 3), dtype=np.int8)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.3
    y[:2, 2] = 1  # too rare in validation to tune
    proba = np.zeros((n, 3))
    proba[:, 0] = np.where(y[:, 0], 0.8, 0.6)   # separable at 0.7
    proba[:, 1] = np.where(y[:, 1], 0.2, 0.1)   # separable at 0.15: a low-scored label
    proba[:, 2] = rng.random(n) * 0.5
    per = choose_threshold("validation_per_label", y, proba)
    glob = tune_threshold(y, proba)
    assert per.shape == (3,) and 0.6 < per[0] <= 0.8 and 0.1 < per[1] <= 0.2 and per[2] == glob
    assert (predict_labels(proba, True, per)[:, :2] == y[:, :2]).all()
    assert choose_threshold("0.3", y, None) == 0.3


def test_metrics_accept_per_label_thresholds_and_name_subset_accuracy():
    from llmclf.analysis.metrics import classification_metrics

    y = np.array([[1, 0], [0, 1]])
    proba = np.array([[0.6, 0.2], [0.3, 0.25]])
    m = classification_metrics(y, proba, ["a", "b"], True, np.array([0.5, 0.22]))
    assert m["f1_micro"] == 1.0 and m["threshold"] == [0.5, 0.22] and m["subset_accuracy"] == 1.0
    assert "accuracy" not in m  # multi-label: subset accuracy, named as such
    assert "accuracy" in classification_metrics(np.array([0, 1]), proba, ["a", "b"], False)


def test_balanced_class_weights():
    from llmclf.approaches.decisions import balanced_weights

    np.testing.assert_allclose(balanced_weights(np.array([0, 0, 0, 1]), 2, False), [4 / 6, 2.0])
    np.testing.assert_allclose(balanced_weights(np.array([[1, 0], [0, 0], [0, 0], [1, 1]]), 2, True), [1.0, 3.0])


def test_linear_models_take_class_weight_threshold_rules_and_warn_at_the_grid_edge(tiny_task_factory):
    from llmclf.approaches.baselines import make_baseline
    from llmclf.config import BaselineConfig

    task = tiny_task_factory(multi_label=True)
    cfg = BaselineConfig(baseline="tfidf", multi_label=True, threshold="validation_per_label",
                         class_weight="balanced", c_values=[1000.0, 10000.0])
    with pytest.warns(UserWarning, match="the chosen C = .* c_values"):
        clf = make_baseline(cfg).fit(task)
    assert clf.model.estimators_[0].class_weight == "balanced"
    assert np.shape(clf.threshold) == (task.n_labels,)
    record = clf.prediction_stats["linear_model"]
    assert "extend c_values" in record["c_at_grid_edge"] and isinstance(record["threshold"], list)
    fixed = make_baseline(BaselineConfig(baseline="tfidf", multi_label=True, threshold=0.35)).fit(task)
    assert fixed.threshold == 0.35


@pytest.mark.parametrize("multi_label", [False, True])
def test_fine_tuned_class_weights_reach_the_loss(tiny_task_factory, tiny_bert, multi_label):
    from llmclf.approaches.encoder import EncoderClassifier
    from llmclf.config import BaselineConfig

    task = tiny_task_factory(multi_label=multi_label)
    cfg = BaselineConfig(baseline="encoder", model=str(tiny_bert), multi_label=multi_label, class_weight="balanced",
                         max_length=16, epochs=1.0, threshold="validation_per_label")
    clf = EncoderClassifier(cfg, str(tiny_bert)).fit(task)
    assert clf.class_weights is not None and len(clf.class_weights) == task.n_labels
    assert any("loss" in h for h in clf.log_history)
    assert clf.predict_proba(task.test.texts).shape == (len(task.test), task.n_labels)
    if multi_label:
        assert np.shape(clf.threshold) == (task.n_labels,)


def test_the_report_groups_by_task_key_and_names_the_threshold_rule(tmp_path):
    """Issue 9.3: two tasks on one file with different caps stay two tasks (records from `llmclf run` carry the
    task key); older records without a key fall back to the data set's name."""
    from llmclf.analysis.report import load_records, summarize
    from llmclf.study.record import write_json_atomic

    def record(run_id, key, f1, multi=True):
        task = {"name": "x", "multi_label": multi, "sizes": {"train": 300, "validation": 30, "test": 60},
                "split_method": {"validation": "carved from the source's train split"}}
        if key:
            task["key"] = key
        write_json_atomic(tmp_path / "s" / run_id / "record.json", {
            "status": "done", "run_id": run_id, "label": "tfidf", "notebook": "30_baselines", "task": task,
            "params": {"dataset": "x.csv", "seed": 0, "threshold": "validation_per_label"},
            "metrics": {"f1_micro": f1, "f1_macro": f1, "subset_accuracy": f1}})

    record("a", "x.csv [max_train=300]", 0.85)
    record("b", "x.csv [max_train=600]", 0.915)
    record("c", None, 0.5)
    records = load_records("s", tmp_path)
    assert sorted(records.task) == ["x", "x.csv [max_train=300]", "x.csv [max_train=600]"]
    assert set(records.threshold_rule) == {"validation_per_label"}
    assert records.splits.str.contains("carved").all() and records.accuracy.isna().all()
    assert len(summarize(records)) == 3
