"""Distillation: the loss, a student trained on a teacher's probabilities (single- and multi-label), reloading it,
and a smoke study whose distillation run takes the embedding-head run of the same study as teacher."""

import numpy as np
import pytest
import torch

from llmclf.approaches.distillation import DistilledEncoderClassifier, align_teacher, distillation_loss
from llmclf.approaches.persistence import load_classifier
from llmclf.config import ConfigError, DistillationConfig
from llmclf.study.record import read_record
from llmclf.study.runner import run_study

from conftest import pin

# recorded by the smoke study's students (float32, 2-core Intel Xeon with AMX)
PINNED = {
    'student f1_micro': 0.625,
    'student of the best f1_micro': 0.375,
}

pytestmark = pytest.mark.usefixtures("own_cache")


def test_the_soft_loss_is_zero_where_the_student_matches_the_teacher():
    teacher = torch.tensor([[0.7, 0.2, 0.1]])
    logits = torch.log(teacher)  # the student's own probabilities equal the teacher's
    labels = torch.tensor([0])
    for T in (1.0, 2.0, 4.0):
        assert distillation_loss(logits, labels, teacher, False, T, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # weight 0: the true labels alone
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert distillation_loss(logits, labels, teacher, False, 2.0, 0.0).item() == pytest.approx(ce.item())
    # multi-label: BCE against the tempered teacher is smallest at the teacher's own logits
    p = torch.tensor([[0.9, 0.2]])
    at = distillation_loss(torch.logit(p), torch.tensor([[1, 0]]), p, True, 2.0, 1.0)
    off = distillation_loss(torch.logit(p) + 0.5, torch.tensor([[1, 0]]), p, True, 2.0, 1.0)
    assert at < off


def test_teacher_columns_follow_the_tasks_label_order():
    proba = np.array([[0.1, 0.9]])
    np.testing.assert_allclose(align_teacher(proba, ["b", "a"], ["a", "b"]), [[0.9, 0.1]])
    with pytest.raises(ValueError, match="teacher's labels"):
        align_teacher(proba, ["a", "c"], ["a", "b"])


def test_config_checks():
    with pytest.raises(ConfigError, match="temperature"):
        DistillationConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="distill_weight"):
        DistillationConfig(distill_weight=1.5)


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_a_student_learns_from_soft_targets_and_reloads(multi_label, tiny_task_factory, tiny_bert, tmp_path):
    torch.set_num_threads(1)
    task = tiny_task_factory(multi_label=multi_label)
    truth = task.train.label_indicator(task.n_labels).astype(np.float32)
    soft = 0.8 * truth + 0.1 if multi_label else (0.8 * truth + 0.2 / task.n_labels)
    cfg = DistillationConfig(model=str(tiny_bert), multi_label=multi_label, max_length=32, batch_size=8,
                             eval_batch_size=8, epochs=2.0, learning_rate=1e-3, distill_weight=0.7)
    clf = DistilledEncoderClassifier(cfg, str(tiny_bert), soft).fit(task)
    losses = [h["loss"] for h in clf.log_history if "loss" in h]
    assert losses and all(np.isfinite(losses))
    proba = clf.predict_proba(task.test.texts)
    assert proba.shape == (len(task.test), task.n_labels)
    clf.save(str(tmp_path / "student"))
    again = load_classifier(str(tmp_path / "student"))
    np.testing.assert_allclose(again.predict_proba(task.test.texts), proba, atol=1e-5)
    with pytest.raises(ValueError, match="teacher probabilities have shape"):
        DistilledEncoderClassifier(cfg, str(tiny_bert), soft[:3]).fit(task)


def test_smoke_study_a_student_of_the_studys_embedding_head(tmp_path, tiny_llama, tiny_bert, tiny_csv):
    study = tmp_path / "distil.yaml"
    study.write_text(f"""
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 32, dtype: float32}}
runs:
  - notebook: 10_embedding_head
    label: head
    params: {{model: "{tiny_llama}", epochs: 2.0, learning_rate: 0.005}}
  - notebook: 30_baselines
    label: encoder
    params: {{baseline: encoder, model: "{tiny_bert}", save_model: false}}
  - notebook: 40_distillation
    label: student
    params: {{model: "{tiny_bert}", teacher_run: "label:head", epochs: 2.0}}
  - notebook: 40_distillation
    label: student of the best
    params: {{model: "{tiny_bert}", teacher_run: best, temperature: 4.0}}
  - notebook: 40_distillation
    label: student of nobody
    params: {{model: "{tiny_bert}", teacher_run: "label:no such run"}}
""")
    outcomes = run_study(study, tmp_path / "runs")
    by_label = {o.spec.label: o for o in outcomes}
    assert [by_label[l].status for l in ("head", "encoder", "student", "student of the best")] == ["done"] * 4
    head = tmp_path / "runs" / "distil" / by_label["head"].spec.run_id
    assert (head / "model" / "llmclf_model.json").is_file()
    assert not (tmp_path / "runs" / "distil" / by_label["encoder"].spec.run_id / "model").exists()
    for label in ("student", "student of the best"):
        run_dir = tmp_path / "runs" / "distil" / by_label[label].spec.run_id
        record = read_record(run_dir)
        assert record["teacher"]["run_id"] == by_label["head"].spec.run_id
        assert record["teacher"]["notebook"] == "10_embedding_head"
        assert record["distillation"]["temperature"] == (2.0 if label == "student" else 4.0)
        pin(PINNED, f"{label} f1_micro", record["metrics"]["f1_micro"], record["metrics"]["n"])
        assert record["throughput"]["inference_examples_per_second"] > 0
        assert record["model_dir"] == "model" and (run_dir / "model" / "llmclf_model.json").is_file()
    assert by_label["student of nobody"].status == "failed"
    assert "no finished run labelled 'no such run'" in by_label["student of nobody"].error


def _predictions(folder, n_right, n=10, labels=("a", "b")):
    """predictions.parquet and val_predictions.parquet of a two-label run: the test file always perfect (test must
    never choose), the validation file right on its first `n_right` rows."""
    import pandas as pd

    y = np.arange(n) % 2
    for name, right in (("predictions.parquet", n), ("val_predictions.parquet", n_right)):
        guess = np.where(np.arange(n) < right, y, 1 - y)
        frame = pd.DataFrame({"id": [f"v{i}" for i in range(n)], "p:a": (guess == 0).astype(float),
                              "p:b": (guess == 1).astype(float), "y:a": (y == 0).astype(np.int8),
                              "y:b": (y == 1).astype(np.int8)})
        frame.to_parquet(folder / name, index=False)


def test_resolve_teacher_by_label_seed_best_and_kept_model(tmp_path):
    from llmclf.study.predict import PredictError, resolve_teacher
    from llmclf.study.record import write_json_atomic

    study = tmp_path / "study"

    def run(name, label, notebook, seed, val_right, model=True, data="d", test_f1=0.5):
        folder = study / name
        write_json_atomic(folder / "record.json", {
            "status": "done", "label": label, "notebook": notebook, "params": {"seed": seed},
            "task": {"labels": ["a", "b"], "multi_label": False},
            "metrics": {"f1_micro": test_f1}, "provenance": {"data_checksum": data},
            **({"model_dir": "model"} if model else {})})
        _predictions(folder, val_right)
        if model:
            (folder / "model").mkdir()
            (folder / "model" / "llmclf_model.json").write_text("{}")
        return folder

    # validation F1 decides; the recorded test F1 says the opposite and must not matter
    a0 = run("a0", "head (quantization=none)", "10_embedding_head", 0, 5, test_f1=0.99)
    a1 = run("a1", "head (quantization=none)", "10_embedding_head", 1, 7, test_f1=0.1)
    run("b0", "instruction", "20_instruction_tuning", 0, 6, test_f1=0.98)
    run("t0", "tfidf", "30_baselines", 0, 10)           # not an LLM: never 'best'
    run("x0", "head (quantization=none)", "10_embedding_head", 0, 10, data="other")  # other data
    me = study / "me"
    assert resolve_teacher("label:head", str(me), seed=0, data_checksum="d") == a0
    assert resolve_teacher("label:head", str(me), seed=5, data_checksum="d") == a1  # no seed 5: the best
    assert resolve_teacher("best", str(me), data_checksum="d") == a1
    assert resolve_teacher(str(a0), "") == a0 and resolve_teacher("", "") is None
    # a tie on validation goes to the first folder name, whatever the order the folders were written in
    a2 = run("a2", "head (quantization=none)", "10_embedding_head", 2, 7, test_f1=1.0)
    assert resolve_teacher("best", str(me), data_checksum="d") == a1
    run("c0", "instruction", "20_instruction_tuning", 1, 8, model=False)
    with pytest.raises(PredictError, match="c0 .* kept no model"):
        resolve_teacher("best", str(me), data_checksum="d")
    with pytest.raises(PredictError, match="not in a study"):
        resolve_teacher("best", "")
    assert a2.name > a1.name
