"""Patent tasks: CPC levels, label filtering, multi-label stratified splits, the shared data folder."""

from pathlib import Path

import numpy as np
import pytest

from llmclf.data.tasks import DataError, load_task
from llmclf.data.patents import PatentDataError, cpc_at_level, dataset_folder

FIXTURES = Path(__file__).parent / "fixtures" / "patents"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.mark.parametrize("level, expected", [("section", "H"), ("class", "H01"), ("subclass", "H01L"),
                                             ("main_group", "H01L21")])
def test_cpc_levels(level, expected):
    assert cpc_at_level("H01L21/31", level) == expected


def test_unknown_level_is_refused():
    with pytest.raises(PatentDataError, match="main_group"):
        cpc_at_level("H01L21/31", "group")


def test_single_label_takes_the_first_symbol_and_drops_unlabelled():
    task = load_task("uspto-10k", data_dir=FIXTURES, label_level="section")
    assert task.labels == ["A", "G", "H"]
    assert task.source["documents_without_cpc_excluded"] == 3
    assert sum(len(s) for s in task.splits.values()) == 57
    # document 0 is A61K... then G06F...: its single label is its first symbol's section
    every = {i: y for s in task.splits.values() for i, y in zip(s.ids, s.y)}
    assert task.labels[every["US00000"]] == "A"


def test_multi_label_levels_and_min_label_count():
    task = load_task("uspto-10k", data_dir=FIXTURES, label_level="subclass", multi_label=True)
    assert set(task.labels) == {"A61K", "A61B", "G06F", "G01N", "H04L", "H01L"}
    train = task.train.y
    assert train.shape[1] == 6 and (train.sum(1) >= 1).all()
    # the first symbol's subclass in each section occurs more (also as a second symbol): a threshold drops the rest
    strict = load_task("uspto-10k", data_dir=FIXTURES, label_level="subclass", multi_label=True,
                       min_label_count=12)
    assert strict.n_labels < task.n_labels
    assert strict.source["labels_dropped_as_rare"] == task.n_labels - strict.n_labels
    for split in strict.splits.values():
        assert (split.y.sum(1) >= 1).all()  # documents left without a label are dropped


def test_multi_label_split_is_deterministic_and_spreads_every_label():
    a = load_task("uspto-10k", data_dir=FIXTURES, label_level="subclass", multi_label=True, split_seed=3)
    b = load_task("uspto-10k", data_dir=FIXTURES, label_level="subclass", multi_label=True, split_seed=3)
    c = load_task("uspto-10k", data_dir=FIXTURES, label_level="subclass", multi_label=True, split_seed=4)
    assert a.test.ids == b.test.ids and a.test.ids != c.test.ids
    assert a.source["stratified_on"].startswith("all labels")
    for split in a.splits.values():
        assert (split.y.sum(0) >= 1).all(), "every label in every split where its count allows"


def test_ipc_sections_keeps_its_own_split_and_needs_multi_label():
    task = load_task("uspto-ipc-sections", data_dir=FIXTURES, multi_label=True)
    assert [len(s) for s in task.splits.values()] == [30, 12, 12]
    assert task.labels == ["A", "G", "H"] and task.multi_label
    assert task.train.texts[0].startswith("Title train 0\nutility")
    with pytest.raises(DataError, match="multi_label=True"):
        load_task("uspto-ipc-sections", data_dir=FIXTURES)


def test_missing_data_folder_says_where_it_looked(tmp_path):
    with pytest.raises(PatentDataError) as e:
        dataset_folder("uspto-10k", tmp_path / "nowhere")
    assert "nowhere" in str(e.value) and "LLMCLF_DATA_DIR" in str(e.value)


def test_label_descriptions_come_from_the_ipc_scheme():
    pytest.importorskip("llmclf.artifacts")
    from llmclf.data.patents import _short_title

    assert _short_title("PHYSICS") == "Physics"
    assert _short_title("SPADES (hand tools (for lawns A01G)); SHOVELS") == "Spades; shovels"


@pytest.mark.skipif(not (SHARED / "uspto-10k").is_dir(), reason=f"shared patent data not found at {SHARED}")
def test_real_uspto_10k_section_task():
    task = load_task("uspto-10k", label_level="section", max_train=200, max_eval=100)
    assert task.labels == list("ABCDEFGH")
    assert task.source["documents_without_cpc_excluded"] == 465
    assert task.label_descriptions["G"] == "Physics"


@pytest.mark.skipif(not (SHARED / "uspto-ipc-sections").is_dir(), reason=f"shared patent data not found at {SHARED}")
def test_real_ipc_sections_task_keeps_its_split():
    task = load_task("uspto-ipc-sections", multi_label=True)
    assert task.labels == list("ABCDEFGH")
    assert [len(s) for s in task.splits.values()] == [5584, 698, 698]
    assert task.source["sha256"]["train.csv"].startswith("b59d993d")
