"""Per-example predictions of a study's runs, read back for the report: what the statistics need.

Each run folder holds predictions.parquet (test: `id`, optionally `text`, `p:<label>`, `y:<label>`, and from newer
code `invalid`: the generated answers that named no label) and, for runs made by newer code, val_predictions.parquet
(validation, the same columns) and the training labels in the record (`task.train_label_counts`,
`task.train_label_sets`). A file without the `invalid` column reads as all valid. Plain files: no import of
llmclf.study.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .statistics import predictions

PREDICTIONS_FILE = "predictions.parquet"
VAL_PREDICTIONS_FILE = "val_predictions.parquet"
HELD_OUT_PREDICTIONS_FILE = "heldout_predictions.parquet"  # `llmclf confirm`: the test rows max_test left out
INVALID_COLUMN = "invalid"


@dataclass
class RunPredictions:
    run_id: str
    labels: list[str]
    multi_label: bool
    threshold: object          # a float, or one per label
    ids: np.ndarray
    proba: np.ndarray          # (n, L) test probabilities
    truth: np.ndarray          # (n, L) 0/1
    texts: np.ndarray | None   # the start of each test text, when recorded
    val_proba: np.ndarray | None = None
    val_truth: np.ndarray | None = None
    invalid: np.ndarray | None = None       # (n,) bool: test outputs that named no label (None: all valid)
    val_invalid: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        """Statistics' convention: (n,) label indices (single-label) or the (n, L) 0/1 matrix (multi-label)."""
        return self.truth if self.multi_label else self.truth.argmax(axis=1)

    @property
    def val_y(self):
        if self.val_truth is None:
            return None
        return self.val_truth if self.multi_label else self.val_truth.argmax(axis=1)

    def predicted(self) -> np.ndarray:
        """Label indices (single-label) or the 0/1 matrix at the run's threshold (multi-label). An invalid output
        predicts the pseudo-class L (single-label) or no label (multi-label), as the run's record scored it."""
        return _decide(self.proba, self.multi_label, self.threshold, self.invalid)

    def val_predicted(self) -> np.ndarray | None:
        """`predicted` on the validation split (None when it was not recorded)."""
        if self.val_proba is None:
            return None
        return _decide(self.val_proba, self.multi_label, self.threshold, self.val_invalid)

    def aligned(self, ids) -> "RunPredictions | None":
        """The same run with its test rows in the order of `ids` (None when some id is missing)."""
        where = pd.Index(self.ids).get_indexer(ids)
        if (where < 0).any():
            return None
        return RunPredictions(self.run_id, self.labels, self.multi_label, self.threshold, np.asarray(ids),
                              self.proba[where], self.truth[where],
                              None if self.texts is None else self.texts[where], self.val_proba, self.val_truth,
                              None if self.invalid is None else self.invalid[where], self.val_invalid)


def _decide(proba, multi_label, threshold, invalid):
    return predictions(proba, multi_label, 0.5 if threshold is None else threshold, invalid)


def _split(frame: pd.DataFrame, labels: list[str]):
    proba = frame[[f"p:{l}" for l in labels]].to_numpy(dtype=np.float64)
    truth = frame[[f"y:{l}" for l in labels]].to_numpy().astype(np.int8)
    return proba, truth


def _invalid(frame: pd.DataFrame) -> np.ndarray | None:
    """The invalid-output mask, None when the file predates it or marks no row (then every row is valid)."""
    if INVALID_COLUMN not in frame.columns:
        return None
    mask = frame[INVALID_COLUMN].fillna(False).to_numpy().astype(bool)
    return mask if mask.any() else None


def read_run_predictions(run_dir: str | Path, file: str = PREDICTIONS_FILE) -> RunPredictions | None:
    """A done run's predictions, or None when its record or predictions file is missing or unreadable. `file`:
    the test predictions, or HELD_OUT_PREDICTIONS_FILE (then without the validation split's)."""
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "record.json").read_text())
        frame = pd.read_parquet(run_dir / file)
    except (OSError, ValueError):
        return None
    task = record.get("task") or {}
    labels = list(task.get("labels") or [c[2:] for c in frame.columns if c.startswith("p:")])
    proba, truth = _split(frame, labels)
    threshold = (record.get("metrics") or {}).get("threshold")
    run = RunPredictions(record.get("run_id", run_dir.name), labels, bool(task.get("multi_label")),
                         0.5 if threshold is None else threshold, frame["id"].astype(str).to_numpy(), proba, truth,
                         frame["text"].astype(str).to_numpy() if "text" in frame.columns else None,
                         invalid=_invalid(frame))
    if file != PREDICTIONS_FILE:
        return run
    try:
        val = pd.read_parquet(run_dir / VAL_PREDICTIONS_FILE)
        run.val_proba, run.val_truth = _split(val, labels)
        run.val_invalid = _invalid(val)
    except (OSError, ValueError, KeyError):
        pass
    return run


def train_labels(record_task: dict, n_labels: int, multi_label: bool) -> np.ndarray | None:
    """A training-label array equivalent for the floors to the training split (same counts; for multi-label the
    same label sets with their counts), rebuilt from the record; None when the record predates these fields."""
    if multi_label:
        sets = record_task.get("train_label_sets")
        if not sets:
            return None
        rows = []
        for indices, count in sets:
            row = np.zeros(n_labels, dtype=np.int8)
            row[list(indices)] = 1
            rows.extend([row] * int(count))
        return np.array(rows)
    counts = record_task.get("train_label_counts")
    if not counts:
        return None
    return np.repeat(np.arange(n_labels), np.asarray(counts, dtype=int))
