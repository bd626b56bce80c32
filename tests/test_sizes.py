"""The report's model-size and reading axes (analysis.sizes): which configurations form a line, and what it says."""

import json
from types import SimpleNamespace

import matplotlib
import pandas as pd

from llmclf.analysis import sizes

matplotlib.use("Agg")

BASE = {"dataset": "uspto-10k", "max_train": 320, "learning_rate_grid": [0.002, 0.004], "max_length": 96,
        "long_text": "truncate", "max_chunks": 4, "chunk_stride": 0, "chunk_pooling": "mean"}
CONFIGS = {  # label: (family, run parameters, total parameters, tokens read)
    "head, small": ("embedding head", {"model": "small"}, 135e6, 90.0),
    "head, big": ("embedding head", {"model": "big"}, 270e6, 90.0),
    "head, small, 256 tokens": ("embedding head", {"model": "small", "max_length": 256}, 135e6, 130.0),
    "head, small, windows": ("embedding head", {"model": "small", "long_text": "chunks", "chunk_stride": 16},
                             135e6, 134.0),
    "head, small, 4-bit": ("embedding head", {"model": "small", "quantization": "4bit"}, 135e6, 90.0),
    "head, small, 512 tokens": ("embedding head", {"model": "small", "max_length": 512}, 135e6, 134.0),
    "encoder": ("encoder", {"model": "minilm"}, 22e6, 90.0),
}


def _study(tmp_path):
    rows, table = [], []
    for k, (label, (family, params, total, read)) in enumerate(CONFIGS.items()):
        for seed in (0, 1):
            run_dir = tmp_path / f"run{k}-{seed}"
            run_dir.mkdir()
            (run_dir / "record.json").write_text(json.dumps(
                {"params": {**BASE, **params, "seed": seed, "run_dir": str(run_dir), "learning_rate": 0.002 * (1 + seed)}}))
            rows.append({"task": "t", "label": label, "status": "done", "run_dir": str(run_dir)})
        table.append({"configuration": label, "kind": "configuration", "family": family,
                      "model": params["model"], "total_params": total, "tokens_read": read,
                      "long_text": params.get("long_text", "truncate"), "seeds": 2, "f1_micro": 0.5 + k / 100,
                      "f1_micro low": 0.4, "f1_micro high": 0.6, "train_seconds": 60.0 + k,
                      "infer_ex_per_s": 10.0, "peak_memory_mb": 2000.0})
    table.append({"configuration": "majority class", "kind": "floor", "family": None, "model": "", "seeds": 1})
    analysis = SimpleNamespace(tasks={"t": SimpleNamespace(table=pd.DataFrame(table))})
    return analysis, pd.DataFrame(rows)


def test_a_size_line_joins_configurations_equal_but_for_the_model(tmp_path):
    analysis, records = _study(tmp_path)
    line = sizes.model_sizes(analysis, records)
    assert list(line.configuration) == ["head, small", "head, big"]  # by size; 4-bit, 256 tokens, windows apart
    (words, note) = sizes.size_lines(line)
    assert "small (135M parameters) 0.500" in words and "big (270M parameters) 0.510" in words
    assert "declared contrasts" in note
    assert len(sizes.plot_model_sizes(line)) == 1


def test_a_reading_line_joins_configurations_equal_but_for_how_much_they_read(tmp_path):
    analysis, records = _study(tmp_path)
    line = sizes.reading_lengths(analysis, records)
    # 512 tokens and the windows read as much (every text whole): both stay on the line
    assert list(line.configuration) == ["head, small", "head, small, 256 tokens", "head, small, 512 tokens",
                                        "head, small, windows"]
    assert list(line.long_text) == ["truncate", "truncate", "truncate", "chunks"]
    assert "reads 134 text tokens on average" in sizes.reading_lines(line)[0]
    assert len(sizes.plot_reading_lengths(line)) == 1


def test_no_line_without_two_configurations_that_differ_so(tmp_path):
    analysis, records = _study(tmp_path)
    only = records[records.label.isin(["head, small", "encoder", "head, small, 4-bit"])]
    keep = analysis.tasks["t"].table.configuration.isin(["head, small", "encoder", "head, small, 4-bit"])
    analysis.tasks["t"].table = analysis.tasks["t"].table[keep]
    assert sizes.model_sizes(analysis, only).empty and sizes.reading_lengths(analysis, only).empty
    assert sizes.size_lines(sizes.model_sizes(analysis, only)) == []
