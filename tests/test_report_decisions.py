"""What the verdict decides, and on what: selections on validation only (the best configuration, the best floor), the
study's declared contrasts as the primary Holm family with a sentence each, the secondary families decided on
Holm-adjusted p-values, and words that say what the numbers say."""

import shutil

import numpy as np
import pandas as pd
import pytest

from fixtures.synthetic_study import write_synthetic_study
from llmclf.analysis import report, statistics, tables, verdict
from llmclf.config import ConfigError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_synthetic_study(root, "s")
    return root


@pytest.fixture
def study(pristine, tmp_path):
    shutil.copytree(pristine, tmp_path / "runs")
    return tmp_path / "runs"


def analyze(root, contrasts=(), n_resamples=200):
    return verdict.analyze(report.load_records("s", root), n_resamples=n_resamples, contrasts=list(contrasts))


def run_dirs(root, task, label=None):
    records = report.load_records("s", root)
    g = records[(records.task == task) & (records.status == "done")]
    return [r.run_dir for r in g.itertuples() if label is None or r.label == label]


def rewrite(path, change):
    frame = pd.read_parquet(path)
    change(frame)
    frame.to_parquet(path, index=False)


def selections(a):
    return {task: (t.best, t.best_floor, list(t.table.configuration)) for task, t in a.tasks.items()}


def test_no_selection_reads_the_test_split(study):
    before = selections(analyze(study))
    rng = np.random.default_rng(0)
    for task, (best, _, order) in before.items():
        labels = [c[2:] for c in pd.read_parquet(f"{run_dirs(study, task)[0]}/predictions.parquet").columns
                  if c.startswith("y:")]
        # the test truth replaced by random label sets, the validation-best made always wrong on test and the
        # worst configuration perfect: every test metric moves, no selection may
        truth = (rng.random((80, len(labels))) < 0.5).astype(np.int8)
        if task == "news":
            truth = np.eye(len(labels), dtype=np.int8)[rng.integers(0, len(labels), 80)]
        worst = [k for k in order if k in {r.label for r in report.load_records("s", study).itertuples()}][-1]
        for run_dir in run_dirs(study, task):
            label = next(r.label for r in report.load_records("s", study).itertuples() if r.run_dir == run_dir)

            def change(frame, label=label):
                for j, l in enumerate(labels):
                    frame[f"y:{l}"] = truth[:, j]
                    if label == best:
                        frame[f"p:{l}"] = 1.0 - truth[:, j] if task == "patents" else (j == (truth.argmax(1) + 1)
                                                                                      % len(labels)).astype(float)
                    elif label == worst:
                        frame[f"p:{l}"] = truth[:, j].astype(float)
            rewrite(f"{run_dir}/predictions.parquet", change)
    after = analyze(study)
    for task, t in after.tasks.items():
        table = t.table.set_index("configuration")
        assert table.loc[before[task][0], "f1_micro"] < 0.5  # the test set now says it is bad ...
        assert selections(after)[task][:2] == before[task][:2]  # ... and still chooses nothing
        confs = [k for k in selections(after)[task][2] if table.loc[k, "kind"] != verdict.FLOOR]
        assert confs == [k for k in before[task][2] if k in confs]


def test_validation_chooses_the_best_and_the_floor(study):
    before = selections(analyze(study))
    for task in ("news", "patents"):
        worst = [k for k in before[task][2] if k not in ("majority class", "label prior", "most frequent label set")][-1]
        for run_dir in run_dirs(study, task, worst):
            def perfect(frame):
                for c in [c for c in frame.columns if c.startswith("y:")]:
                    frame["p:" + c[2:]] = frame[c].astype(float)
            rewrite(f"{run_dir}/val_predictions.parquet", perfect)
        assert selections(analyze(study))[task][0] == worst  # now the best on validation


def test_the_best_floor_is_chosen_on_validation_even_where_test_prefers_another(study):
    # patents' training frequencies: A 0.635, G 0.275, H 0.235, B 0.065, C 0.06; the most frequent set is {A}.
    # Validation: every row {A, G}, so the label prior's threshold predicts {A, G} and beats "most frequent label
    # set" there; test: every row {A}, where the most frequent set is perfect and the prior is not.
    for run_dir in run_dirs(study, "patents"):
        def val_ag(frame):
            for l in "ABCGH":
                frame[f"y:{l}"] = np.int8(l in "AG")

        def test_a(frame):
            for l in "ABCGH":
                frame[f"y:{l}"] = np.int8(l == "A")
        rewrite(f"{run_dir}/val_predictions.parquet", val_ag)
        rewrite(f"{run_dir}/predictions.parquet", test_a)
    t = analyze(study).tasks["patents"]
    table = t.table.set_index("configuration")
    assert table.loc["most frequent label set", "f1_micro"] == 1.0 > table.loc["label prior", "f1_micro"]
    assert table.loc["label prior", "validation f1_micro"] > table.loc["most frequent label set", "validation f1_micro"]
    assert t.best_floor == "label prior"
    assert set(t.comparisons[t.comparisons.family == verdict.VS_FLOOR].configuration_b) == {"label prior"}


def test_ties_on_validation_are_broken_by_name():
    scores = {"b": 0.9, "a": 0.9, "c": float("nan"), "d": 0.95}
    assert verdict.rank(scores) == ["d", "a", "b", "c"]
    assert verdict.rank(dict(reversed(list(scores.items())))) == ["d", "a", "b", "c"]


def test_declared_contrasts_get_a_sentence_each(pristine):
    pairs = [("embedding head", "encoder"), ("instruction tuning", "embedding head"),
             ("zero-shot", "tfidf (full text)"), ("encoder", "no such run on this task")]
    a = analyze(pristine, pairs, n_resamples=300)
    t = a.tasks["patents"]
    c = t.comparisons[t.comparisons.family == verdict.CONTRASTS]
    assert len(c) == 3 and (c.metric == "f1_micro").all()
    assert c.p_holm.tolist() == pytest.approx(statistics.holm(c.p_value).tolist())
    lines = verdict.contrast_lines(t)
    assert len(lines) == 4 and "Holm-adjusted over the 3 contrasts" in lines[0]
    for line, row in zip(lines[1:], c.itertuples()):
        assert f"is {row.decision} " in line and f"p_holm = {row.p_holm:.3g}" in line
        assert row.decision in ("better than", "worse than", "not distinguishable from")
        assert (row.decision != "not distinguishable from") == (row.p_holm < 0.05)
    assert "zero-shot is worse than tfidf (full text) (difference -" in "\n".join(lines)
    news = a.tasks["news"]
    undecided = news.comparisons[(news.comparisons.family == verdict.CONTRASTS)
                                 & (news.comparisons.decision == "not distinguishable from")]
    assert len(undecided)
    text = "\n".join(verdict.verdict_lines(news))
    for row in undecided.itertuples():  # what this test set did not show needs more examples, or more seeds
        n_needed = undecided.loc[row.Index, "n_for_80%_power"]
        if n_needed is None or pd.isna(n_needed):
            assert row.difference != 0 and "(their spread is too large): only more seeds could narrow it" in text
        else:
            assert n_needed > len(news.y)
            assert "with 80% power" in text and "the examples' part of the paired-bootstrap SD scaled by √n" in text
    assert any("declared contrasts not run on this task" in n for n in news.notes)


def test_power_and_resamples_for_holm():
    # sd 0.02 at n = 100, a difference of 0.02: (1.96 + 0.84)^2 = 7.85 times the examples
    assert statistics.n_for_power(0.02, 0.02, 100) == pytest.approx(785, abs=2)
    assert statistics.n_for_power(0.0, 0.02, 100) is None
    # the seeds' spread does not shrink with more test examples: it raises the size, or rules any size out
    assert statistics.n_for_power(0.1, 0.02, 100, seed_sd=0.03) > statistics.n_for_power(0.1, 0.02, 100)
    assert statistics.n_for_power(0.02, 0.02, 100, seed_sd=0.1) is None
    # a family of 40 tests: with 300 resamples the smallest p (1/301) times 40 could never pass 0.05
    r = statistics.resamples_for_holm(40, 300)
    assert 40 / (r + 1) <= 0.025 and statistics.resamples_for_holm(3, 2000) == 2000


def test_a_decisive_difference_survives_holm_in_a_large_family():
    # 13 configurations, one far below the best: its p-value is at the bootstrap's floor, which must survive Holm
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    preds = {f"c{k:02d}": [np.where(rng.random(200) < 0.9, y, (y + 1) % 3)] for k in range(12)}
    preds["bad"] = [(y + 1) % 3]
    n_tests = 2 * 12 + 12  # bootstrap micro and macro plus McNemar, per other configuration
    table = statistics.compare_configurations(y, preds, False, 3,
                                              n_resamples=statistics.resamples_for_holm(n_tests, 100))
    bad = table[(table.configuration_b == "bad") & (table.test == statistics.BOOTSTRAP)]
    assert (statistics.holm(table.p_value)[bad.index] < 0.05).all()


def test_contrast_labels_are_checked_against_the_study(tmp_path):
    from llmclf.study.spec import load_study

    study = tmp_path / "s.yaml"
    body = """
defaults: {dataset: bbc-news}
runs:
  - notebook: 30_baselines
    label: tfidf
    params: {baseline: tfidf}
  - notebook: 30_baselines
    label: "tfidf, equal input"
    params: {baseline: tfidf, tfidf_input: truncated, model: smollm2-135m}
contrasts:
"""
    study.write_text(body + '  - [tfidf, "tfidf, equal input"]\n')
    load_study(study)
    study.write_text(body + "  - [tfidf, head]\n")
    with pytest.raises(ConfigError, match=r"unknown configuration label\(s\) \['head'\].*labels: \['tfidf', 'tfidf, eq"):
        load_study(study)
    study.write_text(body + "  - [tfidf]\n")
    with pytest.raises(ConfigError, match="not a pair"):
        load_study(study)


# the paper's five (head vs instruction, head vs encoder, instruction vs encoder, 4-bit vs unquantized, student vs
# encoder); patents has two instruction-tuning labels (score, constrained), so the two pairs with it count twice
@pytest.mark.parametrize("study_file, n_pairs", [("params/default.yaml", 5), ("params/patents.yaml", 7)])
def test_the_shipped_studies_declare_their_contrasts(study_file, n_pairs):
    from pathlib import Path

    from llmclf.study.spec import load_study, read_yaml, study_contrasts

    path = Path(__file__).resolve().parent.parent / study_file
    pairs = study_contrasts(read_yaml(path), load_study(path), path)
    assert len(pairs) == n_pairs
    named = {label for pair in pairs for label in pair}
    assert {"embedding head, 4-bit base", "MiniLM-L6 distilled from the best LLM run"} <= named


def test_words_say_what_the_numbers_say(pristine):
    a = analyze(pristine, n_resamples=300)
    news, patents = a.tasks["news"], a.tasks["patents"]
    every = "\n".join(verdict.verdict_lines(news) + verdict.verdict_lines(patents))
    assert "learned" not in every and "learned" not in tables.results_table(news).to_string()
    # news: zero-shot predicts the majority class for every text (skill 0): said so, never scored as a result
    table = news.table.set_index("configuration")
    assert table.loc["zero-shot", "constant"] and table.loc["zero-shot", "floor's labels"]
    assert "zero-shot predicts the floor's labels for every text" in every
    assert tables.results_table(news).set_index("configuration").loc["zero-shot", "vs floor"] == \
        "predicts the floor's labels for every text"
    # patents: zero-shot is worse than the floor, said apart from "not shown better"
    assert patents.table.set_index("configuration").loc["zero-shot", "vs floor"] == verdict.WORSE_THAN_FLOOR
    assert "**Worse than the floor** (label prior" in "\n".join(verdict.verdict_lines(patents))
    assert "Not shown better than the floor" not in "\n".join(verdict.verdict_lines(patents))


def test_the_full_text_best_is_said_to_read_more_than_the_llms(study):
    # make TF-IDF on the full text the best on validation
    for run_dir in run_dirs(study, "news", "tfidf (full text)"):
        def perfect(frame):
            for c in [c for c in frame.columns if c.startswith("y:")]:
                frame["p:" + c[2:]] = frame[c].astype(float) * 0.9 + 0.025
        rewrite(f"{run_dir}/val_predictions.parquet", perfect)
    news = analyze(study).tasks["news"]
    assert news.best == "tfidf (full text)"
    line = next(l for l in verdict.verdict_lines(news) if l.startswith("Input:"))
    assert "reads the full text; the LLMs read at most 94 tokens of it" in line
    assert "On equal input, tfidf (equal input): test F1 micro" in line
