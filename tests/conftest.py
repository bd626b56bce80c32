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
# fails. The smoke studies force dtype float32, so the value means the same on every CPU; float32 kernels still round
# differently between CPU classes (AVX2 / AVX512 / AMX), which can flip a prediction that sits on a tie, so a pinned
# rate or F1 may move by `examples` test examples and no more. LLMCLF_CAPTURE_PINS=<file> records instead (to update
# the tables after a deliberate change).
def pin(table: dict, key: str, value: float, n: int, examples: int = 1) -> None:
    """`value` (a score or rate over `n` test examples) equals `table[key]` within `examples` / n."""
    capture = os.environ.get("LLMCLF_CAPTURE_PINS")
    if capture:
        with open(capture, "a") as f:
            f.write(f"{key!r}: {value!r},\n")
        return
    assert key in table, f"no pinned value for {key!r}; recorded {value!r}"
    assert value == pytest.approx(table[key], abs=examples / n + 1e-12), f"{key}: recorded {value!r}"
