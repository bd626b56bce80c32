"""Long documents (issue 22): texts read as windows and pooled (`long_text: chunks`) by the embedding head, the
encoder and frozen embeddings; and the embedding head born from the label tokens (`head_init: label_tokens`)."""

import dataclasses

import numpy as np
import pytest
import torch

from llmclf.approaches.batching import encode, encode_windows, pad_windows, pool_windows, token_budget
from llmclf.config import BaselineConfig, ConfigError, EmbeddingHeadConfig

from conftest import TOPICS

pytestmark = pytest.mark.usefixtures("one_thread")

SHORT = ["acid polymer the device", "gear shaft spring"]
# 30 words: at max_length 8 a Llama window holds 7 of them (+ EOS), a BERT window 6 (+ [CLS], [SEP])
LONG = " ".join(["circuit voltage current transistor wire signal battery acid polymer solution"] * 3)


def _tokenizer(path):
    from llmclf.models.loading import load_tokenizer

    return load_tokenizer(str(path))


@pytest.mark.parametrize("model, append", [("tiny_llama", None), ("tiny_llama", "eos"), ("tiny_bert", None)])
def test_a_text_that_fits_one_window_is_its_truncated_encoding(request, model, append):
    tok = _tokenizer(request.getfixturevalue(model))
    append_token = tok.eos_token_id if append else None
    windows = encode_windows(tok, SHORT + [LONG], 8, append_token, stride=2, max_chunks=3)
    plain = encode(tok, SHORT + [LONG], 8, append_token)
    assert windows["owner"] == [0, 1, 2, 2, 2]  # the long text: its first three windows of more
    assert windows["input_ids"][:3] == plain["input_ids"]  # each text's first window is what truncation reads
    assert all(len(ids) == 8 for ids in windows["input_ids"][2:])
    if append_token is not None:
        assert all(ids[-1] == append_token for ids in windows["input_ids"])


def test_windows_overlap_by_the_stride_and_the_budget_counts_what_they_cover(tiny_bert):
    tok = _tokenizer(tiny_bert)
    windows = encode_windows(tok, [LONG], 8, stride=2, max_chunks=10)
    inner = [ids[1:-1] for ids in windows["input_ids"]]  # without [CLS] and [SEP]: 6 text tokens a window
    for before, after in zip(inner, inner[1:]):
        assert after[:2] == before[-2:]  # two shared tokens
    assert len(windows["input_ids"]) == 1 + int(np.ceil((30 - 6) / 4))  # every token read: 7 windows
    budget = token_budget(tok, [LONG, SHORT[0]], 8, long_text="chunks", max_chunks=3, stride=2)
    assert budget["text_tokens"] == 6 and budget["text_tokens_covered"] == 6 + 2 * 4
    assert budget["tokens_read"] == pytest.approx((14 + 4) / 2)  # the long text is read for 14 of its 30 tokens
    assert budget["truncated_share"] == 0.5 and budget["windows_per_text"] == pytest.approx((3 + 1) / 2)
    truncated = token_budget(tok, [LONG, SHORT[0]], 8)
    assert truncated["tokens_read"] == pytest.approx((6 + 4) / 2) and truncated["long_text"] == "truncate"


def test_pool_windows_takes_each_texts_mean_or_max():
    values = torch.tensor([[1.0, -1.0], [3.0, 5.0], [2.0, 0.0], [4.0, -2.0]])
    owner = torch.tensor([0, 1, 1, 1])
    torch.testing.assert_close(pool_windows(values, owner, "mean"), torch.tensor([[1.0, -1.0], [3.0, 1.0]]))
    torch.testing.assert_close(pool_windows(values, owner, "max"), torch.tensor([[1.0, -1.0], [4.0, 5.0]]))
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        pool_windows(values, owner, "sum")


def test_config_refuses_chunks_where_they_mean_nothing():
    with pytest.raises(ConfigError, match="long_text.*tfidf"):
        BaselineConfig(baseline="tfidf", long_text="chunks")
    with pytest.raises(ConfigError, match="chunk_stride"):
        EmbeddingHeadConfig(model="tiny-llama", max_length=64, long_text="chunks", chunk_stride=31)
    with pytest.raises(ConfigError, match="max_chunks"):
        EmbeddingHeadConfig(model="tiny-llama", long_text="chunks", max_chunks=0)
    with pytest.raises(ConfigError, match="chunk_pooling"):
        EmbeddingHeadConfig(model="tiny-llama", long_text="chunks", chunk_pooling="sum")


def _built(kind, path, **kw):
    """An untrained classifier in float32, as `fit` builds it (3 labels, single-label)."""
    if kind == "head":
        from llmclf.approaches.embedding_head import EmbeddingHeadClassifier

        clf = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=str(path), dtype="float32", **kw), str(path))
    else:
        from llmclf.approaches.encoder import EncoderClassifier

        clf = EncoderClassifier(BaselineConfig(baseline="encoder", model=str(path), dtype="float32", **kw), str(path))
    clf.labels, clf.multi_label = ["a", "b", "c"], False
    clf._build(3, False)
    clf.net.eval()
    return clf


@pytest.mark.parametrize("kind, model", [("head", "tiny_llama"), ("encoder", "tiny_bert")])
def test_chunks_equal_truncation_when_a_text_fits_one_window_and_pool_the_windows_otherwise(request, kind, model):
    path = request.getfixturevalue(model)
    clf = _built(kind, path, max_length=8)
    truncated = clf.predict_proba(SHORT + [LONG])
    for pooling in ("mean", "max"):
        clf.cfg = dataclasses.replace(clf.cfg, long_text="chunks", max_chunks=3, chunk_pooling=pooling)
        chunked = clf.predict_proba(SHORT + [LONG])
        np.testing.assert_allclose(chunked[:2], truncated[:2], atol=1e-5)  # one window: the same prediction
        # the long text: its three windows' logits, each computed alone, pooled
        windows = encode_windows(clf.tokenizer, [LONG], 8, clf.append_token, max_chunks=3)
        with torch.no_grad():
            logits = torch.cat([clf._logits(torch.tensor([ids]), torch.tensor([mask])) for ids, mask
                                in zip(windows["input_ids"], windows["attention_mask"])])
        pooled = logits.mean(0) if pooling == "mean" else logits.max(0).values
        np.testing.assert_allclose(chunked[2], torch.softmax(pooled, -1).numpy(), atol=1e-5)
        assert np.abs(chunked[2] - truncated[2]).max() > 1e-6  # the other windows count (tiny random models: a little)


@pytest.mark.parametrize("kind, model", [("head", "tiny_llama"), ("encoder", "tiny_bert")])
def test_training_on_windows_learns_and_records_the_tokens_read(request, tiny_task_factory, kind, model):
    path = request.getfixturevalue(model)
    task = tiny_task_factory(multi_label=(kind == "encoder"))  # both kinds of loss through the chunk collator
    clf = _built(kind, path, max_length=6, long_text="chunks", max_chunks=3, chunk_stride=1, epochs=4.0,
                 learning_rate=5e-3, batch_size=4)
    clf.fit(task)
    losses = [h["loss"] for h in clf.log_history if "loss" in h]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    proba = clf.predict_proba(task.test.texts)
    assert proba.shape == (len(task.test), task.n_labels) and np.isfinite(proba).all()
    chunked, truncated = clf.input_budget(task.test.texts), token_budget(clf.tokenizer, task.test.texts, 6,
                                                                         clf.append_token is not None)
    assert chunked["long_text"] == "chunks" and chunked["windows_per_text"] > 1
    assert chunked["tokens_read"] > truncated["tokens_read"]


def test_a_saved_chunked_model_reloads_with_its_windows(tmp_path, tiny_task_factory, tiny_llama):
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier

    task = tiny_task_factory()
    clf = _built("head", tiny_llama, max_length=6, long_text="chunks", max_chunks=2, chunk_pooling="max")
    clf.fit(task)
    clf.save(str(tmp_path / "model"))
    again = EmbeddingHeadClassifier.load(str(tmp_path / "model"))
    assert again.cfg.long_text == "chunks" and again.cfg.chunk_pooling == "max"
    np.testing.assert_allclose(again.predict_proba(task.test.texts), clf.predict_proba(task.test.texts), atol=1e-5)


def test_frozen_embeddings_of_windows(own_cache, tiny_llama):
    from llmclf.approaches.frozen import FrozenEmbeddingClassifier

    def embed(**kw):
        cfg = BaselineConfig(baseline="frozen", model=str(tiny_llama), dtype="float32", max_length=8, **kw)
        clf = FrozenEmbeddingClassifier(cfg, str(tiny_llama))
        return clf, clf.embed(SHORT + [LONG], "test")

    _, truncated = embed()
    clf, chunked = embed(long_text="chunks", max_chunks=3)
    np.testing.assert_allclose(chunked[:2], truncated[:2], atol=1e-5)
    assert clf.embedding_cache["test"] == "miss"  # not the truncated embeddings' cache entry
    # the long text's vector: its three windows' vectors, each computed alone, pooled
    from llmclf.approaches.batching import pool, position_ids_from_mask

    windows = encode_windows(clf.tokenizer, [LONG], 8, None, max_chunks=3)
    with torch.no_grad():
        alone = []
        for ids in windows["input_ids"]:
            x, mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
            hidden = clf.model(input_ids=x, attention_mask=mask, position_ids=position_ids_from_mask(mask)).last_hidden_state
            alone.append(pool(hidden.float(), mask, "mean")[0].numpy())
    np.testing.assert_allclose(alone[0], truncated[2], atol=1e-5)  # the first window is the truncated text
    np.testing.assert_allclose(chunked[2], np.mean(alone, axis=0), atol=1e-5)
    _, maxed = embed(long_text="chunks", max_chunks=3, chunk_pooling="max")
    np.testing.assert_allclose(maxed[2], np.max(alone, axis=0), atol=1e-5)
    budget = clf.input_budget([LONG])
    assert budget["long_text"] == "chunks" and budget["tokens_read"] == 3 * 8


def _head_and_lm_logits(label_llama, head_init, texts):
    """The untrained head's logits and the LM's next-token logits of each label's first token, at the last token."""
    from transformers import AutoModelForCausalLM

    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier

    labels = sorted(TOPICS)
    cfg = EmbeddingHeadConfig(model=str(label_llama), dtype="float32", max_length=16, head_init=head_init)
    clf = EmbeddingHeadClassifier(cfg, str(label_llama))
    clf.labels, clf.multi_label = labels, False
    clf._build(len(labels), False)
    clf.net.eval()
    lm = AutoModelForCausalLM.from_pretrained(str(label_llama), dtype=torch.float32).eval()
    first = [clf.tokenizer(" " + label, add_special_tokens=False)["input_ids"][0] for label in labels]
    assert len(set(first)) == len(labels) and clf.tokenizer.unk_token_id not in first
    heads, lms = [], []
    with torch.no_grad():
        for ids in encode(clf.tokenizer, texts, 16, clf.append_token)["input_ids"]:
            x, mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
            heads.append(clf._logits(x, mask)[0])
            lms.append(lm(input_ids=x, attention_mask=mask).logits[0, -1, first])
    return clf, torch.stack(heads), torch.stack(lms)


def test_a_label_token_head_scores_as_the_lm_before_any_training(label_llama):
    """head_init='label_tokens': before a training step the head's logits are the LM's next-token logits of each
    label's first token at the position the head reads, so it predicts as zero-shot first-token scoring there."""
    texts = SHORT + [LONG, "valve piston bearing lever"]
    clf, head, lm = _head_and_lm_logits(label_llama, "label_tokens", texts)
    torch.testing.assert_close(head, lm, atol=1e-4, rtol=1e-4)
    assert clf.fit_stats["label_tokens"]["shared"] == []
    _, random_head, _ = _head_and_lm_logits(label_llama, "random", texts)
    assert not torch.allclose(random_head, lm, atol=1e-2)  # transformers' own init is something else


def test_lm_head_rows_of_a_tied_model_are_its_input_embeddings(label_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from llmclf.models.loading import lm_head_rows

    tied = tmp_path / "tied"
    lm = AutoModelForCausalLM.from_pretrained(str(label_llama))
    lm.config.tie_word_embeddings = True
    lm.tie_weights()
    lm.save_pretrained(tied)
    _tokenizer(label_llama).save_pretrained(tied)
    model = AutoModelForSequenceClassification.from_pretrained(str(tied), num_labels=3)
    rows = lm_head_rows(model, str(tied), [5, 7])
    torch.testing.assert_close(rows, model.get_input_embeddings().weight[[5, 7]].float())
    untied = AutoModelForSequenceClassification.from_pretrained(str(label_llama), num_labels=3)
    own = lm_head_rows(untied, str(label_llama), [5, 7])
    torch.testing.assert_close(own, AutoModelForCausalLM.from_pretrained(str(label_llama)).lm_head.weight[[5, 7]])
    assert not torch.allclose(own, untied.get_input_embeddings().weight[[5, 7]])  # the untied path reads lm_head
    with pytest.raises(ConfigError, match="not a folder"):
        lm_head_rows(untied, "org/not-here", [5])


def test_options_added_at_their_neutral_values_keep_a_runs_id():
    from llmclf.study.spec import NEUTRAL_DEFAULTS, run_id

    params = {"model": "smollm2-135m", "max_length": 96, "seed": 0}
    assert run_id("10_embedding_head", {**params, **NEUTRAL_DEFAULTS}) == run_id("10_embedding_head", params)
    assert run_id("10_embedding_head", {**params, **NEUTRAL_DEFAULTS, "long_text": "chunks"}) != \
        run_id("10_embedding_head", params)
