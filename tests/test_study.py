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
    seeds: [0, 1]
  - notebook: 00_data
    tasks: [mine]
"""))
    assert [(s.notebook, s.task, s.params.get("seed")) for s in specs] == [
        ("10_embedding_head", "news", 0), ("10_embedding_head", "news", 1),
        ("10_embedding_head", "mine", 0), ("10_embedding_head", "mine", 1), ("00_data", "mine", None)]
    assert specs[0].params["max_train"] == 16 and specs[0].params["dataset"] == "bbc-news"
    assert specs[2].params["multi_label"] is True
    assert specs[2].params["max_train"] == notebook_defaults("10_embedding_head")["max_train"]  # not news's 16
    assert "max_length" not in specs[-1].params  # shared parameters go only to the notebooks that have them
    with pytest.raises(ConfigError, match="unknown task 'other'"):
        load_study(write(tmp_path, "tasks: {a: {}}\nruns: [{notebook: 00_data, tasks: [other]}]", "bad.yaml"))


def test_resolved_params_hold_every_notebook_parameter(tmp_path):
    (spec,) = load_study(write(tmp_path, "runs: [{notebook: 10_embedding_head}]"))
    assert set(spec.params) == set(notebook_defaults("10_embedding_head"))


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
    ("runs: [{notebook: 10_embedding_head}, {notebook: 10_embedding_head}]", ["identical"]),
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
