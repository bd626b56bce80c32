"""One contract for every approach, checked the same way (in the spirit of scikit-learn's `check_estimator`).

`check_classifier` fits an approach on a tiny single-label or multi-label task and checks what
`approaches.contract.Classifier` promises: fit returns self, the protocol's attributes, probabilities of shape
(n, labels) in [0, 1] (rows summing to 1 for single-label), a threshold in (0, 1) for multi-label, the same output
for the same texts in any order, the same probabilities after save and load, and from a second fit under the same
seed.
"""

import numpy as np
import pytest

from llmclf.approaches.baselines import make_baseline
from llmclf.approaches.contract import Classifier
from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
from llmclf.approaches.instruction import InstructionClassifier
from llmclf.config import BaselineConfig, EmbeddingHeadConfig, InstructionConfig

from conftest import DTYPES_TESTED, proba_atol

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_length=32, batch_size=4, eval_batch_size=8, epochs=1.0)


def _approaches(label_llama, tiny_bert, dtype: str = "float32"):
    """Each approach's maker, its precision forced (never 'auto': the checks must mean the same on every CPU)."""
    llama, bert = str(label_llama), str(tiny_bert)
    t = {**TRAIN, "dtype": dtype}
    return {
        "embedding_head": lambda ml: EmbeddingHeadClassifier(
            EmbeddingHeadConfig(model=llama, multi_label=ml, learning_rate=1e-3, **t), llama),
        "instruction": lambda ml: InstructionClassifier(
            InstructionConfig(model=llama, multi_label=ml, learning_rate=1e-3, **{**t, "max_length": 64}), llama),
        "encoder": lambda ml: make_baseline(BaselineConfig(baseline="encoder", model=bert, multi_label=ml, **t), bert),
        "frozen": lambda ml: make_baseline(BaselineConfig(baseline="frozen", model=llama, multi_label=ml, **t), llama),
        "tfidf": lambda ml: make_baseline(BaselineConfig(baseline="tfidf", multi_label=ml, **TRAIN)),
    }


def check_classifier(make, task, folder, dtype: str = "float32"):
    """The contract's properties. Under a forced bfloat16, what is computed in another batch shape (the reversed
    order) is held to bf16's bound (`conftest.proba_atol`); a reload and a second fit under the same seed compute
    the same thing in the same shapes, so they keep float32's bounds."""
    atol = proba_atol(dtype)
    clf = make(task.multi_label)
    assert clf.fit(task) is clf, "fit must return self"
    assert isinstance(clf, Classifier), "missing an attribute or method of approaches.contract.Classifier"
    assert list(clf.labels) == list(task.labels) and clf.multi_label == task.multi_label
    texts = task.test.texts
    proba = clf.predict_proba(texts)
    assert proba.shape == (len(texts), task.n_labels)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1 + 1e-6).all()
    if task.multi_label:
        assert 0 < float(clf.threshold) < 1
    else:
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    assert clf.trainable_params is None or clf.trainable_params >= 0
    assert clf.total_params is None or clf.total_params >= (clf.trainable_params or 0)
    # the order of the texts changes nothing (batches are sorted by length inside)
    order = np.arange(len(texts))[::-1]
    np.testing.assert_allclose(clf.predict_proba([texts[i] for i in order]), proba[order], atol=atol)
    # saved and loaded back, the same probabilities
    clf.save(str(folder))
    np.testing.assert_allclose(type(clf).load(str(folder)).predict_proba(texts), proba, atol=1e-5)
    # the same seed, the same model
    again = make(task.multi_label).fit(task).predict_proba(texts)
    np.testing.assert_allclose(again, proba, atol=1e-4)
    return proba


CASES = [(a, d) for a in ["embedding_head", "instruction", "encoder", "frozen"] for d in DTYPES_TESTED] + [("tfidf", "-")]


@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
@pytest.mark.parametrize("approach, dtype", CASES, ids=[f"{a}-{d}" if d != "-" else a for a, d in CASES])
def test_every_approach_keeps_the_contract(approach, dtype, multi_label, label_llama, tiny_bert, tiny_task_factory,
                                           tmp_path, monkeypatch):
    """Every approach, in float32 and with bfloat16 forced (cheap on tiny models even where bf16 is emulated)."""
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))  # frozen embeddings: a cache of this test's own
    dtype_ = "float32" if dtype == "-" else dtype
    check_classifier(_approaches(label_llama, tiny_bert, dtype_)[approach], tiny_task_factory(multi_label),
                     tmp_path / "saved", dtype_)
