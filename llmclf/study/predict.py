"""After the study: a run's kept model, loaded to classify new texts (`llmclf predict`, `llmclf.load_run`).

A run keeps what it trained in `<run_dir>/model` (`keep_model`, called by every approach's notebook unless the run
says `save_model = False`); `load_run` finds the run (a folder, or a run id in a study), checks that it finished and
kept a model, and loads it with `approaches.persistence.load_classifier`. `RunModel.predict_proba` validates the
texts, runs them in batches sorted by length behind a progress bar, and returns rows in input order.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..approaches.persistence import MODEL_FILE, ModelLoadError, folder_bytes, load_classifier
from .record import read_record

MODEL_DIR = "model"
LLM_NOTEBOOKS = ("10_embedding_head", "20_instruction_tuning")


class PredictError(ValueError):
    """A request `llmclf predict` / `load_run` cannot serve: no such run, no kept model, bad input."""


def keep_model(clf, run_dir: str) -> dict:
    """`clf.save` into `<run_dir>/model` (written aside, then renamed: a model folder is always complete). Returns
    what the record says about it: `model_dir` (relative to the run) and `model_bytes`; nothing without run_dir."""
    if not run_dir:
        return {"model_dir": None}
    folder = Path(run_dir) / MODEL_DIR
    tmp = Path(run_dir) / f".{MODEL_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    clf.save(str(tmp))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return {"model_dir": MODEL_DIR, "model_bytes": folder_bytes(folder)}


def find_run(run: str | Path, study: str | None = None, runs_root: str | Path = "runs") -> Path:
    """A run folder, or a run id under `runs_root/<study>/` (any study when it is the only match)."""
    path = Path(run)
    if path.is_dir():
        return path
    root = Path(runs_root)
    if study:
        candidate = root / study / str(run)
        if candidate.is_dir():
            return candidate
        raise PredictError(f"no run {run!r} in study {study!r} ({root / study})")
    matches = [d / str(run) for d in sorted(root.iterdir()) if (d / str(run)).is_dir()] if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PredictError(f"{run!r} is neither a run folder nor a run id under {root.resolve()}")
    raise PredictError(f"run id {run!r} is in several studies ({[m.parent.name for m in matches]}): name the study")


class RunModel:
    """A finished run's kept classifier: `predict_proba(texts)` -> (n, labels), `predict(texts)` -> label names."""

    def __init__(self, classifier, record: dict, run_dir: Path):
        self.classifier = classifier
        self.record = record
        self.run_dir = run_dir
        self.labels: list[str] = list(classifier.labels)
        self.multi_label: bool = classifier.multi_label
        self.threshold = classifier.threshold
        self.invalid_mask: np.ndarray | None = None
        params = record.get("params") or {}
        self.text_fields: list[str] = list(params.get("text_fields") or ["text"])
        self.label_separator: str = params.get("label_separator") or ","
        self.batch_size = int(params.get("eval_batch_size") or 16)

    @property
    def run_id(self) -> str:
        return self.record.get("run_id") or self.run_dir.name

    def __repr__(self) -> str:
        return (f"RunModel({self.run_id}, {type(self.classifier).__name__}, {len(self.labels)} labels, "
                f"{'multi' if self.multi_label else 'single'}-label)")

    def predict_proba(self, texts, progress: bool = False, chunk: int | None = None) -> np.ndarray:
        """Probabilities of every label, rows in input order. Texts run in chunks sorted by length (each chunk
        batched again by the approach), so a progress bar can follow a long input."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        invalid = np.zeros(len(texts), dtype=bool)
        chunk = chunk or self.batch_size * 8
        order = np.argsort([len(t) for t in texts], kind="stable")
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), unit="text", disable=not progress, file=sys.stderr) as bar:
            for start in range(0, len(order), chunk):
                idx = order[start:start + chunk]
                out[idx] = self.classifier.predict_proba([texts[i] for i in idx])
                mask = getattr(self.classifier, "invalid_mask", None)
                if mask is not None:
                    invalid[idx] = mask
                bar.update(len(idx))
        self.invalid_mask = invalid
        return out

    def decide(self, proba: np.ndarray) -> list:
        """Predicted label (single-label) or labels (multi-label, at the run's threshold(s)) per row; a row the
        approach marked invalid (a generated answer naming no label) predicts nothing (None / [])."""
        invalid = self.invalid_mask if self.invalid_mask is not None and len(self.invalid_mask) == len(proba) \
            else np.zeros(len(proba), dtype=bool)
        if self.multi_label:
            hits = proba >= np.asarray(self.threshold, dtype=float)
            return [[] if bad else [self.labels[j] for j in np.flatnonzero(row)] for row, bad in zip(hits, invalid)]
        return [None if bad else self.labels[j] for j, bad in zip(proba.argmax(axis=1), invalid)]

    def predict(self, texts, progress: bool = False) -> list:
        return self.decide(self.predict_proba(texts, progress))

    def predict_frame(self, texts, ids=None, progress: bool = False):
        """A table: [id,] predicted, then p:<label> for every label; rows in input order."""
        import pandas as pd

        proba = self.predict_proba(texts, progress)
        frame = pd.DataFrame({"predicted": self.decide(proba)})
        if ids is not None:
            frame.insert(0, "id", list(ids))
        for j, label in enumerate(self.labels):
            frame[f"p:{label}"] = proba[:, j]
        return frame


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise PredictError("predict_proba takes a list of texts, not one string: wrap it in a list")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise PredictError(f"{len(bad)} inputs are not text, e.g. at positions {bad[:5]}")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise PredictError(f"{len(empty)} of {len(texts)} texts are empty or whitespace only, at positions "
                           f"{empty[:5]}{' ...' if len(empty) > 5 else ''} (counting from 0)")
    return texts


def load_run(run: str | Path, study: str | None = None, runs_root: str | Path = "runs",
             model_path: str | None = None) -> RunModel:
    """The classifier a finished run kept, ready for `predict_proba(texts)`. `run`: a run folder or a run id
    (with `study`, or found under `runs_root`); `model_path`: the base model's folder, when it is not where it was
    at training (its checksum must match)."""
    run_dir = find_run(run, study, runs_root)
    if (run_dir / MODEL_FILE).is_file():  # an exported folder (`llmclf export`), or a run's model folder itself
        exported = run_dir / "run_record.json"
        record = json.loads(exported.read_text()) if exported.is_file() else {}
        try:
            return RunModel(load_classifier(str(run_dir), model_path), record, run_dir)
        except ModelLoadError as e:
            raise PredictError(str(e)) from None
    record = read_record(run_dir)
    if record is None or record.get("status") != "done":
        status = record.get("status") if record else "no record.json"
        raise PredictError(f"{run_dir} is not a finished run ({status})")
    model_dir = run_dir / (record.get("model_dir") or MODEL_DIR)
    if not (model_dir / MODEL_FILE).is_file():
        raise PredictError(f"run {record.get('run_id') or run_dir.name} kept no model (it ran with save_model = "
                           f"False, trains nothing, or ran before models were kept): run it again with "
                           f"save_model: true")
    try:
        clf = load_classifier(str(model_dir), model_path)
    except ModelLoadError as e:
        raise PredictError(str(e)) from None
    return RunModel(clf, record, run_dir)


# ---------------------------------------------------------------------------------------------------------------
# files in, files out (`llmclf predict`)


def read_inputs(path: str, text_fields: list[str]) -> tuple[list[str], list | None]:
    """(texts, ids or None) from a CSV / JSON Lines / Parquet file (the text fields joined with a newline, as in
    training), or from standard input ('-'), one text a line."""
    if path == "-":
        lines = sys.stdin.read().split("\n")
        if lines and lines[-1] == "":
            lines = lines[:-1]  # the newline that ends the last line
        return [line.rstrip("\r") for line in lines], None
    from ..data.tasks import DataError, _read_file

    p = Path(path)
    if not p.is_file():
        raise PredictError(f"input file {path} does not exist")
    try:
        frame = _read_file(p)
    except DataError as e:
        raise PredictError(str(e)) from None
    missing = [c for c in text_fields if c not in frame.columns]
    if missing:
        raise PredictError(f"{path}: no text column(s) {missing}; its columns are {[str(c) for c in frame.columns]}"
                           f" (name others with --text-field)")
    texts = []
    for values in zip(*(frame[c].tolist() for c in text_fields)):
        parts = [str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))
                 and str(v).strip()]
        texts.append("\n".join(parts))
    ids = frame["id"].tolist() if "id" in frame.columns else None
    return texts, ids


def write_predictions(frame, output: str | None, label_separator: str = ",") -> None:
    """CSV, JSON Lines or Parquet by the output's extension; CSV on standard output when there is no output."""
    def flat(f):
        f = f.copy()
        f["predicted"] = [label_separator.join(v) if isinstance(v, list) else v for v in f["predicted"]]
        return f

    if output in (None, "-"):
        flat(frame).to_csv(sys.stdout, index=False)
        return
    suffix = Path(output).suffix.lower()
    if suffix == ".csv":
        flat(frame).to_csv(output, index=False)
    elif suffix in (".jsonl", ".json"):
        frame.to_json(output, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        raise PredictError(f"output {output}: unknown extension {suffix!r}; use .csv, .jsonl or .parquet")


def predict_file(run, input: str, output: str | None = None, *, study: str | None = None,
                 runs_root: str | Path = "runs", text_fields: list[str] | None = None,
                 model_path: str | None = None, progress: bool = True):
    """`llmclf predict`: every input's predicted label(s) and every label's probability, in input order."""
    model = load_run(run, study, runs_root, model_path)
    texts, ids = read_inputs(input, text_fields or model.text_fields)
    if not texts:
        raise PredictError(f"{input}: no texts to classify")
    frame = model.predict_frame(texts, ids, progress=progress)
    write_predictions(frame, output, model.label_separator)
    return frame


# ---------------------------------------------------------------------------------------------------------------
# another run of the same study as a teacher (40_distillation)


def teacher_candidates(spec, earlier: list) -> list:
    """The runs among `earlier` (the study's runs that start before `spec`) that resolve_teacher may choose as the
    teacher of `spec`: run side by side, `spec` must wait until they have ended, as a sequential study has them
    done by then; otherwise 'best' would choose among the runs that happened to be finished."""
    ref = (spec.params or {}).get("teacher_run") or ""
    if ref == "best":
        return [s for s in earlier if s.notebook in LLM_NOTEBOOKS]
    if ref.startswith("label:"):
        name = ref[6:]
        return [s for s in earlier if s.label == name or s.label.startswith(name + " (")]
    return []


def resolve_teacher(ref: str, run_dir: str = "", seed: int | None = None, data_checksum: str | None = None):
    """A teacher reference -> its run folder (None for ''): a folder; 'label:<configuration label>' (the run of
    that configuration with the same seed, else its best); or 'best' (the best embedding-head or instruction run).
    Labels and 'best' look among the finished runs of the study `run_dir` belongs to, on the same data when
    `data_checksum` is given; the run chosen must have kept its model.

    "Best" is the highest validation F1 micro (from each run's val_predictions.parquet, scored as the report scores
    it), never a test metric: the student is scored on the test split, which must not have chosen its teacher.
    Ties, and runs without validation predictions (older code; ranked last), are broken by the run's folder name."""
    if not ref:
        return None
    if not (ref.startswith("label:") or ref == "best"):
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise PredictError(f"teacher_run {ref!r} is not a run folder, 'label:<configuration label>' or 'best'")
        return path
    if not run_dir:
        raise PredictError(f"teacher_run {ref!r} names a run of the study, but this run is not in a study "
                           f"(run_dir is empty): give the teacher's run folder")
    study_dir = Path(run_dir).resolve().parent
    candidates = []
    for folder in sorted(p for p in study_dir.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        record = read_record(folder)
        if not record or record.get("status") != "done" or folder.resolve() == Path(run_dir).resolve():
            continue
        if data_checksum and (record.get("provenance") or {}).get("data_checksum") != data_checksum:
            continue
        label = record.get("label") or ""
        if ref == "best":
            if record.get("notebook") not in LLM_NOTEBOOKS:
                continue
        elif not (label == ref[6:] or label.startswith(ref[6:] + " (")):
            continue
        candidates.append((folder, record))
    if not candidates:
        what = "embedding-head or instruction run" if ref == "best" else f"run labelled {ref[6:]!r}"
        raise PredictError(f"no finished {what} in {study_dir}: list the teacher before the distillation run in "
                           f"the study file")
    if ref != "best" and seed is not None:
        same_seed = [c for c in candidates if (c[1].get("params") or {}).get("seed") == seed]
        candidates = same_seed or candidates
    folder, record = min(candidates, key=lambda c: (-validation_f1(c[0]), c[0].name))
    if not (folder / (record.get("model_dir") or MODEL_DIR) / MODEL_FILE).is_file():
        # not quietly the next best: the teacher would not be the one the study file means
        raise PredictError(f"the teacher run {folder.name} ({record.get('label')}) kept no model (it ran with "
                           f"save_model = False, or before runs kept their models): remove {folder} and run the "
                           f"study again, or set save_model: true for it")
    return folder


def validation_f1(run_dir: Path) -> float:
    """A run's F1 micro on its validation split (-inf when it recorded no validation predictions)."""
    from ..analysis.runs import read_run_predictions
    from ..analysis.statistics import score

    run = read_run_predictions(run_dir)
    if run is None or run.val_proba is None:
        return float("-inf")
    return score(run.val_y, run.val_predicted(), "f1_micro", run.multi_label, len(run.labels))
