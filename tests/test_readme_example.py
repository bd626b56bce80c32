"""README's "Your own data" example, exactly as written, on a small CSV: a train/test split column, a study with two
tasks on one file, `llmclf run --dry-run`, `llmclf run`, `llmclf report` (issue 9). Its records also show that a
study without caps runs on the full splits, with a validation split carved from train, each task apart."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmclf.cli import main
from llmclf.study.record import read_record

README = Path(__file__).resolve().parent.parent / "README.md"
TOPICS = {"economy": "bank rates inflation market budget trade growth",
          "sport": "match cup goal team season coach league",
          "science": "research cells climate physics space experiment data"}


def readme_study() -> str:
    text = README.read_text()
    marker = text.index("<!-- your-own-data-study -->")
    return re.search(r"```yaml\n(.*?)```", text[marker:], re.S).group(1)


def news_csv(path: Path, per_topic: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for i in range(per_topic):
            rows.append({"title": " ".join(rng.choice(vocab, 2)), "body": " ".join(rng.choice(vocab, 8)) + " today",
                         "topic": topic, "split": "test" if i % 5 == 0 else "train"})
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's project: data/news.csv, params/news.yaml from the README; the commands run from the project."""
    import os

    root = tmp_path_factory.mktemp("project")
    news_csv(root / "data" / "news.csv")
    (root / "params").mkdir()
    (root / "params" / "news.yaml").write_text(readme_study())
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def ran(project):
    import sys
    from io import StringIO

    out, err = StringIO(), StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        dry = main(["run", "params/news.yaml", "--dry-run"])
        dry_out = out.getvalue()
        code = main(["run", "params/news.yaml"])
        run_out = out.getvalue()[len(dry_out):]
        report = main(["report", "news"])
    finally:
        sys.stdout, sys.stderr = old
    return {"dry": (dry, dry_out), "run": (code, run_out, err.getvalue()), "report": report}


def test_dry_run_shows_tasks_sizes_model_and_dtype(ran):
    code, out = ran["dry"]
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("30_baselines-")]
    assert len(lines) == 4
    # 240 train rows in the file: 24 carved out as validation; 'small' caps train at 200; the full test set
    assert sum("all " in line and "train 216 / val 24 / test 60" in line for line in lines) == 2
    assert sum("small " in line and "train 200 / val 24 / test 60" in line for line in lines) == 2
    assert all("model (none: tfidf)" in line and "dtype -" in line for line in lines)  # TF-IDF runs no model


def test_the_study_runs_on_the_full_data_with_validation_carved_from_train(ran, project):
    code, out, err = ran["run"]
    assert code == 0, out + err
    records = [json.loads(p.read_text()) for p in sorted((project / "runs" / "news").glob("*/record.json"))]
    assert len(records) == 4 and all(r["status"] == "done" for r in records)
    for r in records:
        sizes = r["task"]["sizes"]
        assert r["task"]["key"] in ("all", "small")
        assert sizes == {"train": 216 if r["task"]["key"] == "all" else 200, "validation": 24, "test": 60}
        assert r["params"]["max_train"] == (None if r["task"]["key"] == "all" else 200)
        assert r["params"]["max_test"] is None and r["params"]["max_eval"] is None  # no silent caps
        assert "carved from the source's train split" in r["task"]["split_method"]["validation"]
        assert r["metrics"]["n"] == 60
        assert r["params"]["dataset"] == str((project / "data" / "news.csv").resolve())
    # the run summary repeats the sizes
    assert "task all: train 216 / val 24 / test 60" in out and "task small: train 200 / val 24 / test 60" in out


def test_each_run_reported_its_progress(ran, project):
    folders = sorted((project / "runs" / "news").glob("30_baselines-*"))
    assert len(folders) == 4
    for folder in folders:
        state = json.loads((folder / "progress.json").read_text())
        assert state["phase"] and state["step"] == state["total"] and state["eta"] == 0
        # the last phase's time, within the run's (the notebook writes its record after the last phase)
        assert state["elapsed"] <= json.loads((folder / "record.json").read_text())["wall_seconds"]


def test_the_report_keeps_the_two_tasks_apart(ran, project):
    from llmclf.analysis.report import load_records, summarize

    assert ran["report"] == 0
    page = (project / "reports" / "news" / "index.html").read_text()
    assert "Task <code>all</code>" in page and "Task <code>small</code>" in page
    assert "carved from the source" in page  # the report says how the splits were made
    records = load_records("news", project / "runs")
    assert sorted(set(records.task)) == ["all", "small"]
    table = summarize(records)
    assert len(table) == 4 and set(table.seeds) == {1}
    assert records.splits.str.contains("carved from").all()
