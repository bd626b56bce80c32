import json

import pytest

from llmclf.config import ConfigError
from llmclf.config import NOTEBOOKS_DIR
from llmclf.study.spec import load_study, notebook_defaults, run_id


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_and_seeds_expand_to_the_product(tmp_path):
    specs = load_study(write(tmp_path, """
description: test
defaults: {max_train: 16}
runs:
  - notebook: 10_embedding_head
    label: head
    params: {model: org/m}
    grid: {quantization: [none, 4bit], pooling: [last, mean]}
    seeds: [0, 1, 2]
"""))
    assert len(specs) == 12
    assert {s.study for s in specs} == {"s"}
    assert all(s.params["max_train"] == 16 and s.params["model"] == "org/m" for s in specs)
    assert {(s.params["quantization"], s.params["pooling"], s.params["seed"]) for s in specs} == {
        (q, p, seed) for q in ("none", "4bit") for p in ("last", "mean") for seed in (0, 1, 2)}
    assert len({s.run_id for s in specs}) == 12
    # seeds of one configuration share a label; configurations do not
    assert len({s.label for s in specs}) == 4
    assert "quantization=4bit" in specs[-1].label


def test_tasks_repeat_runs_and_name_them(tmp_path):
    specs = load_study(write(tmp_path, """
defaults: {max_eval: 8, max_length: 32}
tasks:
  news: {dataset: bbc-news, max_train: 16}
  mine: {dataset: data/mine.csv, multi_label: true}
runs:
  - notebook: 10_embedding_head
    params: {model: tiny-llama}
    seeds: [0, 1]
  - notebook: 00_data
    params: {tokenizer_model: tiny-llama}
    tasks: [mine]
"""))
    assert [(s.notebook, s.task, s.params.get("seed")) for s in specs] == [
        ("10_embedding_head", "news", 0), ("10_embedding_head", "news", 1),
        ("10_embedding_head", "mine", 0), ("10_embedding_head", "mine", 1), ("00_data", "mine", None)]
    assert specs[0].params["max_train"] == 16 and specs[0].params["dataset"] == "bbc-news"
    assert specs[2].params["multi_label"] is True
    assert specs[2].params["max_train"] is None  # the documented default, not news's 16
    assert [s.task_key for s in specs[:3]] == ["news", "news", "mine"]
    assert "max_length" not in specs[-1].params  # shared parameters go only to the notebooks that have them
    with pytest.raises(ConfigError, match="unknown task 'other'"):
        load_study(write(tmp_path, "tasks: {a: {}}\nruns: [{notebook: 00_data, tasks: [other]}]", "bad.yaml"))


def test_resolved_params_hold_every_notebook_parameter(tmp_path):
    (spec,) = load_study(write(tmp_path, "runs: [{notebook: 10_embedding_head, params: {model: tiny-llama}}]"))
    assert set(spec.params) == set(notebook_defaults("10_embedding_head"))


def test_study_params_are_the_documented_defaults_not_the_notebook_literals(tmp_path):
    """Issue 9.1: no silent caps and no toy model in batch runs."""
    from llmclf.config import BaselineConfig, EmbeddingHeadConfig
    from llmclf.study.spec import config_defaults

    (head, tfidf) = load_study(write(tmp_path, """
runs:
  - {notebook: 10_embedding_head, params: {model: smollm2-135m}}
  - {notebook: 30_baselines, params: {baseline: tfidf}}
"""))
    literals = notebook_defaults("10_embedding_head")
    assert literals["max_train"] == 40 and literals["model"] == "tiny-llama"  # for hand runs and nbval
    assert head.params == {**config_defaults(EmbeddingHeadConfig), "model": "smollm2-135m"}
    assert head.params["max_train"] is head.params["max_eval"] is head.params["max_test"] is None
    assert tfidf.params == {**config_defaults(BaselineConfig), "baseline": "tfidf"}


@pytest.mark.parametrize("run", ["{notebook: 10_embedding_head}", "{notebook: 20_instruction_tuning}",
                                 "{notebook: 00_data}",
                                 "{notebook: 30_baselines, params: {baseline: encoder}}",
                                 "{notebook: 30_baselines, params: {baseline: frozen}}"])
def test_a_run_that_needs_a_model_and_names_none_is_refused(tmp_path, run):
    with pytest.raises(ConfigError) as e:
        load_study(write(tmp_path, f"runs: [{run}]"))
    assert "needs a model" in str(e.value) and "smollm2-135m" in str(e.value) and "tiny-llama" in str(e.value)


def test_threshold_rules_are_validated_and_normalized(tmp_path):
    specs = load_study(write(tmp_path, """
runs:
  - {notebook: 30_baselines, grid: {threshold: [validation, validation_per_label, 0.3, "0.5"]}}
"""))
    assert [s.params["threshold"] for s in specs] == ["validation", "validation_per_label", "0.3", "0.5"]
    for bad in ["best", 1.5, True]:
        with pytest.raises(ConfigError, match="threshold"):
            load_study(write(tmp_path, f"runs: [{{notebook: 30_baselines, params: {{threshold: {bad}}}}}]", "b.yaml"))


def test_tasks_without_names_are_keyed_by_every_data_parameter(tmp_path):
    """Issue 9.3: runs on one file with different caps are different tasks."""
    specs = load_study(write(tmp_path, """
runs:
  - {notebook: 30_baselines, label: a, params: {dataset: x.csv, max_train: 300}}
  - {notebook: 30_baselines, label: b, params: {dataset: x.csv, max_train: 600}}
  - {notebook: 30_baselines, label: c, params: {dataset: x.csv}}
"""))
    keys = [s.task_key for s in specs]
    assert keys == ["x.csv [max_train=300]", "x.csv [max_train=600]", "x.csv"]


def test_relative_data_paths_resolve_against_the_study_folder(tmp_path, monkeypatch):
    """Issue 9.5: a relative dataset is read from the study file's folder, then the current directory; the error
    names every place looked in."""
    from llmclf.data.tasks import DataError

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("text,label\na,b\n")
    (tmp_path / "params").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (spec,) = load_study(write(tmp_path / "params", "runs: [{notebook: 30_baselines, params: {dataset: ../data/x.csv}}]"))
    assert spec.params["dataset"] == "../data/x.csv"  # the run id keeps what the study wrote
    assert spec.execution_params()["dataset"] == str((tmp_path / "data" / "x.csv").resolve())
    (spec,) = load_study(write(tmp_path / "params", "runs: [{notebook: 30_baselines, params: {dataset: data/x.csv}}]"))
    with pytest.raises(DataError) as e:
        spec.execution_params()
    assert str(tmp_path / "params" / "data" / "x.csv") in str(e.value) and str(elsewhere / "data" / "x.csv") in str(e.value)
    monkeypatch.chdir(tmp_path)  # the README's layout: the study in params/, run from the project folder
    assert spec.execution_params()["dataset"] == str((tmp_path / "data" / "x.csv").resolve())


def test_run_id_is_stable_and_changes_with_params():
    a = run_id("10_embedding_head", {"x": 1, "y": [1, 2]})
    assert a == run_id("10_embedding_head", {"y": [1, 2], "x": 1})
    assert a == run_id("10_embedding_head", {"x": 1, "y": [1, 2], "run_dir": "elsewhere"})
    assert a != run_id("10_embedding_head", {"x": 2, "y": [1, 2]})
    assert a != run_id("20_other", {"x": 1, "y": [1, 2]})
    assert a.startswith("10_embedding_head-")


@pytest.mark.parametrize("text, words", [
    ("runs: [{notebook: 10_embedding_head, params: {lr: 1}}]", ["'lr'", "learning_rate"]),
    ("runs: [{notebook: 10_embedding_head, grid: {lora_r: ['8']}}]", ["lora_r", "integer"]),
    ("runs: [{notebook: 10_embedding_head, params: {quantization: 2bit}}]", ["quantization", "4bit"]),
    ("runs: [{notebook: 99_missing}]", ["99_missing", "known notebooks"]),
    ("runs: [{notebook: 10_embedding_head, grid: {seed: 3}}]", ["non-empty list"]),
    ("runs: [{notebook: 10_embedding_head, colour: red}]", ["colour", "allowed"]),
    ("runz: []", ["runz"]),
    ("runs: []", ["non-empty"]),
    ("runs: [{notebook: 10_embedding_head, params: {run_dir: x}}]", ["run_dir"]),
    ("runs: [{notebook: 30_baselines}, {notebook: 30_baselines}]", ["identical"]),
])
def test_invalid_studies_are_refused_before_anything_runs(tmp_path, text, words):
    with pytest.raises(ConfigError) as e:
        load_study(write(tmp_path, text))
    for w in words:
        assert w in str(e.value)


def test_all_errors_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_study(write(tmp_path, "runs: [{notebook: 10_embedding_head, params: {a: 1}}, "
                                   "{notebook: 10_embedding_head, params: {b: 1}}]"))
    assert "runs[0]" in str(e.value) and "runs[1]" in str(e.value)


def test_committed_studies_are_valid():
    from pathlib import Path

    for path in sorted((NOTEBOOKS_DIR.parent / "params").glob("*.yaml")):
        assert load_study(path), path


def test_dry_run_plan_reads_the_data_and_fails_as_the_run_would(tmp_path):
    """Issue 9.2: per run the task, split sizes after caps, model and dtype; a missing file or column fails."""
    import pandas as pd

    from llmclf.study.runner import plan

    rows = [{"text": f"word{i % 3} text {i}", "label": f"c{i % 3}", "split": "test" if i % 4 == 0 else "train"}
            for i in range(60)]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    specs = load_study(write(tmp_path, """
tasks: {capped: {dataset: d.csv, max_train: 20, max_test: 10}, full: {dataset: d.csv}}
runs:
  - {notebook: 30_baselines, params: {baseline: frozen, model: minilm-l6}}
"""))
    rows = {r["task"]: r for r in plan(specs)}
    assert rows["full"]["sizes"] == {"train": 40, "validation": 5, "test": 15}
    assert rows["capped"]["sizes"] == {"train": 20, "validation": 5, "test": 10}
    from llmclf.models.hardware import resolve_dtype

    # dtype 'auto' follows the hardware: float32 on an AVX2-only CPU, bfloat16 where it is native
    assert rows["full"]["model"] == "minilm-l6" and rows["full"]["dtype"] == f"auto -> {resolve_dtype('auto')}"
    for bad, words in [("{dataset: d.csv, label_field: topic}", ["no column 'topic'", "available columns"]),
                       ("{dataset: missing.csv}", ["missing.csv", "looked in"])]:
        specs = load_study(write(tmp_path, f"runs: [{{notebook: 30_baselines, params: {bad}}}]", "bad.yaml"))
        with pytest.raises(ConfigError) as e:
            plan(specs)
        assert all(w in str(e.value) for w in words) and specs[0].run_id in str(e.value)
