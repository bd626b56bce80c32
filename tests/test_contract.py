"""One contract for every approach, checked by the library's named checks (approaches.checks, in the spirit of
scikit-learn's `parametrize_with_checks`): one test id per approach, precision, task kind and check.

Every approach is listed here by its maker: the embedding head, instruction tuning, the encoder and frozen
embeddings in float32 and with bfloat16 forced (cheap on tiny models even where bf16 is emulated), TF-IDF, the
distilled student and the learning-rate search wrapping the embedding head. Each (approach, precision, task) is
fitted once and its checks share the fit; under bfloat16, what is computed in another batch shape (the reversed
order) is held to bf16's bound (`conftest.proba_atol`).
"""

import os

import numpy as np
import pytest

from llmclf.approaches.baselines import make_baseline
from llmclf.approaches.checks import CHECKS, Case, check_classifier, parametrize_with_checks
from llmclf.approaches.distillation import DistilledEncoderClassifier
from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
from llmclf.approaches.instruction import InstructionClassifier
from llmclf.approaches.tuning import LearningRateSearch, tuned
from llmclf.config import BaselineConfig, DistillationConfig, EmbeddingHeadConfig, InstructionConfig

from conftest import DTYPES_TESTED, proba_atol

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_length=32, batch_size=4, eval_batch_size=8, epochs=1.0)
TORCH = ["embedding_head", "instruction", "encoder", "frozen", "distilled_student"]
APPROACHES = [f"{a}-{d}" for a in TORCH for d in DTYPES_TESTED] + ["tfidf", "learning_rate_search"]


def makers(llama: str, bert: str, dtype: str, task):
    """Each approach's maker (a function of multi_label), its precision forced: never 'auto', so that a check
    means the same on every CPU."""
    t = {**TRAIN, "dtype": dtype}
    def teacher(ml):  # a teacher's probabilities over the training split, soft but informative (the same each call)
        rng = np.random.default_rng(0)
        y = task(ml).train.label_indicator(task(ml).n_labels).astype(np.float32)
        soft = 0.7 * y + 0.3 * rng.random(y.shape, dtype=np.float32)
        return soft if ml else soft / soft.sum(axis=1, keepdims=True)

    return {
        "embedding_head": lambda ml: EmbeddingHeadClassifier(
            EmbeddingHeadConfig(model=llama, multi_label=ml, learning_rate=1e-3, **t), llama),
        "instruction": lambda ml: InstructionClassifier(
            InstructionConfig(model=llama, multi_label=ml, learning_rate=1e-3, **{**t, "max_length": 64}), llama),
        "encoder": lambda ml: make_baseline(BaselineConfig(baseline="encoder", model=bert, multi_label=ml, **t), bert),
        "frozen": lambda ml: make_baseline(BaselineConfig(baseline="frozen", model=llama, multi_label=ml, **t), llama),
        "distilled_student": lambda ml: DistilledEncoderClassifier(
            DistillationConfig(model=bert, multi_label=ml, learning_rate=1e-3, **t), bert, teacher(ml)),
        "tfidf": lambda ml: make_baseline(BaselineConfig(baseline="tfidf", multi_label=ml, **TRAIN)),
        "learning_rate_search": lambda ml: tuned(
            lambda c: EmbeddingHeadClassifier(c, llama),
            EmbeddingHeadConfig(model=llama, multi_label=ml, learning_rate_grid=[5e-4, 1e-3], **t), llama),
    }


@pytest.fixture(scope="module")
def case_for(label_llama, tiny_bert, tiny_csv, tmp_path_factory):
    """(approach, multi_label) -> its Case, fitted on first use and kept for the module's other checks."""
    cache = tmp_path_factory.mktemp("embedding-cache")
    before = os.environ.get("LLMCLF_CACHE")
    os.environ["LLMCLF_CACHE"] = str(cache)  # frozen embeddings: a cache of this module's own
    from llmclf.data.tasks import load_task

    tasks = {ml: load_task(str(tiny_csv / ("multi.csv" if ml else "single.csv")), multi_label=ml, id_field="id")
             for ml in (False, True)}
    cases = {}

    def get(approach: str, multi_label: bool) -> Case:
        if (approach, multi_label) not in cases:
            name, _, dtype = approach.partition("-")
            dtype = dtype or "float32"
            make = makers(str(label_llama), str(tiny_bert), dtype, lambda ml: tasks[ml])[name]
            cases[approach, multi_label] = Case(make, tasks[multi_label], tmp_path_factory.mktemp(approach),
                                                proba_atol(dtype))
        return cases[approach, multi_label]

    yield get
    if before is None:
        os.environ.pop("LLMCLF_CACHE", None)
    else:
        os.environ["LLMCLF_CACHE"] = before


@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
@parametrize_with_checks(APPROACHES)
def test_every_approach_keeps_the_contract(approach, check, multi_label, case_for):
    check(case_for(approach, multi_label))


def test_the_checks_fail_on_a_classifier_that_breaks_the_contract(tiny_task_factory, tmp_path):
    """The checks can fail: rows that do not sum to 1, and an order-dependent prediction."""
    task = tiny_task_factory(False)

    class Broken:
        labels, multi_label, threshold, trainable_params, total_params = task.labels, False, 0.5, 0, 0

        def fit(self, task):
            return self

        def predict_proba(self, texts):
            return np.array([[0.9, 0.9, 0.9][: len(task.labels)] + [0.0] * (len(task.labels) - 3)
                             if i == 0 else [1.0] + [0.0] * (len(task.labels) - 1) for i, _ in enumerate(texts)])

        def save(self, folder):
            pass

        @classmethod
        def load(cls, folder, model_path=None):
            return cls()

    case = Case(lambda ml: Broken(), task, tmp_path)
    failed = []
    for check in CHECKS:
        try:
            check(case)
        except Exception:  # noqa: BLE001 - an assertion, or the reload that finds nothing saved
            failed.append(check.__name__)
    assert {"check_proba_rows_sum", "check_order_invariance", "check_reload_equal"} <= set(failed)
    assert "check_proba_shape_and_range" not in failed  # a check fails for its own property only
    with pytest.raises(AssertionError):
        check_classifier(case)


def test_the_learning_rate_search_is_an_ordinary_classifier_once_fitted(case_for):
    clf = case_for("learning_rate_search", False).clf
    assert isinstance(clf, LearningRateSearch) and clf.cfg.learning_rate in (5e-4, 1e-3)
