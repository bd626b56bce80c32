import os

# Without these a missing model takes 20-50 s to fail instead of failing at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Markers: `make test-fast` runs the `unit` tests only. A module is `smoke` when it trains tiny models or runs
# studies, the report or an install end to end (the slow part of `make test`, chosen from `pytest --durations`);
# the notebooks executed by nbval are `notebooks`; every other test is `unit`.
SMOKE_MODULES = {  # 5-100 s each in `make test` on a 2-core Intel Xeon; the unit tests take about 1.5 min in all
    "test_parallel_study", "test_predict_export", "test_distillation", "test_smoke_instruction", "test_faults",
    "test_smoke_study", "test_smoke_baselines", "test_contract", "test_readme_example", "test_cli", "test_report",
    "test_install", "test_report_safety",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.path))
        kind = "notebooks" if path.suffix == ".ipynb" else "smoke" if path.stem in SMOKE_MODULES else "unit"
        item.add_marker(getattr(pytest.mark, kind))

TOPICS = {
    "chemistry": "acid polymer solution compound catalyst reaction molecule",
    "electricity": "circuit voltage current transistor wire signal battery",
    "mechanics": "gear shaft spring lever valve piston bearing",
}


def synthetic_rows(n_per_label: int = 12, seed: int = 0, multi_label: bool = False) -> list[dict]:
    """Short texts whose words say their topic, so even a tiny model can learn them."""
    rng = np.random.default_rng(seed)
    rows = []
    names = list(TOPICS)
    for j, (label, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for i in range(n_per_label):
            text = " ".join(rng.choice(vocab, size=6)) + " the device"
            labels = [label]
            if multi_label and i % 3 == 0:
                other = names[(j + 1) % len(names)]
                text += " " + " ".join(rng.choice(TOPICS[other].split(), size=3))
                labels.append(other)
            rows.append({"id": f"{label}-{i}", "text": text, "label": ",".join(labels)})
    return rows


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from llmclf.models.registry import tiny_causal_lm

    words = " ".join(TOPICS.values()).split()
    return tiny_causal_lm(tmp_path_factory.mktemp("models") / "tiny-llama", words=words)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    from llmclf.models.registry import tiny_encoder

    words = " ".join(TOPICS.values()).split()
    return tiny_encoder(tmp_path_factory.mktemp("models") / "tiny-bert", words=words)


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory):
    import pandas as pd

    folder = tmp_path_factory.mktemp("data")
    pd.DataFrame(synthetic_rows()).to_csv(folder / "single.csv", index=False)
    pd.DataFrame(synthetic_rows(multi_label=True)).to_csv(folder / "multi.csv", index=False)
    return folder


@pytest.fixture
def tiny_task_factory(tiny_csv):
    from llmclf.data.tasks import load_task

    def make(multi_label: bool = False):
        name = "multi.csv" if multi_label else "single.csv"
        return load_task(str(tiny_csv / name), multi_label=multi_label, id_field="id")

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP spinning makes them much slower:
    a module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def label_llama(tmp_path_factory):
    """The tiny Llama with the label names in its vocabulary (`tiny_llama`'s tokenizer knows only topic words)."""
    from llmclf.models.registry import tiny_causal_lm

    words = " ".join(TOPICS.values()).split() + sorted(TOPICS) + ["classify", "categories"]
    return tiny_causal_lm(tmp_path_factory.mktemp("models") / "label-llama", words=words)


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A model and embedding cache of the test's own (papermill kernels inherit the variable)."""
    monkeypatch.setenv("LLMCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- precision (issue 24): how close two computations of the same probabilities must be
# float32 keeps 24 significant bits; bfloat16 keeps 8 (7 stored), so one rounding moves a value by up to
# 2**-8 of itself (its unit roundoff). The same inputs through the same weights in another batch shape (another
# padding width, another order) round differently in every matmul of a bf16 forward; through a few layers and a
# softmax this adds up to a few units of that roundoff in a probability. Exact comparisons force float32 and keep
# 1e-5; the same properties under a forced bfloat16 use this bound. A reload under the same precision computes the
# same thing in the same batch shapes, so it is held to float32's bound in both dtypes (tests/test_precision.py).
BF16_UNIT_ROUNDOFF = 2.0 ** -8
DTYPES_TESTED = ("float32", "bfloat16")  # every torch approach is checked in both, on any CPU


def proba_atol(dtype: str) -> float:
    """Absolute tolerance for probabilities computed twice in another batch shape under `dtype` (forced, never
    'auto': a test that means one precision names it)."""
    if dtype not in DTYPES_TESTED:
        raise ValueError(f"proba_atol takes a forced dtype {DTYPES_TESTED}, not {dtype!r}")
    return 1e-5 if dtype == "float32" else 8 * BF16_UNIT_ROUNDOFF


# ---- pinned values (recommenders' notebook tests): what the tiny models record, so a change that alters a result
# fails. The smoke studies force dtype float32, so the value means the same on every CPU (never `auto`, which is
# bfloat16 on AMX / AVX512_BF16 and float32 on AVX2). float32 kernels still round differently between CPU classes
# (AVX2 / AVX512 / AMX), which could flip a prediction that sits on a tie, so a pinned value may move by what
# PIN_EXAMPLES test examples can move it and no more. Measured on the smoke modules' runs: their F1 micro and invalid
# rates were first recorded on an Intel Xeon with AMX; every value they pin came out the same on an AMD EPYC with
# AVX512_BF16 and on that EPYC held to AVX2 kernels (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2), where the
# losses moved by 5e-7 at most and the test probabilities by 3e-7, against a smallest gap of 1.3e-3 between a scored
# prediction's top two probabilities (the encoder baseline's): the allowance is for CPUs not tried, not a known drift.
# LLMCLF_CAPTURE_PINS=<file> records instead (to update the tables after a deliberate change).
PIN_EXAMPLES = 1


def pin(table: dict, key: str, value: float, n: int, examples: int = PIN_EXAMPLES, per_example: float = 1.0) -> None:
    """`value`, a mean over `n` test examples of a quantity in [0, `per_example`] (a rate: 1; generated tokens:
    max_new_tokens), equals `table[key]` within what `examples` examples can move it: examples * per_example / n.
    Micro F1 of single-label runs is accuracy, a rate; macro F1 is not (one example can move it by far more than 1/n):
    pin it with `pin_f1`."""
    capture = os.environ.get("LLMCLF_CAPTURE_PINS")
    if capture:
        with open(capture, "a") as f:
            f.write(f"{key!r}: {value!r},\n")
        return
    assert key in table, f"no pinned value for {key!r}; recorded {value!r}"
    assert value == pytest.approx(table[key], abs=examples * per_example / n + 1e-12), f"{key}: recorded {value!r}"


def _predicted_classes(run_dir: Path):
    """A single-label run's true and predicted class indices from its predictions.parquet; a prediction that names
    no label (an invalid generated answer) is the pseudo-class len(labels), as metrics.classification_metrics
    scores it. Also whether the run can predict that pseudo-class at all."""
    import pandas as pd

    frame = pd.read_parquet(Path(run_dir) / "predictions.parquet")
    y = frame[[c for c in frame.columns if c.startswith("y:")]].to_numpy()
    assert (y.sum(axis=1) == 1).all(), "pin_f1 takes single-label runs"
    proba = frame[[c for c in frame.columns if c.startswith("p:")]].to_numpy()
    can_be_invalid = "invalid" in frame.columns
    invalid = frame["invalid"].to_numpy(dtype=bool) if can_be_invalid else np.zeros(len(frame), dtype=bool)
    return y.argmax(axis=1), np.where(invalid, proba.shape[1], proba.argmax(axis=1)), proba.shape[1], can_be_invalid


def _f1s(y_true: np.ndarray, pred: np.ndarray, n_labels: int) -> tuple[float, float]:
    from llmclf.analysis.metrics import classification_metrics

    invalid = pred == n_labels
    proba = np.eye(n_labels + 1)[pred][:, :n_labels]
    m = classification_metrics(y_true, proba, [str(i) for i in range(n_labels)], False, invalid=invalid)
    return m["f1_micro"], m["f1_macro"]


def pin_f1(table: dict, key: str, run_dir: Path, examples: int = PIN_EXAMPLES) -> None:
    """A single-label run's recorded F1 micro and macro are those of its predictions.parquet, and some predictions
    that differ from the recorded ones in at most `examples` test examples score exactly the pinned pair
    `table[key + " f1_micro"]`, `table[key + " f1_macro"]`: both move together by one flipped prediction at most,
    which a fixed abs tolerance on macro F1 cannot say (one flip moves the tiny runs' macro F1 by up to 0.24)."""
    import json

    metrics = json.loads((Path(run_dir) / "record.json").read_text())["metrics"]
    recorded = (metrics["f1_micro"], metrics["f1_macro"])
    y_true, pred, n_labels, can_be_invalid = _predicted_classes(run_dir)
    assert _f1s(y_true, pred, n_labels) == pytest.approx(recorded, abs=1e-12), "the record is not its predictions"
    capture = os.environ.get("LLMCLF_CAPTURE_PINS")
    if capture:
        with open(capture, "a") as f:
            f.write(f"{key + ' f1_micro'!r}: {recorded[0]!r},\n{key + ' f1_macro'!r}: {recorded[1]!r},\n")
        return
    pinned = (table[f"{key} f1_micro"], table[f"{key} f1_macro"])
    classes = range(n_labels + 1 if can_be_invalid else n_labels)
    reachable, frontier = {tuple(pred)}, {tuple(pred)}
    for _ in range(examples):
        frontier = {v[:i] + (k,) + v[i + 1:] for v in frontier for i in range(len(v)) for k in classes} - reachable
        reachable |= frontier
    scores = {_f1s(y_true, np.array(v), n_labels) for v in reachable}
    assert any(s == pytest.approx(pinned, abs=1e-9) for s in scores), \
        f"{key}: recorded F1 micro, macro {recorded}, pinned {pinned}: more than {examples} prediction(s) apart"
