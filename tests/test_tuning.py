"""The same learning-rate budget for every trained approach (issue 21): approaches.tuning."""

import dataclasses
import json

import numpy as np
import pytest

from llmclf.approaches.baselines import make_baseline
from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
from llmclf.approaches.tuning import LearningRateSearch, tuned, validation_f1_micro
from llmclf.config import BaselineConfig, ConfigError, EmbeddingHeadConfig, InstructionConfig
from llmclf.study.experiment import fit_and_evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(max_length=32, batch_size=4, eval_batch_size=8, epochs=1.0, dtype="float32")


def head_cfg(**kw):
    return EmbeddingHeadConfig(model="tiny-llama", **{**TRAIN, **kw})


def test_no_grid_is_the_plain_approach(tiny_llama):
    cfg = head_cfg(learning_rate=1e-3)
    assert isinstance(tuned(lambda c: EmbeddingHeadClassifier(c, str(tiny_llama)), cfg), EmbeddingHeadClassifier)


def test_a_grid_keeps_the_best_validation_model_and_records_every_value(tiny_llama, tiny_task_factory):
    task = tiny_task_factory()
    grid = [1e-6, 5e-3, 1e-6 * 2]  # two values too small to move the head away from its random start
    made = []

    def make(c):
        made.append(c.learning_rate)
        return EmbeddingHeadClassifier(c, str(tiny_llama))

    clf = tuned(make, head_cfg(learning_rate_grid=grid), str(tiny_llama))
    assert isinstance(clf, LearningRateSearch)
    result = fit_and_evaluate(clf, task)
    assert made == grid  # one model per value, in the grid's order
    tuning = result.extra["tuning"]
    assert tuning["grid"] == grid and tuning["searched_here"] is True and tuning["trainings"] == 3
    scores = tuning["validation_f1_micro"]
    assert tuning["chosen"] == grid[int(np.argmax(scores))]  # the first of the best (ties: the earlier value)
    assert clf.cfg.learning_rate == tuning["chosen"] == result.extra["learning_rate"]
    # the kept model's validation is what the record keeps, and its score is the chosen one's
    assert validation_f1_micro(clf, task, result.val_proba) == pytest.approx(max(scores))
    timings = result.costs["timings"]
    assert timings["tuning_seconds"] > 0 and timings["train_seconds"] < timings["fit_seconds"]
    # the test split is never read by the choice: the same choice with the test labels scrambled
    rng = np.random.default_rng(0)
    task.test.y = rng.permutation(task.test.y)
    again = tuned(lambda c: EmbeddingHeadClassifier(c, str(tiny_llama)), head_cfg(learning_rate_grid=grid))
    again.fit(task)
    assert again.tuning["validation_f1_micro"] == scores and again.tuning["chosen"] == tuning["chosen"]


def test_the_other_seeds_train_once_at_the_choice_of_the_first(tiny_bert, tiny_task_factory, tmp_path):
    task = tiny_task_factory()
    grid = [1e-5, 3e-3, 1e-3]
    run_dir = tmp_path / "study" / "run-seed0"
    run_dir.mkdir(parents=True)
    cfg = BaselineConfig(baseline="encoder", model="tiny-bert", learning_rate_grid=grid, run_dir=str(run_dir),
                         **{k: v for k, v in TRAIN.items() if k != "dtype"})
    first = tuned(lambda c: make_baseline(c, str(tiny_bert)), cfg, str(tiny_bert)).fit(task)
    saved = list((tmp_path / "study" / "_tuning").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["chosen"] == first.tuning["chosen"]
    made = []

    def make(c):
        made.append(c.learning_rate)
        return make_baseline(c, str(tiny_bert))

    other = dataclasses.replace(cfg, seed=1, run_dir=str(tmp_path / "study" / "run-seed1"))
    second = tuned(make, other, str(tiny_bert)).fit(task)
    assert made == [first.tuning["chosen"]]  # one training, at the first seed's choice
    assert second.tuning["searched_here"] is False and second.tuning["made_by_seed"] == 0
    assert second.tuning["validation_f1_micro"] == first.tuning["validation_f1_micro"]
    # another grid is another choice
    third = tuned(make, dataclasses.replace(other, learning_rate_grid=[1e-3, 2e-3]), str(tiny_bert)).fit(task)
    assert third.tuning["searched_here"] is True


def test_grids_are_refused_where_nothing_is_trained_or_chosen_by_learning_rate():
    with pytest.raises(ConfigError, match="learning_rate_grid.*at least 2 distinct"):
        head_cfg(learning_rate_grid=[1e-3])
    with pytest.raises(ConfigError, match="learning_rate_grid.*at least 2 distinct"):
        head_cfg(learning_rate_grid=[1e-3, 1e-3])
    with pytest.raises(ConfigError, match="'encoder' baseline only"):
        BaselineConfig(baseline="tfidf", learning_rate_grid=[1e-3, 1e-2])
    with pytest.raises(ConfigError, match="zero_shot"):
        InstructionConfig(model="tiny-llama", zero_shot=True, learning_rate_grid=[1e-3, 1e-2])


def test_attributes_of_the_kept_model_need_a_fit_first(tiny_llama):
    clf = LearningRateSearch(lambda c: EmbeddingHeadClassifier(c, str(tiny_llama)),
                             head_cfg(learning_rate_grid=[1e-3, 2e-3]))
    with pytest.raises(AttributeError, match="before fit"):
        clf.predict_proba(["a text"])
