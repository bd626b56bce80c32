"""The deciding report (issue 11) from a synthetic study with every file the report reads, plus old records that
lack them: every section present, text escaped, tidy files beside it, run pages sharing one stylesheet."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures.synthetic_study import write_synthetic_study
from llmclf.analysis import report, tables, verdict
from llmclf.analysis.runs import train_labels
from llmclf.analysis.statistics import holm as statistics_holm

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
SECTIONS = ["Verdict", "Every task by approach family", "Results per configuration", "Which differences are real?",
            "Calibration", "What to look at next", "Provenance", "Every run"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_study(root, "mixed")
    for old in (FIXTURES / "example").iterdir():  # records by older code: no predictions at all
        shutil.copytree(old, root / "mixed" / old.name)
    return root


@pytest.fixture(scope="module")
def analysis(study):
    records = report.load_records("mixed", study)
    return records, verdict.analyze(records, n_resamples=300)


@pytest.fixture(scope="module")
def rendered(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    return report.render_report("mixed", study, out, n_resamples=300)


def test_every_section_renders_and_old_records_are_said_to_lack_predictions(rendered):
    page = rendered.read_text()
    for section in SECTIONS:
        assert section in page, section
    assert "recorded no per-example predictions" in page
    assert "predicts the floor's labels for every text" in page and "Not distinguishable from it" in page
    assert "learned" not in page
    assert "<img" in page or "image/png" in page


def test_text_from_the_data_is_escaped(rendered):
    page = rendered.read_text()
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page  # test texts shown as text
    assert "frozen <b>embeddings</b>" not in page  # a configuration name with markup
    assert "RuntimeError: &lt;out of memory&gt;" in page


def test_tidy_files_sit_beside_the_report(rendered):
    folder = rendered.parent
    results = pd.read_csv(folder / "results.csv")
    assert {"task", "configuration", "seed", "f1_micro", "train_seconds", "load_seconds", "validation_seconds",
            "infer_ex_per_s", "resolved_dtype", "device", "max_length", "truncated_share"} <= set(results.columns)
    assert len(results) == results.run_id.nunique() > 20  # one row a run, old records included
    comparisons = pd.read_csv(folder / "comparisons.csv")
    assert {"task", "family", "configuration_a", "configuration_b", "metric", "difference", "ci_low", "ci_high",
            "p_value", "test", "p_holm", "decision", "n_for_80%_power"} == set(comparisons.columns)
    predictions = pd.read_parquet(folder / "predictions.parquet")
    assert {"run_id", "task", "configuration", "seed", "id", "true", "predicted", "p:R&D", "p:H"} <= set(predictions)
    assert "text" not in predictions  # the texts stay with the runs


def test_run_pages_share_one_stylesheet_and_stay_small(rendered):
    runs = rendered.parent / "runs"
    assert (runs / report.STYLESHEET).stat().st_size > 10_000
    pages = [p for p in runs.glob("*.html")]
    assert pages
    for p in pages:
        text = p.read_text()
        assert "<style" not in text and f'href="{report.STYLESHEET}"' in text
        assert p.stat().st_size < 50_000
    assert 'href="runs/style.css"' in rendered.read_text()
    total = sum(f.stat().st_size for f in rendered.parent.rglob("*") if f.is_file())
    assert total < 2_000_000


def test_the_verdict_names_the_best_the_ties_and_the_floor_failures(analysis):
    _, a = analysis
    assert set(a.tasks) == {"news", "patents"}
    news = a.tasks["news"]
    assert news.best == "instruction tuning"  # chosen on validation
    table = news.table.set_index("configuration")
    assert table.loc["majority class", "kind"] == verdict.FLOOR
    assert not table.loc["zero-shot", "beats floor"] and table.loc["embedding head", "beats floor"]
    lines = "\n".join(verdict.verdict_lines(news))
    assert "zero-shot predicts the floor's labels for every text" in lines
    for m in ("f1_micro", "f1_macro", "accuracy"):  # intervals around their estimates
        assert (table[f"{m} low"] <= table[m] + 1e-12).all() and (table[m] <= table[f"{m} high"] + 1e-12).all()
    c = news.comparisons
    rest = c[c.family == verdict.BEST_VS_REST]
    assert rest.iloc[0].configuration_b == table[table.kind != verdict.FLOOR].index[1]  # best vs runner-up first
    assert {"paired bootstrap", "McNemar exact (seeds by majority vote)"} <= set(c.test)
    assert (c.p_holm >= c.p_value - 1e-12).all()
    for family, f in c.groupby("family"):  # Holm within each family
        assert f.p_holm.tolist() == pytest.approx(statistics_holm(f.p_value).tolist())
    patents = a.tasks["patents"]
    assert {"label prior", "most frequent label set"} <= set(patents.table.configuration)
    assert "McNemar exact (seeds by majority vote)" not in set(patents.comparisons.test)
    wide = verdict.study_table(a)
    assert "★" in wide.loc["news", "instruction tuning"] and wide.loc["news"].str.contains("≈").any()


def test_calibration_and_next_steps_tables(analysis):
    _, a = analysis
    news, patents = a.tasks["news"], a.tasks["patents"]
    cal = tables.calibration_table(news).set_index("configuration")
    for col in ("ECE", "ECE after scaling", "Brier", "log loss"):
        assert cal[col].notna().all() and (cal[col] >= 0).all()
    assert set(cal["scaling (fitted on validation)"]) == {"temperature"}
    assert set(tables.calibration_table(patents)["scaling (fitted on validation)"]) == {"platt"}
    per_label = tables.per_label_f1(news, ["embedding head", "encoder"])
    assert per_label.support.sum() == len(news.y)
    cm = tables.confusion_summed(news, "embedding head")
    assert cm.to_numpy().sum() == 2 * len(news.y)  # two seeds
    curve = tables.f1_by_threshold(patents, "embedding head")
    assert curve.f1_micro.between(0, 1).all()
    examples = tables.disagreements(news, "embedding head", "encoder")
    assert 0 < len(examples) <= 8 and examples.text.str.len().max() <= 202


def test_old_records_still_load_with_the_new_columns_empty():
    records = report.load_records("example", FIXTURES)
    assert {"family", "load_seconds", "max_length", "threshold", "run_dir"} <= set(records.columns)
    a = verdict.analyze(records, n_resamples=50)
    assert not a.tasks and a.without_predictions


def test_training_labels_rebuild_what_the_floors_need():
    y = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 0]])
    sets = [[[0, 2], 2], [[1], 1]]
    rebuilt = train_labels({"train_label_sets": sets}, 3, True)
    np.testing.assert_array_equal(np.sort(rebuilt, axis=0), np.sort(y, axis=0))
    np.testing.assert_array_equal(train_labels({"train_label_counts": [2, 0, 1]}, 3, False), [0, 0, 2])
    assert train_labels({}, 3, False) is None


def test_commit_flags_say_which_runs_older_code_made():
    head = report.code_commit()
    if head is None:
        pytest.skip("not a git checkout")
    df = pd.DataFrame({"git_commit": [head, None], "git_dirty": [False, None]})
    flags = report.commit_flags(df, head).set_index("git_commit", drop=False)
    assert flags.code.iloc[0] == "the report's code"
    assert flags.code.iloc[1].startswith("unknown")


def test_shared_stylesheet_moves_the_css_out():
    page = "<html><head><style type='text/css'>a{color:red}</style></head><body>x</body></html>"
    body, css = report.shared_stylesheet(page, "style.css")
    assert "<style" not in body and '<link rel="stylesheet" href="style.css">' in body and "a{color:red}" in css


def test_approach_families():
    assert report.approach_family("10_embedding_head", {}) == "embedding head"
    assert report.approach_family("20_instruction_tuning", {"zero_shot": True}) == "zero-shot"
    assert report.approach_family("20_instruction_tuning", {}) == "instruction tuning"
    assert report.approach_family("30_baselines", {"baseline": "tfidf"}) == "TF-IDF"
    assert report.approach_family("30_baselines", {"baseline": "frozen"}) == "frozen embeddings"
    assert report.approach_family("40_distill", {}, {"teacher_run_id": "x"}) == "distilled student"


def test_pareto_frontier_keeps_the_points_nothing_beats():
    from llmclf.analysis.report_plots import _frontier

    cost = np.array([1.0, 2.0, 3.0, 4.0])
    f1 = np.array([0.5, 0.4, 0.7, 0.6])
    assert list(_frontier(cost, f1, "min")) == [0, 2]  # 2.0 is dearer and worse than 1.0; 4.0 than 3.0
    assert list(_frontier(cost, f1, "max")) == [2, 3]  # higher throughput is better


def test_plots_are_re_encoded_smaller_and_the_mermaid_loader_dropped():
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat

    fig, ax = plt.subplots()
    ax.plot(np.random.default_rng(0).random(50))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": png})])])
    report.shrink_images(nb)
    assert len(nb.cells[0].outputs[0].data["image/png"]) < len(png)
    page = '<html><head><script type="module">const d = ".jp-Mermaid > pre";</script></head><body>x</body></html>'
    assert "<script" not in report.shared_stylesheet(page, "style.css")[0]
