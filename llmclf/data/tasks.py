"""Load a classification task: texts, labels and a fixed train/validation/test split.

Every approach in the study trains and scores on a Task, so one checksum identifies the data a run saw.
Sources: the built-in bbc-news folder, or your own CSV / JSON Lines / Parquet file(s). The source's own split is
kept when it has one (train/validation/test files in a directory, or a `split` column), since results only compare
on the same split; otherwise a seeded stratified split is made. Anything that would make a run meaningless
(empty texts, missing labels, labels the model never trains on) is an error here, before any training starts.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import sha256_file  # artifacts imports only the standard library: nothing is fetched
from .patents import PATENT_DATASETS  # read from the shared data folder

BUILTIN_DATASETS = ("bbc-news",)
SUPPORTED_EXTENSIONS = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
SPLITS = ("train", "validation", "test")
# the names a source may give each split, as a `split` column value or as a file name in a directory
SPLIT_ALIASES = {"train": "train", "validation": "validation", "val": "validation", "valid": "validation",
                 "dev": "validation", "test": "test"}
# a class needs one example for each of train, validation and test (sklearn does not promise it a place in
# every split even then, but with fewer it cannot have one)
MIN_PER_CLASS = 3


class DataError(ValueError):
    """The data cannot make a valid task."""


@dataclass(eq=False, repr=False)
class Split:
    texts: list[str]
    y: np.ndarray  # single-label: (n,) int64 label indices; multi-label: (n, n_labels) int8 0/1 indicator
    ids: list[str]

    def __post_init__(self):
        if not len(self.texts) == len(self.ids) == len(self.y):
            raise ValueError(f"Split: {len(self.texts)} texts, {len(self.ids)} ids and {len(self.y)} labels differ")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:  # the default would print every text
        return f"Split(n={len(self)}, y.shape={self.y.shape})"

    def label_indicator(self, n_labels: int) -> np.ndarray:
        """(n, n_labels) int8 0/1 matrix, for single- and multi-label alike, so metrics need not ask which."""
        if self.y.ndim == 1:
            out = np.zeros((len(self), n_labels), dtype=np.int8)
            out[np.arange(len(self)), self.y] = 1
            return out
        if self.y.shape[1] != n_labels:
            raise ValueError(f"Split has {self.y.shape[1]} label columns, not n_labels={n_labels}")
        return self.y.astype(np.int8, copy=False)

    def label_names(self, labels: list[str]) -> list[list[str]]:
        return [[labels[j] for j in np.flatnonzero(row)] for row in self.label_indicator(len(labels))]


@dataclass(eq=False, repr=False)
class Task:
    name: str
    labels: list[str]  # sorted label names; y holds indices into this list
    multi_label: bool
    train: Split
    validation: Split
    test: Split
    label_descriptions: dict[str, str] | None = None  # for instruction prompts
    source: dict = field(default_factory=dict)  # provenance: path, file sha256s, split seed, fractions, caps, sizes
    # the test rows `max_test` left out: no run reads them; `llmclf confirm` scores the kept models on them, a
    # second test set for the report's held-out confirmation (None when the test split was not capped)
    held_out: Split | None = None

    def __post_init__(self):
        if self.labels != sorted(set(self.labels)):
            raise ValueError(f"Task {self.name!r}: labels must be sorted and unique, got {self.labels[:10]}")

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    @property
    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(s)}" for k, s in self.splits.items())
        return f"Task({self.name!r}, {self.n_labels} labels, multi_label={self.multi_label}, {sizes})"

    def checksum(self) -> str:
        """sha256 over labels and every split's ids, texts and y: the exact data a run saw."""
        h = hashlib.sha256()
        for part in [self.labels, self.multi_label]:
            h.update(json.dumps(part).encode() + b"\n")
        for name, split in self.splits.items():
            # JSON escapes newlines, so one item a line cannot be confused with another
            for part in [name, split.ids, split.texts, split.y.tolist()]:
                h.update(json.dumps(part).encode() + b"\n")
        return h.hexdigest()

    def summary(self) -> pd.DataFrame:
        """One row per split: the number of examples, then the count of each label."""
        rows = [[len(s), *s.label_indicator(self.n_labels).sum(axis=0).tolist()] for s in self.splits.values()]
        return pd.DataFrame(rows, index=pd.Index(list(self.splits), name="split"), columns=["n", *self.labels])


def load_task(dataset: str | Path, *, text_fields: list[str] | str = "text", label_field: str = "label",
              multi_label: bool = False, label_separator: str = ",", id_field: str | None = None,
              max_train: int | None = None, max_eval: int | None = None, split_seed: int = 0,
              val_fraction: float = 0.1, test_fraction: float = 0.2, data_dir: str | Path | None = None,
              label_level: str = "section", min_label_count: int = 1, max_val: int | None = None,
              max_test: int | None = None, validation_fraction: float = 0.1) -> Task:
    """Load `dataset` ("bbc-news", a data file, or a directory of train/validation/test files) as a Task.

    val_fraction and test_fraction are fractions of the whole data, used only when the source has no split.
    max_train caps the training split, max_val the validation and max_test the test split (max_eval is shorthand
    for both), stratified and seeded by split_seed; the caps apply after splitting, so a capped test set is a
    subset of the uncapped one. A source with train and test only (a `split` column or split files) gets a
    validation split carved from train: `validation_fraction` of it, stratified (iteratively for multi-label),
    seeded by split_seed. `source["split_method"]` says how each split was made.
    data_dir: for a built-in dataset, read it from this folder instead of fetching the artifact; for a patent
    data set (uspto-10k, uspto-ipc-sections), the folder holding it (default: $LLMCLF_DATA_DIR, ../shared/data).
    label_level: CPC level of uspto-10k's labels (section, class, subclass, main_group).
    min_label_count: labels with fewer examples are dropped, and then the examples left with no label.
    """
    text_fields = [text_fields] if isinstance(text_fields, str) else list(text_fields)
    _check_params(text_fields, label_field, label_separator, max_train, max_eval, split_seed, val_fraction,
                  test_fraction)
    for pname, cap in [("max_val", max_val), ("max_test", max_test)]:
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise DataError(f"{pname} must be None (no cap) or a positive integer, got {cap!r}")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) \
            or not 0 < validation_fraction < 1:
        raise DataError(f"validation_fraction must be a number between 0 and 1 (exclusive), got "
                        f"{validation_fraction!r}")
    max_val = max_eval if max_val is None else max_val
    max_test = max_eval if max_test is None else max_test
    if isinstance(min_label_count, bool) or not isinstance(min_label_count, int) or min_label_count < 1:
        raise DataError(f"min_label_count must be a positive integer, got {min_label_count!r}")
    if str(dataset) in PATENT_DATASETS:
        name, frames, source, text_fields, label_field, id_field = _read_patents(
            str(dataset), data_dir, text_fields, label_field, multi_label, label_level)
    else:
        name, frames, source = _read_source(dataset, data_dir)
    if name == "bbc-news" and id_field is None:
        id_field = "id"

    ids, texts, labels, split_of = [], [], [], []
    for split, frame, where, id_prefix in frames:
        f_ids, f_texts, f_labels = _extract(frame, where, text_fields, label_field, id_field, multi_label,
                                            label_separator, id_prefix)
        ids += f_ids
        texts += f_texts
        labels += f_labels
        split_of += _split_column(frame, where) if split is None and "split" in frame.columns else [split] * len(frame)
    duplicated = [i for i, c in Counter(ids).items() if c > 1]
    if duplicated:
        raise DataError(f"{source['path']}: {len(duplicated)} ids occur more than once in id field {id_field!r}, "
                        f"e.g. {duplicated[:5]}; ids must be unique")

    if multi_label and labels and not any(labels):
        raise DataError(f"{source['path']}: no example has a label in column {label_field!r} (all {len(labels)} "
                        f"are empty); check label_field, and label_separator={label_separator!r}")

    if min_label_count > 1:
        ids, texts, labels, split_of = _drop_rare_labels(ids, texts, labels, split_of, min_label_count, source)

    if None in split_of:
        # Exact duplicate texts (bbc-news has 98) would otherwise land in train and test alike and inflate scores:
        # the first occurrence is kept. A source's own split is kept as it is; its overlap is only counted.
        first = {}
        for i, text in enumerate(texts):
            first.setdefault(text.strip(), i)
        keep = sorted(first.values())
        source["duplicate_texts_dropped"] = len(texts) - len(keep)
        source["duplicate_texts_with_other_labels"] = sum(
            _as_tuple(labels[i]) != _as_tuple(labels[first[texts[i].strip()]]) for i in range(len(texts)))
        ids, texts, labels, split_of = ([v[i] for i in keep] for v in (ids, texts, labels, split_of))
        source.update(split_from="random", val_fraction=val_fraction, test_fraction=test_fraction)
        index = _random_split(labels, multi_label, split_seed, val_fraction, test_fraction, source)
        how = f"random, stratified on {source.get('stratified_on', 'label')}, split_seed {split_seed}"
        source["split_method"] = {
            "train": f"{how} ({1 - val_fraction - test_fraction:.0%} of the data)",
            "validation": f"{how} ({val_fraction:.0%} of the data)",
            "test": f"{how} ({test_fraction:.0%} of the data)"}
    else:
        source.setdefault("split_from", "split column")
        given = source["split_from"]
        split_of = np.array(split_of)
        index = {s: np.flatnonzero(split_of == s) for s in SPLITS}
        source["split_method"] = {s: f"the source's own ({given})" for s in SPLITS}
        if len(index["validation"]) == 0:
            index["train"], index["validation"] = _carve_validation(
                index["train"], labels, multi_label, split_seed, validation_fraction, source)
            source["split_method"]["train"] = (f"the source's own ({given}), less the validation split carved "
                                               "from it")
            source["split_method"]["validation"] = (
                f"carved from the source's train split: {validation_fraction:.0%} of it, stratified on "
                f"{'all labels (iterative stratification)' if multi_label else 'label'}, split_seed {split_seed}")
            source["validation_fraction"] = validation_fraction
        train_texts = {texts[i].strip() for i in index["train"]}
        source["eval_texts_also_in_train"] = {s: int(sum(texts[i].strip() in train_texts for i in index[s]))
                                              for s in ("validation", "test")}

    names = sorted({lab for i in index["train"] for lab in _as_tuple(labels[i])})
    known = set(names)
    for s in ("validation", "test"):
        unseen = Counter(lab for i in index[s] for lab in _as_tuple(labels[i]) if lab not in known)
        if unseen:
            hint = ""
            if multi_label:
                likely = sorted({c for lab in unseen for c in "|;,/ " if c in lab and c != label_separator})
                if likely:
                    hint = (f" The labels contain {likely}: if that separates labels, set label_separator to it "
                            f"(now {label_separator!r}).")
            raise DataError(f"{source['path']}: {len(unseen)} labels in {s} never occur in train, e.g. "
                            f"{dict(unseen.most_common(10))} (label: count); a model cannot learn them. "
                            f"Drop or merge them (min_label_count), or use another split.{hint}")
    position = {lab: j for j, lab in enumerate(names)}
    if multi_label:
        y = np.zeros((len(labels), len(names)), dtype=np.int8)
        for i, labs in enumerate(labels):
            y[i, [position[lab] for lab in labs]] = 1
    else:
        y = np.array([position[lab] for lab in labels], dtype=np.int64)

    source["sizes_before_caps"] = {s: len(index[s]) for s in SPLITS}
    source.update(split_seed=split_seed, max_train=max_train, max_val=max_val, max_test=max_test,
                  multi_label=multi_label,
                  text_fields=text_fields, label_field=label_field, id_field=id_field)
    splits, held_out = {}, None
    for k, s in enumerate(SPLITS):
        cap = {"train": max_train, "validation": max_val, "test": max_test}[s]
        rng = np.random.default_rng([split_seed, k])  # one stream a split: capping one leaves the others alone
        keep = index[s][_cap(y[index[s]], cap, rng)]
        if cap is not None and cap < len(index[s]):
            source["split_method"][s] += f"; capped at {cap} (stratified)"
        splits[s] = Split(texts=[texts[i] for i in keep], y=y[keep], ids=[ids[i] for i in keep])
        if s == "test" and len(keep) < len(index[s]):
            rest = np.setdiff1d(index[s], keep)
            held_out = Split(texts=[texts[i] for i in rest], y=y[rest], ids=[ids[i] for i in rest])
    source["sizes"] = {s: len(splits[s]) for s in SPLITS}
    descriptions = None
    if str(dataset) in PATENT_DATASETS:
        from .patents import label_descriptions

        descriptions = label_descriptions(names, label_level if str(dataset) == "uspto-10k" else "section")
    return Task(name=name, labels=names, multi_label=multi_label, source=source, label_descriptions=descriptions,
                held_out=held_out, **splits)


def _read_patents(dataset, data_dir, text_fields, label_field, multi_label, label_level):
    """A patent data set's frames, with the data set's own fields unless others were asked for."""
    from .patents import dataset_folder, uspto_10k_frame

    spec = PATENT_DATASETS[dataset]
    folder = dataset_folder(dataset, data_dir)
    if text_fields == ["text"]:  # the default: the data set's own text fields
        text_fields = spec["text_fields"]
    if dataset == "uspto-10k":
        frame, extra = uspto_10k_frame(folder, label_level, multi_label)
        path = folder / spec["file"]
        source = {"dataset": dataset, "path": str(path), "format": "jsonl.gz",
                  "sha256": {path.name: sha256_file(path)}, **extra}
        # one data set, several tasks: the name says which, so a report keeps them apart
        name = f"{dataset} ({label_level}, {'multi' if multi_label else 'single'}-label)"
        return name, [(None, frame, str(path), "")], source, text_fields, "label", spec["id_field"]
    if not multi_label:
        raise DataError(f"{dataset} is multi-label (IPC sections, 1.45 a document): set multi_label=True")
    _, frames, source = _read_source(str(folder), None)
    source["dataset"] = dataset
    return dataset, frames, source, text_fields, spec["label_field"], None


def _drop_rare_labels(ids, texts, labels, split_of, min_count, source):
    counts = Counter(lab for labs in labels for lab in _as_tuple(labs))
    rare = {lab for lab, c in counts.items() if c < min_count}
    keep, new_labels = [], []
    for i, labs in enumerate(labels):
        if isinstance(labs, tuple):
            kept = tuple(lab for lab in labs if lab not in rare)
            if kept:
                keep.append(i)
                new_labels.append(kept)
        elif labs not in rare:
            keep.append(i)
            new_labels.append(labs)
    source.update(min_label_count=min_count, labels_dropped_as_rare=len(rare),
                  examples_dropped_without_labels=len(labels) - len(keep))
    if not keep:
        raise DataError(f"{source['path']}: no label occurs at least min_label_count={min_count} times")
    return [ids[i] for i in keep], [texts[i] for i in keep], new_labels, [split_of[i] for i in keep]


def read_text_folder(folder: str | Path) -> pd.DataFrame:
    """A folder of `<class>/<name>.txt` files (the bbc-news layout) as a frame with columns id, text, label."""
    rows = []
    for f in _text_files(Path(folder)):
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # the BBC files are mostly ASCII, a few latin-1 (a bare 0xa3 for the pound)
            text = raw.decode("latin-1", errors="replace")
        rows.append({"id": f"{f.parent.name}/{f.stem}", "text": text, "label": f.parent.name})
    return pd.DataFrame(rows)


def _text_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"text folder {folder} does not exist or is not a directory")
    # hidden folders (.ipynb_checkpoints, .git) are not classes
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{folder}: no class subfolders (expected <class>/<name>.txt)")
    files = []
    for class_dir in class_dirs:
        found = sorted(class_dir.glob("*.txt"))
        if not found:
            raise DataError(f"{class_dir}: class folder has no .txt files")
        files += found
    return files


# --- reading sources -------------------------------------------------------------------------------------------

def _check_params(text_fields, label_field, label_separator, max_train, max_eval, split_seed, val_fraction,
                  test_fraction):
    if not text_fields or not all(isinstance(f, str) and f for f in text_fields):
        raise DataError(f"text_fields must be a column name or a non-empty list of them, got {text_fields!r}")
    if label_field in text_fields:
        raise DataError(f"label_field {label_field!r} is also in text_fields {text_fields}: the label would be "
                        f"part of the input")
    if not isinstance(label_separator, str) or not label_separator:
        raise DataError(f"label_separator must be a non-empty string, got {label_separator!r}")
    for pname, cap in [("max_train", max_train), ("max_eval", max_eval)]:
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1):
            raise DataError(f"{pname} must be None (no cap) or a positive integer, got {cap!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise DataError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    for pname, frac in [("val_fraction", val_fraction), ("test_fraction", test_fraction)]:
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise DataError(f"{pname} must be a number between 0 and 1 (exclusive), got {frac!r}")
    if val_fraction + test_fraction >= 1:
        raise DataError(f"val_fraction + test_fraction must be below 1 to leave a training split, got "
                        f"{val_fraction} + {test_fraction}")


def _extension(path: Path) -> str | None:
    name = path.name.lower()
    return next((e for e in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True) if name.endswith(e)), None)


def _read_source(dataset, data_dir):
    """-> (task name, [(split or None, frame, where, id prefix)], provenance)."""
    if dataset in BUILTIN_DATASETS:
        if data_dir is None:
            from llmclf import artifacts  # lazily: fetching pulls in the download machinery
            data_dir = artifacts.fetch(dataset)
        folder = Path(data_dir)
        frame = read_text_folder(folder)
        files = _text_files(folder)
        # one digest for the folder: 2,225 per-file hashes would swamp every run's record
        listing = "".join(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n" for p in files)
        source = {"dataset": dataset, "path": str(folder), "format": "text folder", "split_from": "random",
                  "sha256": {".": hashlib.sha256(listing.encode()).hexdigest()}, "n_files": len(files)}
        return dataset, [(None, frame, str(folder), "")], source
    if data_dir is not None:
        raise DataError(f"data_dir is only for the built-in datasets {list(BUILTIN_DATASETS)}; for your own data "
                        f"pass its path as dataset, got dataset={dataset!r}")

    path = Path(dataset).expanduser()
    if not path.exists():
        raise DataError(f"dataset {dataset!r}: no such file or directory; looked in {[str(path.resolve())]} "
                        f"(a relative path is read from the current directory, {Path.cwd()}; a study resolves it "
                        f"against the study file's folder), and not a built-in "
                        f"dataset; built-in datasets: {list(BUILTIN_DATASETS)}; files may be "
                        f"{', '.join(SUPPORTED_EXTENSIONS)}")
    if path.is_dir():
        split_files = _find_split_files(path)
        frames = [(s, _read_file(p), str(p), f"{p.name[:-len(_extension(p))]}/") for s, p in split_files.items()]
        source = {"dataset": dataset, "path": str(path), "format": _extension(split_files["train"]).lstrip("."),
                  "split_from": "files", "sha256": {p.name: sha256_file(p) for p in split_files.values()}}
        return path.name, frames, source
    ext = _extension(path)
    if ext is None:
        raise DataError(f"{path}: unsupported file type; supported: {', '.join(SUPPORTED_EXTENSIONS)} "
                        f"(.json is read as JSON Lines)")
    source = {"dataset": dataset, "path": str(path), "format": ext.lstrip("."),
              "sha256": {path.name: sha256_file(path)}}
    return path.name[:-len(ext)], [(None, _read_file(path), str(path), "")], source


def _find_split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        ext = _extension(p)
        if p.is_file() and ext and p.name[:-len(ext)].lower() in SPLIT_ALIASES:
            found.setdefault(SPLIT_ALIASES[p.name[:-len(ext)].lower()], []).append(p)
    for s, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"{folder}: several files for the {s} split: {[p.name for p in paths]}; keep one")
    missing = [s for s in ("train", "test") if s not in found]
    if missing:
        data_files = [p.name for p in sorted(folder.iterdir()) if p.is_file() and _extension(p)]
        raise DataError(f"{folder}: a dataset directory needs train and test files, and optionally validation "
                        f"(or val/valid/dev; else carved from train) "
                        f"({', '.join(SUPPORTED_EXTENSIONS)}); missing {missing}; data files there: {data_files}. "
                        f"For a single file, pass the file's path")
    return {s: found[s][0] for s in SPLITS if s in found}


def _read_file(path: Path) -> pd.DataFrame:
    ext = _extension(path)
    try:
        if ext.startswith(".csv"):
            # everything as text, and no "NA"/"null" turned into NaN: a label may well be called "NA"
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif ext.startswith(".json"):
            opener = gzip.open if ext.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                start = f.read(1024).lstrip()[:1]
            if start == "[":  # pandas would read a whole array as one row with columns 0, 1, 2, ...
                raise DataError(f"{path}: is a JSON array; JSON Lines (one object a line) is expected")
            frame = pd.read_json(path, lines=True, dtype=False)  # dtype=False keeps "007" a string
        else:
            frame = pd.read_parquet(path)
    except DataError:
        raise
    except Exception as e:  # re-raised with the file named, not swallowed
        raise DataError(f"{path}: cannot read as {ext}{' (JSON Lines: one object a line)' if 'json' in ext else ''}"
                        f": {type(e).__name__}: {e}") from e
    if len(frame) == 0:
        raise DataError(f"{path}: no rows")
    return frame


def _is_missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _is_list(v) -> bool:
    return isinstance(v, (list, tuple, np.ndarray))


def _first_ids(ids, rows, k=5):
    return [ids[i] for i in rows[:k]]


def _extract(frame, where, text_fields, label_field, id_field, multi_label, separator, id_prefix):
    """-> (ids, texts, labels) of one frame; a label is a str (single-label) or a tuple of str (multi-label)."""
    for column in [*text_fields, label_field, *([id_field] if id_field else [])]:
        if column not in frame.columns:
            raise DataError(f"{where}: no column {column!r}; available columns: {[str(c) for c in frame.columns]}")
    if id_field:
        ids = [None if _is_missing(v) else str(v) for v in frame[id_field].tolist()]
        no_id = [i for i, v in enumerate(ids) if v is None or not v.strip()]
        if no_id:
            raise DataError(f"{where}: {len(no_id)} rows have no value in id field {id_field!r}, "
                            f"e.g. rows {no_id[:5]}")
    else:
        ids = [f"{id_prefix}{i}" for i in range(len(frame))]

    columns = [frame[c].tolist() for c in text_fields]
    texts = []
    for i, values in enumerate(zip(*columns)):
        parts = []
        for column, v in zip(text_fields, values):
            if _is_list(v) or isinstance(v, dict):
                raise DataError(f"{where}: text column {column!r} holds {type(v).__name__} values (row id "
                                f"{ids[i]}), not text")
            if not _is_missing(v) and str(v).strip():  # an absent title should not leave a stray "\n"
                parts.append(str(v))
        texts.append("\n".join(parts))
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise DataError(f"{where}: {len(empty)} of {len(texts)} examples have empty or whitespace-only text in "
                        f"{text_fields}, ids {_first_ids(ids, empty)}{' ...' if len(empty) > 5 else ''}; "
                        f"remove or fill them")

    raw = frame[label_field].tolist()
    if multi_label:
        labels = [_parse_multi(v, separator, where, label_field, ids[i]) for i, v in enumerate(raw)]
    else:
        labels = []
        for i, v in enumerate(raw):
            if _is_list(v):
                raise DataError(f"{where}: label column {label_field!r} holds lists (row id {ids[i]}); pass "
                                f"multi_label=True for a multi-label task")
            labels.append(None if _is_missing(v) or not str(v).strip() else str(v).strip())
        unlabelled = [i for i, lab in enumerate(labels) if lab is None]
        if unlabelled:
            raise DataError(f"{where}: {len(unlabelled)} examples have no label in column {label_field!r}, ids "
                            f"{_first_ids(ids, unlabelled)}; a single-label task needs one label per example")
    return ids, texts, labels


def _parse_multi(v, separator, where, label_field, row_id) -> tuple[str, ...]:
    # a missing or empty value is a document with no labels (an all-zero row), which multi-label data may have
    if _is_missing(v):
        return ()
    if _is_list(v):
        items = [str(x) for x in v if not _is_missing(x)]
        inside = [x for x in items if separator in x]
        if inside:  # written back as text (CSV, the record, the report) it would read as several labels
            raise DataError(f"{where}: label {inside[0]!r} (row id {row_id}) contains label_separator "
                            f"{separator!r}; choose a label_separator that no label contains (e.g. '|')")
    else:
        text = str(v).strip()
        if text.startswith("[") and text.endswith("]"):
            raise DataError(f"{where}: label column {label_field!r} holds the string {text[:40]!r} (row id "
                            f"{row_id}), which looks like a printed list; write labels joined by "
                            f"label_separator={separator!r}, or use a list column (JSON Lines or Parquet)")
        items = text.split(separator)
    return tuple(dict.fromkeys(x.strip() for x in items if x.strip()))  # dict keeps the first-seen order


def _split_column(frame, where) -> list[str]:
    values = [str(v).strip().lower() for v in frame["split"].tolist()]
    unknown = sorted(set(values) - set(SPLIT_ALIASES))
    if unknown:
        raise DataError(f"{where}: column 'split' has values {unknown[:10]}; allowed: {list(SPLIT_ALIASES)}")
    split = [SPLIT_ALIASES[v] for v in values]
    missing = [s for s in ("train", "test") if s not in split]
    if missing:
        raise DataError(f"{where}: column 'split' has no rows for {missing}; it needs train and test (and "
                        f"validation, else one is carved from train: validation_fraction)")
    return split


def _as_tuple(label) -> tuple[str, ...]:
    return label if isinstance(label, tuple) else (label,)


# --- splitting and capping -------------------------------------------------------------------------------------

def _random_split(labels, multi_label, seed, val_fraction, test_fraction, source) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if multi_label:
        return _iterative_split(labels, seed, val_fraction, test_fraction, source)

    keys = np.array(labels)  # single-label from here on: stratified on the label
    counts = Counter(keys.tolist())
    too_few = {k: c for k, c in sorted(counts.items(), key=lambda kc: kc[1]) if c < MIN_PER_CLASS}
    if too_few:
        raise DataError(f"{source['path']}: classes with too few examples for a stratified train/validation/test "
                        f"split (at least {MIN_PER_CLASS} each are needed): {dict(list(too_few.items())[:10])} "
                        f"(class: count). Drop or merge them, or give the data its own split")
    stratify = True
    source["stratified_on"] = "label"
    everything = np.arange(len(labels))
    try:
        rest, test = train_test_split(everything, test_size=test_fraction, random_state=seed,
                                      stratify=keys if stratify else None)
        if stratify:
            left = Counter(keys[rest].tolist())
            short = {k: left.get(k, 0) for k in counts if left.get(k, 0) < 2}
            if short:
                raise DataError(f"{source['path']}: after taking test_fraction={test_fraction}, classes "
                                f"{dict(list(short.items())[:10])} have fewer than 2 examples left for train and "
                                f"validation; lower test_fraction or add examples")
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                      stratify=keys[rest] if stratify else None)
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{source['path']}: cannot split {len(labels)} examples with val_fraction={val_fraction}, "
                        f"test_fraction={test_fraction}: {e}") from e
    # source order within each split, so ids read in file order and the split depends on the seed alone
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}


def _carve_validation(train: np.ndarray, labels, multi_label: bool, seed: int, fraction: float,
                      source) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions: `fraction` of the source's train split as validation, stratified on the label
    (iterative stratification for multi-label), seeded by `seed`."""
    from sklearn.model_selection import train_test_split

    if len(train) < 2:
        raise DataError(f"{source['path']}: {len(train)} training examples: too few to carve a validation split")
    if multi_label:
        from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

        names = sorted({lab for i in train for lab in labels[i]})
        position = {lab: j for j, lab in enumerate(names)}
        y = np.zeros((len(train), len(names)), dtype=np.int8)
        for r, i in enumerate(train):
            y[r, [position[lab] for lab in labels[i]]] = 1
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        keep, val = next(splitter.split(np.zeros((len(train), 1)), y))
    else:
        keys = np.array([labels[i] for i in train])
        counts = Counter(keys.tolist())
        # a class with a single training example stays in train (the model must see it), unstratified otherwise
        stratify = keys if min(counts.values()) >= 2 else None
        try:
            keep, val = train_test_split(np.arange(len(train)), test_size=fraction, random_state=seed,
                                         stratify=stratify)
        except ValueError:  # fewer validation rows than classes: stratification cannot hold
            keep, val = train_test_split(np.arange(len(train)), test_size=fraction, random_state=seed)
    return np.sort(train[keep]), np.sort(train[val])


def _cap(y: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Positions (sorted) of at most `cap` rows of y, stratified, keeping every label present while the cap allows,
    and nested: the rows kept under a cap are kept under every larger cap (a learning curve's larger training set
    contains the smaller ones).

    Single-label: each class's rows in a seeded random order; the k-th row of a class with m rows queues at
    (k + 0.5) / m (Sainte-Lague's divisors: a class's share of the first `cap` rows is in proportion to its size,
    and a larger cap only adds rows), every class's first row ahead of all others (largest classes first, so a cap
    below the number of classes keeps the largest). The first `cap` rows of that queue are kept."""
    n = len(y)
    if cap is None or cap >= n:
        return np.arange(n)
    if y.ndim == 2:
        return _cap_multi(y, cap, rng)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    order, priority = [], []
    by_size = np.argsort(-counts, kind="stable")
    rank_of = np.empty(len(classes), dtype=np.int64)
    rank_of[by_size] = np.arange(len(classes))
    for c in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(inverse == c))
        k = np.arange(len(rows))
        key = (k + 0.5) / counts[c]
        key[0] = -1.0 + rank_of[c] / (len(classes) + 1)  # first rows first, the largest class's first
        order.append(rows)
        priority.append(key)
    order, priority = np.concatenate(order), np.concatenate(priority)
    queue = order[np.lexsort((order, priority))]  # ties (equal shares) by row position: deterministic
    return np.sort(queue[:cap])


def _cap_multi(y: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    chosen: list[int] = []
    covered = np.zeros(y.shape[1], dtype=bool)
    # rarest label first, one example for each label not yet covered; then fill the rest at random
    for j in np.argsort(y.sum(axis=0), kind="stable"):
        if len(chosen) == cap:
            break
        if covered[j] or not y[:, j].any():
            continue
        candidates = np.setdiff1d(np.flatnonzero(y[:, j]), chosen)
        i = int(rng.choice(candidates))
        chosen.append(i)
        covered |= y[i].astype(bool)
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), chosen))[:cap - len(chosen)]
    return np.sort(np.concatenate([np.array(chosen, dtype=np.int64), rest]))


def _iterative_split(labels, seed, val_fraction, test_fraction, source) -> dict[str, np.ndarray]:
    """Multi-label: iterative stratification (Sechidis et al. 2011, via iterative-stratification), so that every
    label is spread over train, validation and test in proportion, as far as its count allows."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    names = sorted({lab for labs in labels for lab in labs})
    position = {lab: j for j, lab in enumerate(names)}
    y = np.zeros((len(labels), len(names)), dtype=np.int8)
    for i, labs in enumerate(labels):
        y[i, [position[lab] for lab in labs]] = 1
    x = np.zeros((len(labels), 1))
    first = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
    rest, test = next(first.split(x, y))
    second = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=val_fraction / (1 - test_fraction),
                                              random_state=seed)
    train, val = next(second.split(x[rest], y[rest]))
    source["stratified_on"] = "all labels (iterative stratification)"
    return {"train": np.sort(rest[train]), "validation": np.sort(rest[val]), "test": np.sort(test)}
