"""GPU readiness, checked as far as a CPU allows (issue 15, point 6): placement by device_map, no .to() on a
quantized base, batches on the model's device."""

import pytest
import torch

from llmclf.approaches.training import keep_placement


def test_load_pretrained_places_with_device_map_on_cuda(monkeypatch):
    from llmclf.models import loading

    seen = {}

    class Auto:
        @staticmethod
        def from_pretrained(path, **kwargs):
            seen.update(kwargs)
            return "model"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert loading.load_pretrained(Auto, "folder", precision="auto") == "model"
    assert seen["device_map"] == {"": 0}
    assert seen["dtype"] == torch.float16  # auto on a GPU without bf16
    assert seen["use_safetensors"] is True


def test_a_wrapper_repeats_the_placement_of_the_model_it_wraps():
    inner = torch.nn.Linear(2, 2)
    inner.hf_device_map = {"": 0}
    inner.quantization_method = "bitsandbytes"
    wrapper = torch.nn.Sequential(inner)
    keep_placement(wrapper)
    assert wrapper.hf_device_map == {"": 0} and wrapper.quantization_method == "bitsandbytes"
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))
    keep_placement(plain)
    assert getattr(plain, "hf_device_map", None) is None


def test_trainer_never_moves_a_4bit_base(tiny_llama, monkeypatch, tmp_path):
    """The embedding head's wrapper around a 4-bit base: Trainer must not call .to() on it."""
    pytest.importorskip("bitsandbytes")
    from transformers import Trainer

    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.approaches.training import training_arguments
    from llmclf.config import EmbeddingHeadConfig

    cfg = EmbeddingHeadConfig(model=str(tiny_llama), quantization="4bit", max_length=16)
    clf = EmbeddingHeadClassifier(cfg, str(tiny_llama))
    clf._build(3, False)

    def refuse(*a, **k):
        raise AssertionError("a 4-bit model was moved with .to()")

    monkeypatch.setattr(clf.net, "to", refuse)
    keep_placement(clf.net)
    Trainer(model=clf.net, args=training_arguments(cfg, str(tmp_path)), train_dataset=[1])


def test_predictions_follow_the_model_device(tiny_llama):
    """Batches go to the device of the model's parameters (here the CPU), read from the model, not assumed."""
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.config import EmbeddingHeadConfig

    clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=str(tiny_llama), max_length=16), str(tiny_llama))
    clf.labels, clf.multi_label = ["a", "b", "c"], False
    clf._build(3, False)
    seen = []
    original = clf._logits

    def spy(input_ids, attention_mask):
        seen.append((input_ids.device, next(clf.net.parameters()).device))
        return original(input_ids, attention_mask)

    clf._logits = spy
    clf.predict_proba(["a cell", "the device"])
    assert seen and all(a == b for a, b in seen)
