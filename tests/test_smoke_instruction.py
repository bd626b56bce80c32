"""Instruction tuning through the real papermill path on a tiny random Llama: one training shared by the three
predict modes (the adapter cache), a zero-shot run, and the values the notebooks recorded."""

import os

import numpy as np
import pytest

from llmclf.study.record import read_record
from llmclf.study.runner import run_study

from conftest import TOPICS, pin, pin_f1

# recorded by these runs (dtype float32): F1 and invalid rates first on an Intel Xeon with AMX, all of them the same
# on an AMD EPYC with AVX512_BF16 and on that EPYC held to AVX2 kernels. Each F1 pair may move by one flipped test
# prediction (conftest.PIN_EXAMPLES, pin_f1), a rate by 1/8 and the generated tokens per example by max_new_tokens / 8
# (conftest.pin): float32 kernels round differently across CPU classes. Generate mode on the tiny random model names
# no label (one token, then it stops; zero-shot runs to max_new_tokens); constrained and score modes pick mechanics
# for all 8 test texts (2 are).
PINNED = {
    'instruction (predict_mode=generate) f1_micro': 0.0,
    'instruction (predict_mode=generate) f1_macro': 0.0,
    'instruction (predict_mode=generate) invalid_output_rate': 1.0,
    'instruction (predict_mode=generate) generated_tokens_per_example': 1.0,
    'instruction (predict_mode=constrained) f1_micro': 0.25,
    'instruction (predict_mode=constrained) f1_macro': 0.13333333333333333,
    'instruction (predict_mode=constrained) invalid_output_rate': 0.0,
    'instruction (predict_mode=constrained) generated_tokens_per_example': 2.0,
    'instruction (predict_mode=score) f1_micro': 0.25,
    'instruction (predict_mode=score) f1_macro': 0.13333333333333333,
    'instruction (predict_mode=score) invalid_output_rate': 0.0,
    'instruction (predict_mode=score) generated_tokens_per_example': 0.0,
    'zero-shot f1_micro': 0.0,
    'zero-shot f1_macro': 0.0,
    'zero-shot invalid_output_rate': 1.0,
    'zero-shot generated_tokens_per_example': 4.0,
}
MAX_NEW_TOKENS = 4
# Exact, whatever the CPU: the split of the 36 fixture rows, the LoRA adapter's size on the tiny Llama (the base
# alone is the zero-shot run's total) and its steps (24 examples, batches of 8, 2 epochs).
SIZES = {"train": 24, "validation": 4, "test": 8}
BASE_PARAMETERS, ADAPTER_PARAMETERS = 122816, 8192
STEPS = [1, 2, 3, 4, 5, 6]

MODES = ["generate", "constrained", "score"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_csv):
    from llmclf.models.registry import tiny_causal_lm

    root = tmp_path_factory.mktemp("smoke-instruction")
    words = " ".join(TOPICS.values()).split() + sorted(TOPICS)  # the labels must be words the tokenizer knows
    model = tiny_causal_lm(root / "label-llama", words=words)
    study = root / "smoke.yaml"
    study.write_text(f"""
description: instruction tuning smoke test on a tiny random Llama
defaults: {{dataset: "{tiny_csv / 'single.csv'}", max_length: 64, model: "{model}", dtype: float32}}
runs:
  - notebook: 20_instruction_tuning
    label: instruction
    params: {{epochs: 2.0, learning_rate: 0.005, max_new_tokens: {MAX_NEW_TOKENS}}}
    grid: {{predict_mode: {MODES}}}
  - notebook: 20_instruction_tuning
    label: zero-shot
    params: {{zero_shot: true, predict_mode: generate, max_new_tokens: {MAX_NEW_TOKENS}}}
""")
    # Kernels of tiny models gain nothing from threads; on a busy 2-core machine OpenMP spinning slows them down.
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        outcomes = run_study(study, root / "runs")
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = before
    records = {o.spec.label: read_record(root / "runs" / "smoke" / o.spec.run_id) for o in outcomes}
    return root, outcomes, records


def test_every_run_finishes_and_records_its_prediction_stats(smoke):
    root, outcomes, records = smoke
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    for label, r in records.items():
        assert r["status"] == "done" and r["notebook"] == "20_instruction_tuning"
        m = r["metrics"]
        pin_f1(PINNED, label, root / "runs" / "smoke" / r["run_id"])
        assert set(m["f1_per_label"]) == set(TOPICS) and r["task"]["sizes"] == SIZES and m["n"] == SIZES["test"]
        assert r["predict_mode"] == r["params"]["predict_mode"]
        pin(PINNED, f"{label} invalid_output_rate", r["invalid_output_rate"], m["n"])
        pin(PINNED, f"{label} generated_tokens_per_example", r["generated_tokens_per_example"], m["n"],
            per_example=MAX_NEW_TOKENS)
        assert r["throughput"]["inference_examples_per_second"] > 0
    for mode in ("constrained", "score"):
        assert records[f"instruction (predict_mode={mode})"]["invalid_output_rate"] == 0.0
    assert records["instruction (predict_mode=score)"]["generated_tokens_per_example"] == 0.0  # it generates nothing


def test_the_three_modes_share_one_training(smoke):
    root, _, records = smoke
    runs = [records[f"instruction (predict_mode={m})"] for m in MODES]
    assert [r["adapter_reused"] for r in runs] == [False, True, True]
    assert len({r["adapter_key"] for r in runs}) == 1
    assert (root / "runs" / "smoke" / "_adapters" / runs[0]["adapter_key"] / "train_info.json").exists()
    # the reusing runs record the original training time (of the first run's fit: within its last steps)
    assert runs[1]["timings"]["train_seconds"] == runs[2]["timings"]["train_seconds"]
    assert runs[1]["timings"]["train_seconds"] == pytest.approx(runs[0]["timings"]["train_seconds"], rel=0.05, abs=0.2)
    assert all("adapter_load_seconds" in r["timings"] for r in runs[1:])
    assert all(r["loss_curve"] == runs[0]["loss_curve"] for r in runs)
    assert [s["step"] for s in runs[0]["loss_curve"]] == STEPS
    assert all(r["parameters"]["trainable"] == ADAPTER_PARAMETERS for r in runs)
    assert all(r["parameters"]["total"] == BASE_PARAMETERS + ADAPTER_PARAMETERS for r in runs)


def test_zero_shot_trains_nothing(smoke):
    _, _, records = smoke
    r = records["zero-shot"]
    assert (r["parameters"]["trainable"], r["parameters"]["total"]) == (0, BASE_PARAMETERS)
    assert r["params"]["zero_shot"] is True
    assert not r.get("loss_curve") and r["adapter_reused"] is False


def test_score_mode_predictions_are_probabilities_and_the_report_ignores_the_adapters(smoke):
    import pandas as pd

    from llmclf.analysis.report import load_records

    root, outcomes, _ = smoke
    run = next(o for o in outcomes if o.spec.params["predict_mode"] == "score" and not o.spec.params["zero_shot"])
    frame = pd.read_parquet(root / "runs" / "smoke" / run.spec.run_id / "predictions.parquet")
    p = frame[[c for c in frame.columns if c.startswith("p:")]].to_numpy()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-4)
    table = load_records("smoke", root / "runs")
    assert len(table) == 4 and set(table.status) == {"done"}
