"""The baselines on tiny random models and the tiny CSV: valid probabilities, parameters, C chosen on validation,
and the frozen-embedding cache (reused when nothing changed, recomputed when the model, pooling or data did)."""

import numpy as np
import pytest

import llmclf.approaches.frozen
from llmclf.approaches.baselines import make_baseline
from llmclf.approaches.linear import fit_linear_on_validation
from llmclf.config import BaselineConfig, ConfigError
from llmclf.study.experiment import fit_and_evaluate

C_VALUES = [0.01, 1.0, 100.0]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache: no embeddings from another test, none in the user's cache."""
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def count_embeddings(monkeypatch):
    """Counts the texts llmclf.approaches.frozen actually runs through the model."""
    calls = []
    real = llmclf.approaches.frozen.embed_texts

    def counting(model, tokenizer, texts, **kw):
        calls.append(len(texts))
        return real(model, tokenizer, texts, **kw)

    monkeypatch.setattr(llmclf.approaches.frozen, "embed_texts", counting)
    return calls


def config(baseline, multi_label=False, **kw):
    kw = {"max_length": 32, "eval_batch_size": 8, **kw}
    return BaselineConfig(baseline=baseline, multi_label=multi_label, **kw)


def check_proba(proba, task, multi_label):
    assert proba.shape == (len(task.test), task.n_labels) and proba.dtype == np.float32
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    if not multi_label:
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("baseline", ["tfidf", "tfidf-svm", "frozen", "encoder", "encoder-lora"])
def test_fits_and_predicts_probabilities(baseline, multi_label, tiny_task_factory, tiny_bert, tiny_llama):
    task = tiny_task_factory(multi_label)
    kw = {
        "tfidf": dict(baseline="tfidf"),
        "tfidf-svm": dict(baseline="tfidf", linear_model="svm"),
        "frozen": dict(baseline="frozen", pooling="last", dtype="bfloat16"),
        "encoder": dict(baseline="encoder", learning_rate=1e-3),
        "encoder-lora": dict(baseline="encoder", use_lora=True, learning_rate=1e-2),
    }[baseline]
    model = {"frozen": tiny_llama, "tfidf": None, "tfidf-svm": None}.get(baseline, tiny_bert)
    clf = make_baseline(config(multi_label=multi_label, **kw), model and str(model))
    result = fit_and_evaluate(clf, task, epochs=clf.epochs)
    check_proba(result.test_proba, task, multi_label)
    assert 0 < clf.threshold < 1 and (multi_label or clf.threshold == 0.5)
    params = result.costs["parameters"]
    if baseline.startswith("tfidf"):
        assert params["trainable"] == params["total"] > 0
    elif baseline == "encoder":
        assert params["trainable"] == params["total"] > 0  # full fine-tuning
        assert result.extra["loss_curve"]
    else:
        assert 0 < params["trainable"] < params["total"]
    if baseline in ("tfidf", "frozen"):
        # a weight row and an intercept per label: one multinomial model's, or one binary model's each
        n_features = result.extra["linear_model"]["n_features"]
        assert params["trainable"] == task.n_labels * (n_features + 1)


def test_linear_baselines_record_the_c_chosen_on_validation(tiny_task_factory):
    task = tiny_task_factory()
    clf = make_baseline(config("tfidf", c_values=C_VALUES))
    result = fit_and_evaluate(clf, task)
    chosen = result.extra["linear_model"]
    assert chosen["C"] in C_VALUES and [s["C"] for s in chosen["validation"]] == C_VALUES
    best = max(chosen["validation"], key=lambda s: (s["f1_micro"], -s["log_loss"]))
    assert chosen["C"] == best["C"] == clf.selection.C
    assert clf.selection.table()["chosen"].sum() == 1


def test_c_follows_the_validation_split_not_the_training_fit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    X_val = rng.normal(size=(30, 4))
    y_val = (X_val[:, 0] > 0).astype(np.int64)
    kw = dict(n_labels=2, multi_label=False, kind="logreg", c_values=[1e-4, 1.0, 100.0], tune_threshold=False)
    agreeing = fit_linear_on_validation(X, y, X_val, y_val, **kw)
    # with validation labels flipped every C scores F1 0, and the least confident model (the smallest C) loses least
    flipped = fit_linear_on_validation(X, y, X_val, 1 - y_val, **kw)
    assert agreeing.C > 1e-4 and flipped.C == 1e-4
    assert {s["C"] for s in flipped.scores} == {1e-4, 1.0, 100.0}


def test_multi_label_threshold_is_tuned_on_validation(tiny_task_factory):
    task = tiny_task_factory(multi_label=True)
    clf = make_baseline(config("tfidf", multi_label=True)).fit(task)
    assert clf.threshold == clf.selection.threshold == clf.prediction_stats["linear_model"]["threshold"]
    fixed = make_baseline(config("tfidf", multi_label=True, threshold="0.5")).fit(task)
    assert fixed.threshold == 0.5


def test_frozen_embeddings_are_cached_and_reused(tiny_task_factory, tiny_llama, cache, count_embeddings):
    task = tiny_task_factory()
    cfg = config("frozen", model=str(tiny_llama), pooling="mean")
    first = make_baseline(cfg, str(tiny_llama))
    result = fit_and_evaluate(first, task)
    assert result.extra["embedding_cache"] == {"train": "miss", "validation": "miss", "test": "miss"}
    warm_up = min(16, len(task.test))  # one untimed batch before inference is timed, not cached
    assert count_embeddings == [len(task.train), len(task.validation), warm_up, len(task.test)]
    assert len(list((cache / "embeddings").glob("*.npz"))) == 3

    second = make_baseline(cfg, str(tiny_llama))
    again = fit_and_evaluate(second, task)
    assert again.extra["embedding_cache"] == {"train": "hit", "validation": "hit", "test": "hit"}
    assert len(count_embeddings) == 4  # nothing computed again (no warm-up either: the model was never loaded)
    assert second.model is None  # nor even loaded
    assert second.total_params == first.total_params  # the model's size comes from the cache
    np.testing.assert_allclose(again.test_proba, result.test_proba, atol=1e-6)


def test_the_cache_follows_model_content_pooling_and_data(tiny_task_factory, tiny_llama, tmp_path, count_embeddings):
    import shutil

    from llmclf.models.registry import tiny_causal_lm

    task = tiny_task_factory()

    def cache_use(model, task=task, **kw):  # float32 unless said: what 'auto' would be differs between CPUs
        kw.setdefault("dtype", "float32")
        clf = make_baseline(config("frozen", pooling=kw.pop("pooling", "mean"), **kw), str(model)).fit(task)
        return clf.embedding_cache["train"]

    assert cache_use(tiny_llama) == "miss"
    assert cache_use(tiny_llama) == "hit"
    assert cache_use(tiny_llama, pooling="last") == "miss"  # pooling
    assert cache_use(tiny_llama, max_length=16) == "miss"  # truncation
    assert cache_use(tiny_llama, dtype="bfloat16") == "miss"  # dtype
    assert cache_use(tiny_llama, append_eos=True) == "miss"  # the text's last token
    assert cache_use(tiny_llama, task=tiny_task_factory(multi_label=True)) == "miss"  # other texts
    other_weights = tiny_causal_lm(tmp_path / "other", seed=1, words=["acid", "gear", "circuit"])
    assert cache_use(other_weights) == "miss"  # model: other weights
    copy = shutil.copytree(tiny_llama, tmp_path / "copy")
    assert cache_use(copy) == "hit"  # keyed by content, not by path


def test_an_unreadable_cache_file_is_computed_again(tiny_task_factory, tiny_bert, cache):
    task = tiny_task_factory()
    cfg = config("frozen", pooling="mean")
    make_baseline(cfg, str(tiny_bert)).fit(task)
    for f in (cache / "embeddings").glob("*.npz"):
        f.write_bytes(b"not a zip")
    clf = make_baseline(cfg, str(tiny_bert)).fit(task)
    assert clf.embedding_cache == {"train": "miss", "validation": "miss"}


def test_frozen_encoder_is_mean_pooled_and_gets_no_eos(tiny_bert, tiny_llama):
    with pytest.raises(ConfigError, match="pooling='mean'"):
        make_baseline(config("frozen", pooling="last"), str(tiny_bert))
    assert make_baseline(config("frozen", append_eos=True), str(tiny_bert)).append_eos is False  # it has [SEP]
    assert make_baseline(config("frozen", append_eos=True), str(tiny_llama)).append_eos is True


def test_encoder_lora_targets_are_checked_against_the_model(tiny_task_factory, tiny_bert):
    task = tiny_task_factory()
    cfg = config("encoder", use_lora=True, lora_target_modules=["q_proj", "v_proj"])
    with pytest.raises(ConfigError, match="query"):
        make_baseline(cfg, str(tiny_bert)).fit(task)


def test_config_defaults_and_checks():
    cfg = BaselineConfig()
    assert cfg.use_lora is False and cfg.lora_target_modules == ["query", "key", "value"]
    with pytest.raises(ConfigError, match="quantization"):
        BaselineConfig(baseline="frozen", quantization="4bit", use_lora=True)
    with pytest.raises(ConfigError, match="c_values"):
        BaselineConfig(c_values=[])
    with pytest.raises(ValueError, match="model_path"):
        make_baseline(BaselineConfig(baseline="encoder"))
