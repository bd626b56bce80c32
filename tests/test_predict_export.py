"""After the study: `llmclf predict` on files and stdin (input order, thresholds, clear errors), `llmclf.load_run`,
and `llmclf export` (model card; loading with transformers and peft alone; --merge)."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import llmclf
from llmclf.cli import main
from llmclf.config import BaselineConfig, EmbeddingHeadConfig
from llmclf.study.experiment import fit_and_evaluate
from llmclf.study.predict import PredictError, keep_model, load_run
from llmclf.study.record import read_record, save_run, write_json_atomic

pytestmark = pytest.mark.usefixtures("one_thread", "own_cache")


def make_run(root, clf, task, notebook, label, save_model=True, threshold=None):
    """What a notebook does: fit, evaluate, keep the model, record; plus the identity the runner adds."""
    result = fit_and_evaluate(clf, task)
    if threshold is not None:
        clf.threshold = threshold
    run_dir = root / "runs" / "study" / f"{notebook}-{label}"
    kept = keep_model(clf, str(run_dir)) if save_model else {"model_dir": None}
    save_run(str(run_dir), notebook=notebook, params=clf.cfg.to_dict(), task=task, metrics=result.metrics,
             costs=result.costs, test_proba=result.test_proba,
             model_checksum=llmclf.model_checksum(clf.model_path) if getattr(clf, "model_path", None) else None,
             extra={**result.extra, **kept})
    record = read_record(run_dir)
    record.update(study="study", run_id=run_dir.name, label=label)
    write_json_atomic(run_dir / "record.json", record)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama, tiny_bert, tiny_csv):
    from llmclf.approaches.baselines import make_baseline
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.data.tasks import load_task

    root = tmp_path_factory.mktemp("after")
    old = os.environ.get("LLMCLF_CACHE")
    os.environ["LLMCLF_CACHE"] = str(root / "cache")
    try:
        single = load_task(str(tiny_csv / "single.csv"), id_field="id")
        multi = load_task(str(tiny_csv / "multi.csv"), multi_label=True, id_field="id")
        # float32: these tests compare probabilities exactly; the bf16 path has its own tests below
        common = dict(max_length=32, batch_size=8, eval_batch_size=4, epochs=1.0, dtype="float32")
        head = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=str(tiny_llama), learning_rate=1e-3, **common),
                                       str(tiny_llama))
        encoder = make_baseline(BaselineConfig(baseline="encoder", model=str(tiny_bert), use_lora=True, **common),
                                str(tiny_bert))
        tfidf = make_baseline(BaselineConfig(baseline="tfidf", multi_label=True, c_values=[10.0], **common))
        out = {"single": single, "multi": multi,
               "head": make_run(root, head, single, "10_embedding_head", "head"),
               "encoder": make_run(root, encoder, single, "30_baselines", "encoder"),
               "tfidf": make_run(root, tfidf, multi, "30_baselines", "tfidf", threshold=0.3),
               "frozen": make_run(root, make_baseline(BaselineConfig(baseline="frozen", model=str(tiny_llama),
                                                                     c_values=[1.0], **common), str(tiny_llama)),
                                  single, "30_baselines", "frozen"),
               "tfidf_cut": make_run(root, make_baseline(BaselineConfig(baseline="tfidf", tfidf_input="truncated",
                                                                        model=str(tiny_llama), c_values=[10.0],
                                                                        **common), str(tiny_llama)),
                                     single, "30_baselines", "tfidf_cut"),
               "nomodel": make_run(root, make_baseline(BaselineConfig(baseline="tfidf", c_values=[10.0])), single,
                                   "30_baselines", "nomodel", save_model=False),
               "root": root}
    finally:
        if old is None:
            os.environ.pop("LLMCLF_CACHE")
        else:
            os.environ["LLMCLF_CACHE"] = old
    return out


def texts_of(task):
    # shuffled lengths: a long text first, so that sorting by length inside would show if order were lost
    texts = list(task.test.texts) + ["acid polymer " * 10 + "the device", "gear"]
    return sorted(texts, key=lambda t: -len(t) if len(t) % 2 else len(t))


def test_predict_a_csv_in_input_order(runs, tmp_path):
    texts = texts_of(runs["single"])
    pd.DataFrame({"id": [f"x{i}" for i in range(len(texts))], "text": texts}).to_csv(tmp_path / "in.csv",
                                                                                     index=False)
    assert main(["predict", str(runs["head"]), str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    model = load_run(runs["head"])
    expected = np.stack([model.classifier.predict_proba([t])[0] for t in texts])  # one by one: no batching at all
    labels = model.labels
    np.testing.assert_allclose(out[[f"p:{l}" for l in labels]].to_numpy(), expected, atol=1e-5)
    assert out["id"].tolist() == [f"x{i}" for i in range(len(texts))]
    assert out["predicted"].tolist() == [labels[j] for j in expected.argmax(1)]


def test_predict_with_frozen_embeddings_reads_the_cache_but_never_writes_it(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCLF_CACHE", str(runs["root"] / "cache"))
    cached = sorted((runs["root"] / "cache" / "embeddings").iterdir())
    assert [p for p in cached if p.suffix == ".npz"]  # the run cached its splits
    model = load_run(runs["frozen"])
    texts = ["a text no split holds", "gear"]
    first = model.predict_proba(texts)
    assert sorted((runs["root"] / "cache" / "embeddings").iterdir()) == cached  # a user's texts: nothing written
    np.testing.assert_allclose(model.predict_proba(texts), first, atol=1e-6)


def test_predict_from_stdin_one_text_a_line(runs, monkeypatch, capsys):
    texts = texts_of(runs["single"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts) + "\n"))
    assert main(["predict", "30_baselines-encoder", "-", "--study", "study",
                 "--runs-root", str(runs["root"] / "runs")]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out))
    model = llmclf.load_run(runs["encoder"])
    np.testing.assert_allclose(out[[f"p:{l}" for l in model.labels]].to_numpy(), model.predict_proba(texts),
                               atol=1e-5)
    assert len(out) == len(texts)


def test_multi_label_predictions_use_the_runs_threshold(runs, tmp_path):
    texts = list(runs["multi"].test.texts)
    pd.DataFrame({"body": texts}).to_parquet(tmp_path / "in.parquet")
    assert main(["predict", str(runs["tfidf"]), str(tmp_path / "in.parquet"), "--text-field", "body",
                 "-o", str(tmp_path / "out.jsonl")]) == 0
    out = pd.read_json(tmp_path / "out.jsonl", lines=True)
    model = load_run(runs["tfidf"])
    assert model.threshold == pytest.approx(0.3)
    proba = out[[f"p:{l}" for l in model.labels]].to_numpy()
    assert out["predicted"].tolist() == [[l for l, p in zip(model.labels, row) if p >= 0.3] for row in proba]
    assert any(len(p) != 1 for p in out["predicted"])  # the threshold, not an argmax


def test_clear_errors(runs, tmp_path, capsys):
    pd.DataFrame({"body": ["gear"]}).to_csv(tmp_path / "wrong.csv", index=False)
    pd.DataFrame({"id": ["a", "b"], "text": ["gear", "  "]}).to_csv(tmp_path / "empty.csv", index=False)
    (tmp_path / "ok.csv").write_text("text\ngear shaft\n")
    cases = [
        ([str(runs["nomodel"]), str(tmp_path / "ok.csv")], "kept no model"),
        ([str(runs["head"]), str(tmp_path / "wrong.csv")], "no text column(s) ['text']; its columns are ['body']"),
        ([str(runs["head"]), str(tmp_path / "empty.csv")], "empty or whitespace only, at positions [1]"),
        (["no-such-run", str(tmp_path / "ok.csv"), "--runs-root", str(runs["root"] / "runs")], "neither a run"),
    ]
    for args, message in cases:
        assert main(["predict", *args]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(PredictError, match="not one string"):
        load_run(runs["head"]).predict_proba("gear")


def test_a_missing_packaged_base_names_the_fetch_command(runs, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["head"], run)
    meta_file = run / "model" / "llmclf_model.json"
    meta = json.loads(meta_file.read_text())
    meta["base_model"].update(name="smollm2-135m", path=None)
    meta_file.write_text(json.dumps(meta))
    (tmp_path / "ok.csv").write_text("text\ngear shaft\n")
    assert main(["predict", str(run), str(tmp_path / "ok.csv")]) == 2
    assert "llmclf fetch smollm2-135m" in capsys.readouterr().err


def snippet_of(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, re.S).group(1)


def run_snippet(folder, texts, tmp_path) -> np.ndarray:
    """The model card's snippet, run in a fresh interpreter from the exported folder, without llmclf."""
    script = snippet_of((folder / "model_card.md").read_text()) + f"""
import sys

texts = json.load(open({str(tmp_path / 'texts.json')!r}))
np.save({str(tmp_path / 'proba.npy')!r}, predict_proba(texts))
assert not any(m == "llmclf" or m.startswith("llmclf.") for m in sys.modules), "llmclf was imported"
"""
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(tmp_path / "proba.npy")


@pytest.mark.parametrize("merge", [False, True], ids=["adapter", "merged"])
@pytest.mark.parametrize("run", ["head", "encoder"])
def test_export_loads_with_transformers_and_peft_alone(runs, run, merge, tmp_path):
    dest = tmp_path / "export"
    assert main(["export", str(runs[run]), str(dest), *(["--merge"] if merge else [])]) == 0
    texts = texts_of(runs["single"])
    expected = load_run(runs[run]).predict_proba(texts)
    np.testing.assert_allclose(run_snippet(dest, texts, tmp_path), expected, atol=1e-4)
    files = {p.name for p in dest.iterdir()}
    assert {"model_card.md", "run_record.json", "llmclf_model.json"} <= files
    if merge:  # a plain transformers folder: no adapter, no base needed
        assert "model.safetensors" in files and "adapter_model.safetensors" not in files
    else:
        assert "adapter_model.safetensors" in files
    # the exported folder itself predicts through llmclf too
    np.testing.assert_allclose(load_run(dest).predict_proba(texts), expected, atol=1e-4)
    card = (dest / "model_card.md").read_text()
    (tmp_path.parent / f"card-{run}-{merge}.md").write_text(card)  # to read by eye
    record = read_record(runs[run])
    assert record["run_id"] in card and record["provenance"]["data_checksum"] in card
    assert re.search(r"\| f1_micro \| [\d.]+ \| [\d.]+ – [\d.]+ \|", card)
    assert "examples/s" in card and "commit" in card


def test_export_refuses_a_non_empty_folder_and_merging_tfidf(runs, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["export", str(runs["head"]), str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(runs["tfidf"]), str(tmp_path / "t"), "--merge"]) == 2
    assert "--merge applies to" in capsys.readouterr().err
    assert main(["export", str(runs["tfidf"]), str(tmp_path / "t2")]) == 0
    assert (tmp_path / "t2" / "tfidf.safetensors").is_file()


def test_an_instruction_run_exports_a_snippet_that_scores_its_labels(tmp_path, tiny_csv):
    from conftest import TOPICS

    from llmclf.approaches.instruction import InstructionClassifier
    from llmclf.config import InstructionConfig
    from llmclf.data.tasks import load_task
    from llmclf.models.registry import tiny_causal_lm

    words = " ".join(TOPICS.values()).split() + sorted(TOPICS) + ["classify", "categories"]
    llama = tiny_causal_lm(tmp_path / "label-llama", words=words)
    task = load_task(str(tiny_csv / "single.csv"), id_field="id")
    cfg = InstructionConfig(model=str(llama), max_length=64, batch_size=8, eval_batch_size=8, epochs=1.0,
                            learning_rate=1e-3, dtype="float32")
    run = make_run(tmp_path, InstructionClassifier(cfg, str(llama)), task, "20_instruction_tuning", "instr")
    assert main(["export", str(run), str(tmp_path / "export")]) == 0
    texts = texts_of(task)
    expected = load_run(run).predict_proba(texts)
    np.testing.assert_allclose(run_snippet(tmp_path / "export", texts, tmp_path), expected, atol=1e-4)


@pytest.mark.parametrize("run", ["tfidf", "tfidf_cut", "frozen"])
def test_linear_baselines_export_a_snippet_without_llmclf(runs, run, tmp_path):
    """The best configuration of the default study is TF-IDF: its export, too, predicts without llmclf (numpy,
    safetensors, scikit-learn's TfidfVectorizer; transformers for the frozen model and the equal-input tokenizer)."""
    dest = tmp_path / "export"
    assert main(["export", str(runs[run]), str(dest)]) == 0
    task = runs["multi" if run == "tfidf" else "single"]
    texts = texts_of(task)
    expected = load_run(runs[run]).predict_proba(texts)
    assert {"portable.safetensors", "portable.json"} <= {p.name for p in dest.iterdir()}
    np.testing.assert_allclose(run_snippet(dest, texts, tmp_path), expected, atol=1e-4)
    assert "Without llmclf" in (dest / "model_card.md").read_text()


def test_weight_matrix_reproduces_predict_proba():
    """as_weight_matrix: binary, multinomial with a label never seen in training, one-vs-rest with a constant
    column, a scaler folded in; each equal to predict_proba_linear."""
    from sklearn.preprocessing import StandardScaler

    from llmclf.approaches.linear import as_weight_matrix, linear_estimator, predict_proba_linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1, 10, 0.1, 3] + [0, 5, -2, 1]
    scaler = StandardScaler().fit(X)
    Xs = scaler.transform(X)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    for y, n_labels in [((X[:, 0] > 0).astype(int), 2), (np.digitize(X[:, 0], [-0.5, 0.5]) * 2, 5)]:
        model = linear_estimator("logreg", 1.0, False, y).fit(Xs, y)
        W, b = as_weight_matrix(model, n_labels, False, scaler=scaler)
        np.testing.assert_allclose(softmax(X @ W.T + b), predict_proba_linear(model, Xs, n_labels, False),
                                   atol=1e-5)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 5, np.ones(60, bool)], axis=1).astype(int)
    model = linear_estimator("logreg", 1.0, True, Y).fit(Xs, Y)
    W, b = as_weight_matrix(model, 3, True, scaler=scaler)
    np.testing.assert_allclose(1 / (1 + np.exp(-(X @ W.T + b))), predict_proba_linear(model, Xs, 3, True),
                               atol=1e-5)


# ---- the same properties with bfloat16 forced (issue 24): mixed precision trained, kept, predicted and exported


@pytest.fixture(scope="module")
def bf16_runs(tmp_path_factory, tiny_llama, tiny_csv):
    from llmclf.approaches.baselines import make_baseline
    from llmclf.approaches.embedding_head import EmbeddingHeadClassifier
    from llmclf.data.tasks import load_task

    root = tmp_path_factory.mktemp("after-bf16")
    old = os.environ.get("LLMCLF_CACHE")
    os.environ["LLMCLF_CACHE"] = str(root / "cache")
    try:
        single = load_task(str(tiny_csv / "single.csv"), id_field="id")
        common = dict(max_length=32, batch_size=8, eval_batch_size=4, epochs=1.0, dtype="bfloat16")
        head = EmbeddingHeadClassifier(EmbeddingHeadConfig(model=str(tiny_llama), learning_rate=1e-3, **common),
                                       str(tiny_llama))
        frozen = make_baseline(BaselineConfig(baseline="frozen", model=str(tiny_llama), c_values=[1.0], **common),
                               str(tiny_llama))
        return {"single": single, "head": make_run(root, head, single, "10_embedding_head", "head"),
                "frozen": make_run(root, frozen, single, "30_baselines", "frozen")}
    finally:
        if old is None:
            os.environ.pop("LLMCLF_CACHE")
        else:
            os.environ["LLMCLF_CACHE"] = old


def test_bf16_run_predicts_a_csv_in_input_order_and_reloads_exactly(bf16_runs, tmp_path):
    from conftest import proba_atol

    texts = texts_of(bf16_runs["single"])
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", str(bf16_runs["head"]), str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv")]) == 0
    model = load_run(bf16_runs["head"])
    assert model.classifier.precision.compute_dtype == "bfloat16"
    out = pd.read_csv(tmp_path / "out.csv")[[f"p:{l}" for l in model.labels]].to_numpy()
    one_by_one = np.stack([model.classifier.predict_proba([t])[0] for t in texts])  # other batch shapes
    np.testing.assert_allclose(out, one_by_one, atol=proba_atol("bfloat16"))
    # the kept model predicts the test split as the run did: same precision, same batches
    test = bf16_runs["single"].test.texts
    recorded = pd.read_parquet(bf16_runs["head"] / "predictions.parquet")
    np.testing.assert_allclose(model.predict_proba(test), recorded[[f"p:{l}" for l in model.labels]].to_numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("run", ["head", "frozen"])
def test_bf16_run_exports_a_float32_snippet_within_bf16_rounding(bf16_runs, run, tmp_path):
    """The card's snippet computes in float32 (and says so); a bf16 run's probabilities differ by bf16 rounding."""
    from conftest import proba_atol

    dest = tmp_path / "export"
    assert main(["export", str(bf16_runs[run]), str(dest)]) == 0
    texts = texts_of(bf16_runs["single"])
    expected = load_run(bf16_runs[run]).predict_proba(texts)
    np.testing.assert_allclose(run_snippet(dest, texts, tmp_path), expected, atol=proba_atol("bfloat16"))
    if run == "head":
        assert "computes in float32; the run used bfloat16" in (dest / "model_card.md").read_text()
