"""Hostile and careless input (issue 12, points 3, 5, 6, 8, 10): nonsense refused early with a clear message, safe
names, YAML errors without a traceback, complete records in one write, the data's content in a run's identity."""

import json
import time

import pandas as pd
import pytest

from conftest import synthetic_rows
from llmclf.config import (BaselineConfig, ConfigError, DataExplorationConfig, EmbeddingHeadConfig,
                           InstructionConfig)
from llmclf.study.spec import load_study


# ---- 5. nonsense refused at validation -------------------------------------------------------------------------

@pytest.mark.parametrize("cls, params, match", [
    (EmbeddingHeadConfig, {"max_length": 1, "append_eos": True}, "leaves no token for the text"),
    (BaselineConfig, {"baseline": "encoder", "max_length": 2}, "max_length >= 3"),
    (BaselineConfig, {"baseline": "frozen", "model": "tiny-llama", "append_eos": True, "max_length": 1},
     "max_length >= 2"),
    (EmbeddingHeadConfig, {"weight_decay": -0.1}, "weight_decay"),
    (InstructionConfig, {"weight_decay": -1.0}, "weight_decay"),
    (EmbeddingHeadConfig, {"lora_alpha": 0}, "lora_alpha"),
    (EmbeddingHeadConfig, {"lora_alpha": -8}, "lora_alpha"),
    (EmbeddingHeadConfig, {"lora_r": 0}, "lora_r"),
    (EmbeddingHeadConfig, {"lora_target_modules": []}, "lora_target_modules"),
    (EmbeddingHeadConfig, {"seed": -1}, "numpy's seed range"),
    (BaselineConfig, {"seed": 2**32}, "numpy's seed range"),
    (EmbeddingHeadConfig, {"split_seed": -5}, "split_seed"),
    (EmbeddingHeadConfig, {"model": "no-such-model"}, "unknown model 'no-such-model'.*smollm2-135m"),
    (InstructionConfig, {"model": "smollm"}, "unknown model"),
    (BaselineConfig, {"baseline": "encoder", "model": "bert"}, "unknown model"),
    (DataExplorationConfig, {"tokenizer_model": "llama"}, "unknown model"),
])
def test_nonsense_is_refused_with_the_reason(cls, params, match):
    with pytest.raises(ConfigError, match=match):
        cls.from_dict(params)


def test_sensible_values_still_pass(tmp_path):
    EmbeddingHeadConfig.from_dict({"max_length": 2, "seed": 2**32 - 1, "model": "HuggingFaceTB/SmolLM2-135M"})
    EmbeddingHeadConfig.from_dict({"max_length": 1, "append_eos": False, "model": str(tmp_path)})
    BaselineConfig.from_dict({"baseline": "tfidf", "model": "anything: tfidf reads no model", "max_length": 1})


def test_an_unknown_model_fails_when_the_study_is_loaded(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("runs:\n  - notebook: 10_embedding_head\n    params: {model: smolm2-135m}\n")
    with pytest.raises(ConfigError, match="unknown model 'smolm2-135m'"):
        load_study(study)


def test_a_label_holding_the_separator_is_refused(tmp_path):
    from llmclf.data.tasks import DataError, load_task

    rows = [{"text": f"text {i}", "label": [["banking, finance"], ["sport"], ["finance"]][i % 3]} for i in range(30)]
    path = tmp_path / "d.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match="contains label_separator ','.*another|choose a label_separator"):
        load_task(str(path), multi_label=True)
    assert "banking, finance" in load_task(str(path), multi_label=True, label_separator="|").labels


def test_an_answer_separator_inside_a_label_is_refused(tmp_path):
    from llmclf.approaches.instruction import InstructionClassifier
    from llmclf.data.tasks import load_task

    rows = [{"text": f"text {i}", "label": ["a;b", "c", "d"][i % 3]} for i in range(30)]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    task = load_task(str(path), multi_label=True, label_separator="|")
    clf = InstructionClassifier(InstructionConfig.from_dict({"model": "tiny-llama", "answer_separator": "; "}),
                                "unused: refused before the model is read")
    with pytest.raises(ConfigError, match="contain the answer_separator ';'"):
        clf._build(task)


def test_multi_label_data_without_any_label_is_refused(tmp_path):
    from llmclf.data.tasks import DataError, load_task

    path = tmp_path / "d.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(20)], "label": [""] * 20}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no example has a label"):
        load_task(str(path), multi_label=True)


# ---- 5/6. refused at model load, naming what exists ----------------------------------------------------------

def test_lora_targets_that_match_nothing_list_the_modules(tiny_llama):
    from transformers import AutoModelForSequenceClassification

    from llmclf.models.loading import load_pretrained, wrap_lora

    model = load_pretrained(AutoModelForSequenceClassification, str(tiny_llama), num_labels=2)
    cfg = EmbeddingHeadConfig.from_dict({"model": "tiny-llama", "lora_target_modules": ["query", "value"]})
    with pytest.raises(ConfigError, match=r"match no module.*q_proj"):
        wrap_lora(model, cfg, task_type="SEQ_CLS")


def test_the_embedding_head_refuses_an_encoder(tiny_bert):
    from llmclf.approaches.embedding_head import check_causal_lm

    with pytest.raises(ConfigError, match="encoder, not a causal LM.*baseline='encoder'"):
        check_causal_lm(str(tiny_bert))


def test_a_corrupt_weight_file_is_named_with_the_fix(tiny_llama, tmp_path):
    import shutil

    from transformers import AutoModelForCausalLM

    from llmclf.models.loading import load_pretrained

    folder = tmp_path / "broken"
    shutil.copytree(tiny_llama, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with pytest.raises(ValueError) as e:
        load_pretrained(AutoModelForCausalLM, str(folder))
    assert str(weights) in str(e.value) and "llmclf fetch --rebuild" in str(e.value)
    weights.write_bytes(b"\xff" * 64)  # no header at all
    with pytest.raises(ValueError, match="model.safetensors"):
        load_pretrained(AutoModelForCausalLM, str(folder))


# ---- 6. clear messages at the edges ---------------------------------------------------------------------------

def test_a_yaml_error_names_file_line_and_column_without_a_traceback(tmp_path, capsys):
    from llmclf.cli import main

    study = tmp_path / "bad.yaml"
    study.write_text("runs:\n  - notebook: 30_baselines\n    params: {baseline: tfidf\n")
    with pytest.raises(ConfigError, match=rf"{study}:\d+:\d+: YAML syntax error"):
        load_study(study)
    assert main(["run", str(study), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{study}:" in err and "Traceback" not in err


def test_ctrl_c_records_the_run_as_interrupted_prints_the_summary_and_exits_130(tmp_path, tiny_csv, monkeypatch,
                                                                              capsys):
    import papermill

    from llmclf.cli import main
    from llmclf.study.record import read_record

    study = tmp_path / "s.yaml"
    study.write_text(f'defaults: {{dataset: "{tiny_csv / "single.csv"}"}}\n'
                     "runs:\n  - notebook: 30_baselines\n    params: {baseline: tfidf}\n    seeds: [0, 1]\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    assert main(["run", str(study), "--runs-root", str(tmp_path / "runs")]) == 130
    out = capsys.readouterr()
    assert "interrupted (Ctrl-C)" in out.out and "1 interrupted, 1 not started" in out.out and "Traceback" not in out.err
    (run_dir,) = [p for p in (tmp_path / "runs" / "s").iterdir()]  # the second run never started
    record = read_record(run_dir)
    assert record["status"] == "interrupted" and record["run_id"] == run_dir.name


# ---- 8. names that become paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../outside", "a/b", ".hidden", "x" * 101, "name with space", "<script>"])
def test_unsafe_study_names_are_refused(tmp_path, name):
    study = tmp_path / "s.yaml"
    study.write_text(json.dumps({"name": name, "runs": [{"notebook": "30_baselines"}]}))
    with pytest.raises(ConfigError, match="not a safe name"):
        load_study(study)


def test_unsafe_task_names_are_refused_and_a_numeric_name_works(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(json.dumps({"tasks": {"../up": {}}, "runs": [{"notebook": "30_baselines"}]}))
    with pytest.raises(ConfigError, match="task name '../up' is not a safe name"):
        load_study(study)
    study.write_text("name: 2024\nruns:\n  - notebook: 30_baselines\n")
    assert {s.study for s in load_study(study)} == {"2024"}


def test_a_run_folder_outside_the_runs_folder_is_refused(tmp_path):
    from llmclf.study.runner import run_dir_for

    study = tmp_path / "s.yaml"
    study.write_text("runs:\n  - notebook: 30_baselines\n")
    (spec,) = load_study(study)
    spec.study = "../../elsewhere"
    with pytest.raises(ConfigError, match="outside the runs folder"):
        run_dir_for(spec, tmp_path / "runs")


# ---- 3 and 10. complete records in one write; the data's content decides what is done ------------------------

@pytest.fixture
def fake_notebooks(monkeypatch):
    """papermill replaced by what a notebook does at its end: save_run's one write, identity included."""
    import papermill

    from llmclf.study.record import RECORD_FILE, run_identity, write_json_atomic

    executed = []

    def execute_notebook(src, dst, parameters, **kwargs):
        run_dir = parameters["run_dir"]
        executed.append(run_dir)
        write_json_atomic(f"{run_dir}/{RECORD_FILE}", {"status": "done", **run_identity(run_dir),
                                                       "metrics": {"f1_micro": 1.0}})

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    return executed


def test_the_done_record_is_complete_in_the_notebook_s_single_write(tmp_path, tiny_csv, fake_notebooks):
    from llmclf.study.record import read_record
    from llmclf.study.runner import run_study

    study = tmp_path / "s.yaml"
    study.write_text(f'defaults: {{dataset: "{tiny_csv / "single.csv"}"}}\n'
                     "runs:\n  - notebook: 30_baselines\n    label: tfidf\n    params: {baseline: tfidf}\n")
    before = time.time()
    (outcome,) = run_study(study, tmp_path / "runs")
    whole_study = time.time() - before
    record = read_record(tmp_path / "runs" / "s" / outcome.spec.run_id)
    # written once, by the notebook, with what the runner used to add in a second write
    assert record["run_id"] == outcome.spec.run_id and record["label"] == "tfidf" and record["study"] == "s"
    assert 0 < record["wall_seconds"] < whole_study  # the run's own time, from its start to the notebook's write
    assert record["data_fingerprint"] and record["started_at"]


def test_a_run_whose_data_changed_is_not_skipped_as_done(tmp_path, fake_notebooks):
    from llmclf.study.runner import run_study

    data = tmp_path / "d.csv"
    pd.DataFrame(synthetic_rows()).to_csv(data, index=False)
    study = tmp_path / "s.yaml"
    study.write_text(f'defaults: {{dataset: "{data}"}}\n'
                     "runs:\n  - notebook: 30_baselines\n    params: {baseline: tfidf}\n    seeds: [0, 1]\n")
    assert [o.status for o in run_study(study, tmp_path / "runs")] == ["done", "done"]
    assert [o.status for o in run_study(study, tmp_path / "runs")] == ["skipped", "skipped"]
    rows = synthetic_rows()
    rows[0]["label"] = "mechanics"  # edited in place: same name, same parameters, other data
    pd.DataFrame(rows).to_csv(data, index=False)
    again = run_study(study, tmp_path / "runs")
    assert [o.status for o in again] == ["done", "done"] and "data changed" in again[0].error
    assert len(fake_notebooks) == 4
    assert [o.status for o in run_study(study, tmp_path / "runs")] == ["skipped", "skipped"]


def test_the_report_marks_a_run_stale_when_its_data_changed(tmp_path, fake_notebooks):
    from llmclf.analysis.report import load_records, notes_html
    from llmclf.study.runner import run_study

    data = tmp_path / "d.csv"
    pd.DataFrame(synthetic_rows()).to_csv(data, index=False)
    study = tmp_path / "s.yaml"
    study.write_text(f'defaults: {{dataset: "{data}"}}\nruns:\n  - notebook: 30_baselines\n')
    (outcome,) = run_study(study, tmp_path / "runs")
    record_path = tmp_path / "runs" / "s" / outcome.spec.run_id / "record.json"
    record = json.loads(record_path.read_text())
    record["params"] = outcome.spec.params  # what a real notebook records
    record_path.write_text(json.dumps(record))
    assert list(load_records("s", tmp_path / "runs").stale) == [""]
    data.write_text(data.read_text() + "extra,new text here,chemistry\n")
    records = load_records("s", tmp_path / "runs")
    assert list(records.stale) == ["data changed since"] and "stale" in notes_html(records)


def test_the_report_marks_a_run_stale_when_its_code_changed(tmp_path):
    from llmclf.analysis.report import load_records
    from llmclf.version import code_version

    for run_id, version in [("30_baselines-000000000001", code_version()), ("30_baselines-000000000002", "0+old")]:
        folder = tmp_path / "runs" / "s" / run_id
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps({"status": "done", "run_id": run_id, "notebook": "30_baselines",
                                                        "provenance": {"code_version": version}}))
    stale = dict(zip(*load_records("s", tmp_path / "runs")[["run_id", "stale"]].T.values))
    assert stale == {"30_baselines-000000000001": "", "30_baselines-000000000002": "code changed since (0+old)"}


def test_llmclf_report_expands_the_study_file(tmp_path, monkeypatch):
    from llmclf.cli import _study_runs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "mine.yaml").write_text("description: my <b>study</b>\nruns:\n  - notebook: 30_baselines\n"
                                                   "    label: tfidf\n    seeds: [0, 1]\n")
    name, runs = _study_runs("mine")
    assert name == "mine" and runs["description"] == "my <b>study</b>" and len(runs["runs"]) == 2
    assert {r["label"] for r in runs["runs"].values()} == {"tfidf"}
    assert _study_runs("params/mine.yaml")[1]["runs"] == runs["runs"]
    assert _study_runs("no-file") == ("no-file", None)  # then every record is reported, with a warning


def test_a_study_named_after_its_file_gets_a_slug(tmp_path):
    study = tmp_path / "my study {v2}.yaml"
    study.write_text("runs:\n  - notebook: 30_baselines\n")
    assert {s.study for s in load_study(study)} == {"my-study-v2-"}


def test_tampered_cached_embeddings_are_not_used(tmp_path, monkeypatch, capsys):
    """Issue 12.4, for the frozen baseline's embedding cache: a modified file is computed again, never read."""
    import numpy as np

    from llmclf.approaches.frozen import embedding_cache_path, load_embeddings, save_embeddings

    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path))
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_embeddings("k", emb, {"model": "m"})
    np.testing.assert_array_equal(load_embeddings("k", 3)[0], emb)
    path = embedding_cache_path("k")
    with np.load(path) as f:
        parts = {k: f[k] for k in f.files}
    parts["embeddings"] = parts["embeddings"] + 1  # tampered, checksum kept
    with open(path, "wb") as f:
        np.savez(f, **parts)
    assert load_embeddings("k", 3) is None and "do not match their checksum" in capsys.readouterr().out
