"""The embedding head on a tiny random Llama: pooling invariance, training, probabilities."""

import numpy as np
import pytest
import torch

from llmclf.config import EmbeddingHeadConfig
from llmclf.approaches.batching import pool
from llmclf.approaches.embedding_head import EmbeddingHeadClassifier


def tiny_head(tiny_llama, **kw):
    defaults = dict(model=str(tiny_llama), max_length=32, batch_size=4, epochs=1.0, learning_rate=1e-3)
    cfg = EmbeddingHeadConfig(**{**defaults, **kw})
    return EmbeddingHeadClassifier(cfg, str(tiny_llama))


def test_pool_last_picks_the_last_real_token_on_either_side():
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert pool(hidden, right, "last").squeeze(-1).tolist() == [1.0, 7.0]
    assert pool(hidden, left, "last").squeeze(-1).tolist() == [3.0, 7.0]
    assert pool(hidden, right, "mean").squeeze(-1).tolist() == [0.5, 5.5]


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_and_unpadded_inputs_give_the_same_logits(tiny_llama, pooling, side):
    clf = tiny_head(tiny_llama, pooling=pooling)
    clf._build(n_labels=3, multi_label=False)
    clf.net.eval()
    tok = clf.tokenizer
    tok.padding_side = side
    texts = ["the patent claims a method", "a cell", "the device of claim one with a wire and a valve"]
    with torch.no_grad():
        batch = tok(texts, padding=True, return_tensors="pt")
        assert (batch["attention_mask"] == 0).any()
        padded = clf.net(batch["input_ids"], batch["attention_mask"])["logits"]
        for i, text in enumerate(texts):
            one = tok([text], return_tensors="pt")
            alone = clf.net(one["input_ids"], one["attention_mask"])["logits"]
            torch.testing.assert_close(padded[i], alone[0], atol=1e-5, rtol=1e-4)


def test_fit_learns_and_probabilities_sum_to_one(tiny_task_factory, tiny_llama):
    task = tiny_task_factory(multi_label=False)
    clf = tiny_head(tiny_llama, epochs=4.0, learning_rate=5e-3).fit(task)
    proba = clf.predict_proba(task.test.texts)
    assert proba.shape == (len(task.test), task.n_labels)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    losses = [h["loss"] for h in clf.log_history if "loss" in h]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])  # the loss went down
    assert 0 < clf.trainable_params < clf.total_params


def test_multi_label_uses_sigmoid_and_a_validation_threshold(tiny_task_factory, tiny_llama):
    task = tiny_task_factory(multi_label=True)
    clf = tiny_head(tiny_llama).fit(task)
    proba = clf.predict_proba(task.test.texts)
    assert proba.shape == (len(task.test), task.n_labels)
    assert ((proba > 0) & (proba < 1)).all()
    assert 0.05 <= clf.threshold <= 0.95


def test_lora_adapter_and_head_are_saved(tiny_task_factory, tiny_llama, tmp_path):
    task = tiny_task_factory(multi_label=False)
    clf = tiny_head(tiny_llama, epochs=1.0).fit(task)
    clf.save(str(tmp_path / "adapter"))
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in weights)
    assert any("score" in k for k in weights)


def test_quantized_base_trains(tiny_task_factory, tiny_llama):
    pytest.importorskip("bitsandbytes")
    task = tiny_task_factory(multi_label=False)
    clf = tiny_head(tiny_llama, quantization="4bit", lora_target_modules=["q_proj", "v_proj"]).fit(task)
    assert np.isfinite(clf.predict_proba(task.test.texts)).all()
