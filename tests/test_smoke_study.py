"""A whole study through the real papermill path on tiny random models: records, skip-on-rerun, a failing run,
and the report. Asserts on the values the notebooks recorded, as microsoft/recommenders' notebook tests do."""

import json

import pytest

from llmclf.study.record import read_record
from llmclf.study.runner import run_study

from conftest import pin_f1

# recorded by these runs (dtype float32): F1 micro first on an Intel Xeon with AMX, all of them the same on an AMD
# EPYC with AVX512_BF16 and on that EPYC held to AVX2 kernels. Each pair may move by one flipped test prediction
# (conftest.PIN_EXAMPLES, pin_f1): float32 kernels round differently across CPU classes.
PINNED = {
    'head (quantization=none) seed 0 f1_micro': 1.0,
    'head (quantization=none) seed 0 f1_macro': 1.0,
    'head (quantization=none) seed 1 f1_micro': 1.0,
    'head (quantization=none) seed 1 f1_macro': 1.0,
}
# Exact, whatever the CPU: the split of the 36 fixture rows (split_seed 0), the head's size over the frozen tiny
# Llama, and its steps (24 examples, batches of 8, 2 epochs).
SIZES = {"train": 24, "validation": 4, "test": 8}
PARAMETERS = (8384, 110912)  # (trainable, total)
STEPS = [1, 2, 3, 4, 5, 6]
TEXT_TOKENS = 8  # every fixture text is 6 topic words and "the device", one token a word in the tiny vocabulary


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_llama, tiny_csv):
    root = tmp_path_factory.mktemp("smoke")
    study = root / "smoke.yaml"
    study.write_text(f"""
description: smoke test on a tiny random Llama
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 32, dtype: float32}}
runs:
  - notebook: 10_embedding_head
    label: head
    params: {{model: "{tiny_llama}", epochs: 2.0, learning_rate: 0.005}}
    grid: {{quantization: [none]}}
    seeds: [0, 1]
  - notebook: 10_embedding_head
    label: broken data
    params: {{model: "{tiny_llama}", label_field: no_such_column}}
  - notebook: 00_data
    label: data exploration
    params: {{tokenizer_model: "{tiny_llama}", max_length_candidates: [4, 32]}}
""")
    outcomes = run_study(study, root / "runs")
    return root, study, outcomes


def test_runs_finish_and_record_what_they_measured(smoke):
    root, _, outcomes = smoke
    done = [o for o in outcomes if o.status == "done" and o.spec.notebook != "00_data"]
    assert len(done) == 2
    for o in done:
        run_dir = root / "runs" / "smoke" / o.spec.run_id
        record = read_record(run_dir)
        assert record["status"] == "done" and record["run_id"] == o.spec.run_id
        assert record["params"]["seed"] == o.spec.params["seed"]
        m = record["metrics"]
        pin_f1(PINNED, f"{o.spec.label} seed {o.spec.params['seed']}", run_dir)
        assert set(m["f1_per_label"]) == {"chemistry", "electricity", "mechanics"}
        assert record["task"]["sizes"] == SIZES and m["n"] == SIZES["test"]
        assert record["throughput"]["train_examples_per_second"] > 0
        assert record["throughput"]["inference_examples_per_second"] > 0
        assert (record["parameters"]["trainable"], record["parameters"]["total"]) == PARAMETERS
        assert record["memory"]["peak_rss_mb"] > 0
        prov = record["provenance"]
        assert prov["model_checksum"] and prov["data_checksum"] and prov["packages"]["transformers"]
        assert "commit" in prov["git"] and prov["machine"]["cpu"]
        assert [s["step"] for s in record["loss_curve"]] == STEPS
        assert (run_dir / "notebook.ipynb").exists() and (run_dir / "predictions.parquet").exists()
        assert json.loads((run_dir / "params.json").read_text())["run_id"] == o.spec.run_id
    # different seeds are different runs with different ids
    assert len({o.spec.run_id for o in done}) == 2


def test_predictions_hold_test_probabilities(smoke):
    import numpy as np
    import pandas as pd

    root, _, outcomes = smoke
    o = next(o for o in outcomes if o.status == "done")
    frame = pd.read_parquet(root / "runs" / "smoke" / o.spec.run_id / "predictions.parquet")
    p = frame[[c for c in frame.columns if c.startswith("p:")]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    assert len(frame) == read_record(root / "runs" / "smoke" / o.spec.run_id)["metrics"]["n"]


def test_a_failed_run_is_recorded_with_its_partial_notebook(smoke):
    root, _, outcomes = smoke
    (failed,) = [o for o in outcomes if o.status == "failed"]
    run_dir = root / "runs" / "smoke" / failed.spec.run_id
    record = read_record(run_dir)
    assert record["status"] == "failed"
    assert "no_such_column" in record["error"]
    assert (run_dir / "notebook.ipynb").exists()


def test_rerun_skips_done_runs_and_retries_failed_ones(smoke):
    root, study, first = smoke
    again = run_study(study, root / "runs")
    assert sorted(o.status for o in again) == ["failed", "skipped", "skipped", "skipped"]


def test_report_renders_with_links_to_every_run(smoke):
    from llmclf.analysis.report import render_report

    root, _, outcomes = smoke
    stale = root / "reports" / "smoke" / "runs" / "10_embedding_head-000000000000.html"  # a run no longer there
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("old")
    index = render_report("smoke", root / "runs", root / "reports")
    assert not stale.exists()
    page = index.read_text()
    assert "head" in page and "broken data" in page and "F1" in page
    for o in outcomes:
        assert f"runs/{o.spec.run_id}.html" in page
        assert (root / "reports" / "smoke" / "runs" / f"{o.spec.run_id}.html").exists()
    assert "<img" in page or "image/png" in page  # the seaborn plots made it into the page


def test_report_shows_the_data_exploration_apart_from_the_results(smoke):
    from llmclf.analysis.report import load_explorations, load_records

    root, _, outcomes = smoke
    (explore,) = [o for o in outcomes if o.spec.notebook == "00_data"]
    assert explore.status == "done", explore.error
    records = load_records("smoke", root / "runs")
    assert "data exploration" not in set(records.label)  # no row of empty metrics in the results
    (row,) = load_explorations("smoke", root / "runs").itertuples(index=False)
    record = read_record(root / "runs" / "smoke" / explore.spec.run_id)
    assert (row.train, row.labels, row.tokenizer) == (record["task"]["sizes"]["train"], 3, explore.spec.params["tokenizer_model"])
    table = load_explorations("smoke", root / "runs")
    assert table["cut at 4"].iloc[0] == record["data_stats"]["truncated_share"]["4"] == 1.0  # 8-token texts
    assert table["cut at 32"].iloc[0] == record["data_stats"]["truncated_share"]["32"] == 0.0
    quantiles = record["data_stats"]["token_length_quantiles"]
    assert table["tokens p50"].iloc[0] == quantiles["p50"] == quantiles["p99"] == TEXT_TOKENS
    assert table["git_commit"].iloc[0] == record["provenance"]["git"]["commit"]  # its provenance, for the report
