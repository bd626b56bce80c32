"""The command line: each command's success and its errors, and reruns on purpose (--force, --rerun)."""

import json

import pytest

from llmclf.cli import main
from llmclf.study.record import RECORD_FILE, read_record


def test_params_prints_every_parameter_with_its_help(capsys):
    assert main(["params", "30_baselines"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("BaselineConfig:") and "c_values" in out and "Inverse regularization" in out


def test_params_of_an_unknown_notebook_names_the_known_ones(capsys):
    assert main(["params", "11_nothing"]) == 2
    assert "10_embedding_head" in capsys.readouterr().err


def test_fetch_list_and_an_unknown_name(capsys):
    assert main(["fetch", "--list"]) == 0
    assert "smollm2-135m" in capsys.readouterr().out
    assert main(["fetch", "smollm3"]) == 2  # refused before anything is downloaded
    err = capsys.readouterr().err
    assert "unknown artifact(s) ['smollm3']" in err and "smollm2-135m" in err


def test_run_and_report_errors(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.yaml"), "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", "nothing", "--runs-root", str(tmp_path)]) == 2
    assert "no runs for study 'nothing'" in capsys.readouterr().err


@pytest.fixture
def study(tmp_path, tiny_csv):
    path = tmp_path / "cli.yaml"
    path.write_text(f"""
defaults: {{dataset: "{tiny_csv / 'single.csv'}"}}
runs:
  - notebook: 30_baselines
    label: tfidf
    params: {{baseline: tfidf, c_values: [1.0]}}
  - notebook: 30_baselines
    label: broken
    params: {{baseline: tfidf, label_field: no_such_column}}
""")
    return path


def _finished(tmp_path):
    return {p.parent.name: json.loads(p.read_text())["finished_at"]
            for p in (tmp_path / "runs" / "cli").glob(f"*/{RECORD_FILE}")}


def test_dry_run_reads_the_data_and_refuses_a_missing_column(study, capsys):
    assert main(["run", str(study), "--dry-run"]) == 2
    assert "no column 'no_such_column'" in capsys.readouterr().err


def test_force_and_rerun(study, tmp_path, capsys):
    runs = ["run", str(study), "--runs-root", str(tmp_path / "runs")]
    assert main(runs) == 1  # one run failed: the exit status says so
    (done,) = [d for d in (tmp_path / "runs" / "cli").iterdir() if read_record(d)["status"] == "done"]
    first = _finished(tmp_path)

    assert main([*runs, "--rerun", "failed"]) == 1  # only the failed run, again
    assert "0 done, 0 skipped (already done), 1 failed" in capsys.readouterr().out
    assert _finished(tmp_path)[done.name] == first[done.name]

    # a record made by other code is stale: --rerun stale runs it again, a plain run does not
    only = [*runs, "--only", "tfidf"]
    record = read_record(done)
    record["provenance"]["code_version"] = "0.0.0+old"
    (done / RECORD_FILE).write_text(json.dumps(record))
    assert main(only) == 0 and read_record(done)["provenance"]["code_version"] == "0.0.0+old"
    assert main([*only, "--rerun", "stale"]) == 0
    assert read_record(done)["provenance"]["code_version"] != "0.0.0+old"

    (done / "predictions.parquet").unlink()  # --force runs a done run again: its outputs come back
    assert main([*only, "--force"]) == 0
    assert (done / "predictions.parquet").exists() and read_record(done)["status"] == "done"
