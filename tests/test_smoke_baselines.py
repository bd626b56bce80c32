"""Every baseline through the real papermill path (notebooks/30_baselines.ipynb) on tiny random models, asserting on
the values the notebook recorded, as microsoft/recommenders' notebook tests do. The frozen baseline runs twice
(two seeds): the second run must read its embeddings from the cache the first one wrote."""

import pytest

from llmclf.study.record import read_record
from llmclf.study.runner import run_study

from conftest import pin_f1

# recorded by these runs (dtype float32): F1 micro first on an Intel Xeon with AMX, all of them the same on an AMD
# EPYC with AVX512_BF16 and on that EPYC held to AVX2 kernels. Each pair may move by one flipped test prediction
# (conftest.PIN_EXAMPLES, pin_f1): float32 kernels round differently across CPU classes. The encoder (3 steps at
# lr 1e-3) has learned nothing yet: it predicts chemistry for all 8 test texts (3 are chemistry).
PINNED = {
    'encoder seed 0 f1_micro': 0.375,
    'encoder seed 0 f1_macro': 0.1818181818181818,
    'frozen seed 0 f1_micro': 1.0,
    'frozen seed 0 f1_macro': 1.0,
    'frozen seed 1 f1_micro': 1.0,
    'frozen seed 1 f1_macro': 1.0,
    'tfidf seed 0 f1_micro': 1.0,
    'tfidf seed 0 f1_macro': 1.0,
}
# Exact, whatever the CPU: the split of the 36 fixture rows (split_seed 0), the models' sizes and the features.
SIZES = {"train": 24, "validation": 4, "test": 8}
PARAMETERS = {  # (trainable, total)
    "encoder": (44771, 44771),  # the tiny BERT and its head, all fine-tuned
    "frozen": (195, 102531),  # a logistic regression on 64 pooled features (3 x 64 + 3) over the frozen tiny Llama
    "tfidf": (387, 387),  # a logistic regression on the 128 TF-IDF features of the fixture's words (3 x 128 + 3)
}
N_FEATURES = {"frozen": 64, "tfidf": 128}
# every C fits validation perfectly (F1 1.0), so the lowest log-loss picks the largest C (each step down the grid at
# least doubles the log-loss: a choice no kernel's rounding changes)
CHOSEN_C = {"frozen": 1000.0, "tfidf": 10.0}

C_VALUES = [0.1, 1.0, 10.0]  # tfidf's; frozen runs with the notebook's default grid
LABELS = {"chemistry", "electricity", "mechanics"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_bert, tiny_llama, tiny_csv):
    root = tmp_path_factory.mktemp("smoke_baselines")
    study = root / "baselines.yaml"
    study.write_text(f"""
description: smoke test of the baselines on tiny random models
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 32, dtype: float32}}
runs:
  - notebook: 30_baselines
    label: encoder
    params: {{baseline: encoder, model: "{tiny_bert}", learning_rate: 0.001}}
  - notebook: 30_baselines
    label: frozen
    params: {{baseline: frozen, model: "{tiny_llama}", pooling: last}}
    seeds: [0, 1]
  - notebook: 30_baselines
    label: tfidf
    params: {{baseline: tfidf, c_values: {C_VALUES}}}
""")
    # papermill's kernels inherit os.environ: the embedding cache goes to a folder of this test's own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMCLF_CACHE", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        outcomes = run_study(study, root / "runs")
    records = {}
    for o in outcomes:
        records.setdefault(o.spec.label, []).append(read_record(root / "runs" / "baselines" / o.spec.run_id))
    return root, outcomes, records


def test_every_baseline_run_is_done_and_recorded(smoke):
    root, outcomes, records = smoke
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    for label, runs in records.items():
        for r in runs:
            assert r["status"] == "done" and r["notebook"] == "30_baselines" and r["params"]["baseline"] == label
            m = r["metrics"]
            run_dir = root / "runs" / "baselines" / r["run_id"]
            pin_f1(PINNED, f"{label} seed {r['params']['seed']}", run_dir)
            assert set(m["f1_per_label"]) == LABELS
            assert r["task"]["sizes"] == SIZES and m["n"] == SIZES["test"]
            assert r["throughput"]["train_examples_per_second"] > 0
            assert r["throughput"]["inference_examples_per_second"] > 0
            assert r["provenance"]["data_checksum"]
    # TF-IDF is deterministic: its F1 on the tiny fixture is exact (the topic words separate the classes)
    assert [(r["metrics"]["f1_micro"], r["metrics"]["f1_macro"]) for r in records["tfidf"]] == [(1.0, 1.0)]


def test_parameters_and_model_provenance(smoke):
    root, _, records = smoke
    (encoder,), (tfidf,) = records["encoder"], records["tfidf"]
    for label, runs in records.items():
        for r in runs:
            assert (r["parameters"]["trainable"], r["parameters"]["total"]) == PARAMETERS[label]
    assert [s["step"] for s in encoder["loss_curve"]] == [1, 2, 3]  # 24 examples, batches of 8, one epoch
    assert encoder["provenance"]["model_checksum"]
    assert tfidf["provenance"]["model_checksum"] is None  # no pretrained model
    for frozen in records["frozen"]:
        assert frozen["provenance"]["model_checksum"] not in (None, encoder["provenance"]["model_checksum"])
    import pandas as pd

    from llmclf.analysis.report import load_records

    models = load_records("baselines", root / "runs").set_index("label").model
    assert pd.isna(models["tfidf"]) and not pd.isna(models["encoder"])  # the report names no model for TF-IDF


def test_linear_baselines_record_the_c_chosen_on_validation(smoke):
    _, _, records = smoke
    from llmclf.study.spec import notebook_defaults

    default_grid = notebook_defaults("30_baselines")["c_values"]
    for r in [*records["frozen"], *records["tfidf"]]:
        grid = C_VALUES if r["params"]["baseline"] == "tfidf" else default_grid
        chosen = r["linear_model"]
        assert [s["C"] for s in chosen["validation"]] == grid and chosen["C"] in grid
        best = max(chosen["validation"], key=lambda s: (s["f1_micro"], -s["log_loss"]))
        assert chosen["C"] == best["C"] == CHOSEN_C[r["params"]["baseline"]]
        assert chosen["n_features"] == N_FEATURES[r["params"]["baseline"]]


def test_second_frozen_run_reads_the_embedding_cache(smoke):
    root, _, records = smoke
    first, second = records["frozen"]
    assert (first["params"]["seed"], second["params"]["seed"]) == (0, 1)
    assert first["embedding_cache"] == {"train": "miss", "validation": "miss", "test": "miss"}
    assert second["embedding_cache"] == {"train": "hit", "validation": "hit", "test": "hit"}
    assert second["metrics"]["f1_micro"] == first["metrics"]["f1_micro"]  # the same features, the same model
    assert second["parameters"] == first["parameters"]
    assert len(list((root / "cache" / "embeddings").glob("*.npz"))) == 3  # in the test's cache, not the user's


def test_predictions_hold_test_probabilities(smoke):
    import numpy as np
    import pandas as pd

    root, outcomes, _ = smoke
    for o in outcomes:
        frame = pd.read_parquet(root / "runs" / "baselines" / o.spec.run_id / "predictions.parquet")
        p = frame[[c for c in frame.columns if c.startswith("p:")]].to_numpy()
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
