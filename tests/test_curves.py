"""Learning curves (issue 21): tasks that differ only in training size, read as one curve."""

import json
import shutil
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from fixtures.synthetic_study import write_synthetic_study
from llmclf.analysis import curves, report, verdict

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """The synthetic study's news task at 200 training examples, and a copy of it called news-800 at 800 where the
    encoder has become right on every test example (so it leads there)."""
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_study(root, "s")
    for record_path in sorted((root / "s").glob("*/record.json")):
        record = json.loads(record_path.read_text())
        if (record.get("task") or {}).get("name") != "news":
            continue
        new = record_path.parent.with_name(record_path.parent.name + "-800")
        shutil.copytree(record_path.parent, new)
        record.update(run_id=new.name)
        record["task"] = {**record["task"], "key": "news-800", "sizes": {**record["task"]["sizes"], "train": 800}}
        (new / "record.json").write_text(json.dumps(record))
        if record["label"] == "encoder":
            frame = pd.read_parquet(new / "predictions.parquet")
            for c in [c for c in frame.columns if c.startswith("y:")]:
                frame["p:" + c[2:]] = frame[c].astype(float) * 0.9 + 0.025
            frame.to_parquet(new / "predictions.parquet", index=False)
    return verdict.analyze(report.load_records("s", root), n_resamples=200)


def test_tasks_on_one_test_set_at_two_sizes_make_one_curve(grown):
    c = curves.learning_curves(grown)
    assert set(c.task) == {"news", "news-800"} and sorted(c.n_train.unique()) == [200, 800]
    assert "patents" not in set(c.task)  # another test set: no curve with it
    encoder = c[c.configuration == "encoder"].set_index("n_train")
    assert encoder.loc[800, "f1_micro"] == 1.0 and encoder.loc[200, "f1_micro"] < 1.0
    table = grown.tasks["news"].table.set_index("configuration")
    assert encoder.loc[200, "f1_micro low"] == table.loc["encoder", "f1_micro low"]  # the task's own interval


def test_the_reading_names_where_the_leader_changes(grown):
    lines = curves.curve_lines(curves.learning_curves(grown), grown, n_resamples=200)
    assert lines[0].startswith("n = 200 training examples: embedding head") and lines[1].startswith(
        "n = 800 training examples: encoder 1.000")
    change = next(line for line in lines if line.startswith("The leader changes"))
    assert "between n = 200 and n = 800: from embedding head to encoder" in change
    assert "at n = 800, encoder − embedding head = +" in change
    assert len(curves.plot_learning_curves(curves.learning_curves(grown))) == 1


def test_no_curve_without_two_sizes(tmp_path):
    write_synthetic_study(tmp_path, "s")
    a = verdict.analyze(report.load_records("s", tmp_path), n_resamples=100)
    assert curves.learning_curves(a).empty and curves.curve_lines(curves.learning_curves(a), a) == []
