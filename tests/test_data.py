"""Unit tests for llmclf.data: tiny fixtures written to tmp_path, plus the committed tests/fixtures/tiny_news folder."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmclf.data.tasks import DataError, Split, Task, load_task, read_text_folder

FIXTURES = Path(__file__).parent / "fixtures"


def single_frame(n_per_class=10, classes=("b", "a", "c")):
    rows = [{"doc": f"doc-{c}-{i}", "text": f"text about {c} number {i}", "label": c}
            for c in classes for i in range(n_per_class)]
    return pd.DataFrame(rows)


def write(frame, path: Path) -> Path:
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    elif name.endswith((".jsonl", ".jsonl.gz", ".json")):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


def all_examples(task):
    """id -> (text, label names), over every split."""
    out = {}
    for s in task.splits.values():
        for i, t, names in zip(s.ids, s.texts, s.label_names(task.labels)):
            out[i] = (t, names)
    return out


# --- round trips -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.jsonl", "d.jsonl.gz", "d.json", "d.parquet"])
def test_single_label_round_trip(tmp_path, name):
    frame = single_frame()
    task = load_task(str(write(frame, tmp_path / name)), id_field="doc")
    assert task.labels == ["a", "b", "c"] and not task.multi_label and task.n_labels == 3
    assert [len(s) for s in task.splits.values()] == [21, 3, 6]
    assert all(s.y.dtype == np.int64 and s.y.ndim == 1 for s in task.splits.values())
    expected = {r.doc: (r.text, [r.label]) for r in frame.itertuples()}
    assert all_examples(task) == expected
    assert task.name == "d"
    assert task.source["sha256"][name] and task.source["split_from"] == "random"
    assert task.source["sizes_before_caps"] == {"train": 21, "validation": 3, "test": 6}


def test_ids_default_to_row_index_and_fields_join(tmp_path):
    frame = single_frame().assign(title=lambda f: "T " + f["doc"])
    frame.loc[0, "title"] = ""  # an empty title leaves no stray newline
    task = load_task(str(write(frame, tmp_path / "d.csv")), text_fields=["title", "text"])
    examples = all_examples(task)
    assert examples["0"][0] == frame.text[0]
    assert examples["1"][0] == f"T {frame.doc[1]}\n{frame.text[1]}"


def test_integer_labels_become_strings(tmp_path):
    frame = single_frame(classes=(2, 10, 1))
    task = load_task(str(write(frame, tmp_path / "d.jsonl")))
    assert task.labels == ["1", "10", "2"]  # sorted as names


@pytest.mark.parametrize("name", ["m.jsonl", "m.parquet"])
def test_multi_label_from_list_column(tmp_path, name):
    tags = [["x", "y"], ["y"], [" z ", "x", "x"], []] * 6
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(len(tags))], "tags": tags})
    task = load_task(str(write(frame, tmp_path / name)), label_field="tags", multi_label=True)
    assert task.labels == ["x", "y", "z"] and task.multi_label
    assert all(s.y.dtype == np.int8 and s.y.shape == (len(s), 3) for s in task.splits.values())
    examples = all_examples(task)
    assert examples["2"][1] == ["x", "z"] and examples["3"][1] == [] and examples["0"][1] == ["x", "y"]


def test_multi_label_from_separated_strings(tmp_path):
    labels = ["A,B", " B , ,A,A ", "C", ""] * 6
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(len(labels))], "label": labels})
    task = load_task(str(write(frame, tmp_path / "m.csv")), multi_label=True)
    examples = all_examples(task)
    assert task.labels == ["A", "B", "C"]
    assert examples["0"][1] == ["A", "B"] and examples["1"][1] == ["A", "B"] and examples["3"][1] == []
    semi = load_task(str(write(frame.assign(label=frame.label.str.replace(",", ";")), tmp_path / "s.csv")),
                     multi_label=True, label_separator=";")
    assert semi.labels == ["A", "B", "C"]


# --- the source's split ----------------------------------------------------------------------------------------

def test_split_column_honoured(tmp_path):
    frame = single_frame(4)
    frame["split"] = ["train", "train", "dev", "test"] + ["train", "train", "val", "test"] + \
                     ["train", "train", "Validation", "TEST"]
    task = load_task(str(write(frame, tmp_path / "d.parquet")), id_field="doc")
    for s, aliases in [("train", {"train"}), ("validation", {"dev", "val", "Validation"}), ("test", {"test", "TEST"})]:
        assert set(getattr(task, s).ids) == set(frame.doc[frame.split.isin(aliases)])
    assert task.source["split_from"] == "split column"


def test_directory_of_split_files_honoured(tmp_path):
    frame = single_frame(6)
    parts = {"train.jsonl": frame.iloc[0::3], "val.jsonl": frame.iloc[1::3], "test.jsonl": frame.iloc[2::3]}
    for name, part in parts.items():
        write(part, tmp_path / name)
    task = load_task(str(tmp_path))
    assert task.train.ids == [f"train/{i}" for i in range(len(parts["train.jsonl"]))]
    assert task.validation.texts == parts["val.jsonl"].text.tolist()
    assert task.test.texts == parts["test.jsonl"].text.tolist()
    assert task.source["split_from"] == "files" and set(task.source["sha256"]) == set(parts)


# --- seeded split and caps -------------------------------------------------------------------------------------

def test_split_is_deterministic(tmp_path):
    path = str(write(single_frame(20), tmp_path / "d.csv"))
    a, b, c = (load_task(path, split_seed=seed) for seed in (0, 0, 1))
    assert a.checksum() == b.checksum() and a.test.ids == b.test.ids and a.train.ids == b.train.ids
    assert a.test.ids != c.test.ids and a.checksum() != c.checksum()
    for task in (a, c):  # stratified: every class in every split
        assert (task.summary()[task.labels] > 0).all().all()


def test_caps_keep_every_label(tmp_path):
    frame = pd.concat([single_frame(100, ("big",)), single_frame(10, ("mid",)), single_frame(4, ("rare",))])
    path = str(write(frame, tmp_path / "d.parquet"))
    task = load_task(path, max_train=10, max_eval=3, split_seed=3)
    uncapped = load_task(path, split_seed=3)
    assert [len(s) for s in task.splits.values()] == [10, 3, 3]
    assert ((task.summary() > 0) == (uncapped.summary() > 0)).all().all()
    assert (task.summary().loc["train"] > 0).all()
    counts = task.summary().loc["train"]
    assert counts["big"] > counts["mid"] >= counts["rare"]  # proportions kept beyond the one-each floor
    assert task.source["sizes_before_caps"] == {"train": 79, "validation": 12, "test": 23}
    assert task.source["sizes_before_caps"] == uncapped.source["sizes"] and task.source["sizes"]["train"] == 10
    again = load_task(path, max_train=10, max_eval=3, split_seed=3)
    assert again.checksum() == task.checksum()
    # a capped test set is a subset of the uncapped one: caps never move examples between splits
    assert set(task.test.ids) <= set(uncapped.test.ids)
    assert len(load_task(path, max_train=2).train) == 2  # below the number of labels: the cap still holds


@pytest.mark.parametrize("multi_label", [False, True], ids=["single-label", "multi-label"])
def test_caps_are_nested_so_a_learning_curve_grows_one_training_set(multi_label):
    from llmclf.data.tasks import _cap

    rng = np.random.default_rng(1)
    if multi_label:
        y = (rng.random((300, 6)) < [0.5, 0.3, 0.1, 0.05, 0.02, 0.01]).astype(np.int8)
    else:
        y = rng.choice(7, size=300, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.04, 0.01])
    kept = set()
    for cap in range(1, 301):
        rows = _cap(y, cap, np.random.default_rng([0, 0]))
        assert len(rows) == cap and kept <= set(rows.tolist()), cap  # every smaller set inside the larger
        kept = set(rows.tolist())
        if not multi_label and cap >= 7:
            counts, total = np.bincount(y[rows], minlength=7), np.bincount(y, minlength=7)
            assert (counts >= 1).all()  # every class while the cap allows
            if cap >= 50:  # in proportion, within about one row (the one-each floor displaces a little)
                assert np.abs(counts - cap * total / len(y)).max() <= 2, (cap, counts)


def test_multi_label_caps_cover_every_label(tmp_path):
    tags = [["common"]] * 60 + [["common", "rare1"]] * 3 + [["rare2"]] * 3
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(len(tags))], "tags": tags})
    task = load_task(str(write(frame, tmp_path / "m.jsonl")), label_field="tags", multi_label=True,
                     max_train=3, max_eval=2)
    assert len(task.train) == 3 and task.train.y.sum(axis=0).min() > 0


# --- the Task object -------------------------------------------------------------------------------------------

def test_checksum_changes_with_a_text(tmp_path):
    frame = single_frame()
    a = load_task(str(write(frame, tmp_path / "a.csv")))
    frame.loc[5, "text"] += "!"
    b = load_task(str(write(frame, tmp_path / "b.csv")))
    assert a.train.ids == b.train.ids and a.checksum() != b.checksum()


def test_split_helpers_and_summary():
    single = Split(texts=["p", "q", "r"], y=np.array([0, 2, 2]), ids=["1", "2", "3"])
    assert len(single) == 3
    assert single.label_indicator(3).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert single.label_names(["a", "b", "c"]) == [["a"], ["c"], ["c"]]
    multi = Split(texts=["p", "q"], y=np.array([[1, 1, 0], [0, 0, 0]], dtype=np.int8), ids=["1", "2"])
    assert multi.label_names(["a", "b", "c"]) == [["a", "b"], []]
    task = Task("t", ["a", "b", "c"], False, single, single, single)
    assert task.summary().loc["test"].tolist() == [3, 1, 0, 2]
    with pytest.raises(ValueError):
        Split(texts=["p"], y=np.array([0, 1]), ids=["1"])
    with pytest.raises(ValueError):
        Task("t", ["b", "a"], False, single, single, single)


def test_text_folder_like_bbc_news():
    task = load_task("bbc-news", data_dir=FIXTURES / "tiny_news", val_fraction=0.125, test_fraction=0.25)
    assert task.name == "bbc-news" and task.labels == ["business", "sport", "tech"]
    assert task.source["n_files"] == 24 and task.source["sha256"]["."]
    assert [len(s) for s in task.splits.values()] == [15, 3, 6]
    examples = all_examples(task)
    assert examples["sport/004"] == ("Headline 4\n\nThe team signed a new goalkeeper for £15m.\n", ["sport"])
    frame = read_text_folder(FIXTURES / "tiny_news")
    assert list(frame.columns) == ["id", "text", "label"] and len(frame) == 24


# --- errors ----------------------------------------------------------------------------------------------------

def error(match, *args, **kwargs):
    with pytest.raises(DataError, match=match) as info:
        load_task(*args, **kwargs)
    return str(info.value)


def test_error_missing_file_or_unknown_name(tmp_path):
    message = error("no such file", str(tmp_path / "nope.csv"))
    assert "nope.csv" in message and "bbc-news" in message
    assert "bbc-news" in error("not a built-in", "bbc_news")


def test_error_unknown_extension(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    assert ".parquet" in error("unsupported file type", str(tmp_path / "d.xlsx"))


def test_error_json_array_is_not_json_lines(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps(single_frame().to_dict("records")))
    error("JSON array; JSON Lines", str(tmp_path / "d.json"))


def test_error_missing_column(tmp_path):
    path = str(write(single_frame(), tmp_path / "d.csv"))
    message = error("no column 'body'", path, text_fields=["text", "body"])
    assert "d.csv" in message and "'doc', 'text', 'label'" in message
    assert "d.csv" in error("no column 'category'", path, label_field="category")
    error("no column 'uid'", path, id_field="uid")


def test_error_empty_texts(tmp_path):
    frame = single_frame()
    frame.loc[[3, 7], "text"] = ["", "   \n"]
    message = error("2 of 30 examples have empty or whitespace-only text", str(write(frame, tmp_path / "d.csv")))
    assert "['3', '7']" in message and "d.csv" in message
    frame.loc[3, "text"] = None
    error(r"2 of 30 .*doc-b-3", str(write(frame, tmp_path / "d.jsonl")), id_field="doc")


def test_error_missing_single_labels(tmp_path):
    frame = single_frame()
    frame.loc[4, "label"] = None
    assert "doc-b-4" in error("1 examples have no label in column 'label'",
                              str(write(frame, tmp_path / "d.parquet")), id_field="doc")
    assert "'4'" in error("no label", str(write(frame, tmp_path / "d.csv")))
    tags = pd.DataFrame({"text": ["a", "b"], "label": [["x"], ["y"]]})
    error("pass multi_label=True", str(write(tags, tmp_path / "t.jsonl")))


def test_error_labels_unseen_in_train(tmp_path):
    frame = single_frame(3)
    write(frame[frame.label != "c"], tmp_path / "train.csv")
    write(frame, tmp_path / "validation.csv")
    write(frame[frame.label != "c"], tmp_path / "test.csv")
    assert "{'c': 3}" in error("labels in validation never occur in train", str(tmp_path))


def test_error_too_few_per_class(tmp_path):
    frame = pd.concat([single_frame(10, ("a", "b")), single_frame(2, ("tiny",))])
    message = error("too few examples", str(write(frame, tmp_path / "d.csv")))
    assert "{'tiny': 2}" in message and "at least 3" in message


def test_error_directory_and_split_column(tmp_path):
    write(single_frame(), tmp_path / "train.csv")
    write(single_frame(), tmp_path / "val.csv")
    assert "['test']" in error("missing", str(tmp_path))
    frame = single_frame(2).assign(split=["train", "holdout"] * 3)
    assert "holdout" in error("column 'split' has values", str(write(frame, tmp_path / "s.csv")))


@pytest.mark.parametrize("kwargs, match", [
    ({"max_train": 0}, "max_train"), ({"max_eval": 1.5}, "max_eval"), ({"val_fraction": 0}, "val_fraction"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"), ({"text_fields": []}, "text_fields"),
    ({"text_fields": ["text", "label"]}, "label_field"), ({"split_seed": -1}, "split_seed"),
])
def test_error_bad_parameters(tmp_path, kwargs, match):
    error(match, str(write(single_frame(), tmp_path / "d.csv")), **kwargs)


def test_error_data_dir_only_for_builtin(tmp_path):
    error("data_dir is only for the built-in", str(write(single_frame(), tmp_path / "d.csv")), data_dir=tmp_path)


def test_error_duplicate_ids(tmp_path):
    frame = single_frame().assign(doc="same")
    error("ids occur more than once", str(write(frame, tmp_path / "d.csv")), id_field="doc")


def test_error_printed_list_in_csv(tmp_path):
    frame = pd.DataFrame({"text": ["a", "b"], "label": [json.dumps(["x", "y"]), "x"]})
    error("looks like a printed list", str(write(frame, tmp_path / "d.csv")), multi_label=True)


def test_duplicate_texts_are_dropped_before_a_random_split(tmp_path):
    import pandas as pd

    from llmclf.data.tasks import load_task

    rows = [{"text": f"text number {i % 20}", "label": "ab"[i % 2]} for i in range(40)]  # each text twice
    pd.DataFrame(rows).to_csv(tmp_path / "dup.csv", index=False)
    task = load_task(str(tmp_path / "dup.csv"))
    assert task.source["duplicate_texts_dropped"] == 20
    seen = [t for s in task.splits.values() for t in s.texts]
    assert len(seen) == len(set(seen)) == 20


def test_train_and_test_only_get_a_validation_split_carved_from_train(tmp_path):
    """Issue 9.4: a split column with train and test only; max_val and max_test cap each split on its own."""
    frame = single_frame(20).assign(split=(["train"] * 15 + ["test"] * 5) * 3)
    path = write(frame, tmp_path / "s.csv")
    task = load_task(str(path), id_field="doc", validation_fraction=0.2)
    assert (len(task.train), len(task.validation), len(task.test)) == (36, 9, 15)
    assert sorted(np.bincount(task.validation.y).tolist()) == [3, 3, 3]  # stratified
    assert not set(task.validation.ids) & set(task.train.ids)
    assert all(i.startswith("doc") for i in task.validation.ids)
    method = task.source["split_method"]
    assert "carved from the source's train split: 20%" in method["validation"] and "split_seed 0" in method["validation"]
    assert "split column" in method["test"]
    again = load_task(str(path), id_field="doc", validation_fraction=0.2)
    assert again.validation.ids == task.validation.ids  # seeded
    other = load_task(str(path), id_field="doc", validation_fraction=0.2, split_seed=1)
    assert other.validation.ids != task.validation.ids
    # the full test set with a small validation set; max_eval is shorthand for both
    capped = load_task(str(path), id_field="doc", validation_fraction=0.2, max_val=3)
    assert (len(capped.validation), len(capped.test)) == (3, 15) and "capped at 3" in capped.source["split_method"]["validation"]
    both = load_task(str(path), id_field="doc", validation_fraction=0.2, max_eval=6)
    assert (len(both.validation), len(both.test)) == (6, 6)
    own = load_task(str(path), id_field="doc", validation_fraction=0.2, max_eval=6, max_test=9)
    assert (len(own.validation), len(own.test)) == (6, 9)


def test_split_files_with_train_and_test_only_and_multi_label(tmp_path):
    rows = [{"text": f"t{i} " + " ".join(labs), "label": "|".join(labs)}
            for i, labs in enumerate([["a"], ["b"], ["a", "b"], ["c"], ["a", "c"]] * 8)]
    frame = pd.DataFrame(rows)
    write(frame.iloc[:30], tmp_path / "train.csv")
    write(frame.iloc[30:], tmp_path / "test.csv")
    task = load_task(str(tmp_path), multi_label=True, label_separator="|")
    assert (len(task.train), len(task.validation), len(task.test)) == (27, 3, 10)
    assert "iterative stratification" in task.source["split_method"]["validation"]


def test_unseen_multi_label_labels_suggest_the_separator(tmp_path):
    """Issue 9.8: 'a|b' read with the default ',' looks like an unseen label: the error names label_separator."""
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(12)],
                          "label": ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a|b", "a|b"],
                          "split": ["train"] * 10 + ["test"] * 2})
    message = error("never occur in train", str(write(frame, tmp_path / "m.csv")), multi_label=True)
    assert "label_separator" in message and "'|'" in message
