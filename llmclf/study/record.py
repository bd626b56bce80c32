"""One JSON record per run, as peft's method_comparison keeps: status, parameters, metrics, costs, provenance."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

KEY_PACKAGES = ("llmclf", "torch", "transformers", "peft", "bitsandbytes", "accelerate",
                "scikit-learn", "scipy", "statsmodels", "numpy", "papermill")
RECORD_FILE = "record.json"
PREDICTIONS_FILE = "predictions.parquet"
VAL_PREDICTIONS_FILE = "val_predictions.parquet"
TEXT_CHARS = 400  # the start of each test text, kept beside its predictions for the report's examples


def write_json_atomic(path: str | Path, obj) -> None:
    """Write to a temporary file in the same folder, fsync it and rename it: a reader never sees half a record,
    and after a crash (even of the machine) the file is the old one or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_jsonable)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; records are for every reader of the study
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every platform opens folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


PARAMS_FILE = "params.json"


def run_identity(run_dir: str | Path) -> dict:
    """What `llmclf run` wrote to params.json before the notebook started (study, run id, label, start time, the
    data's fingerprint), and the wall time so far: the notebook writes it into its record, so that a done record
    is complete in one write and no crash can leave a done record without its identity."""
    path = Path(run_dir) / PARAMS_FILE
    try:
        written = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # run by hand: no runner, no identity
    out = {k: written[k] for k in ("study", "run_id", "label", "started_at", "data_fingerprint", "task_key",
                                   "ran_on", "previous_attempts") if k in written}
    if "started_unix" in written:
        out["wall_seconds"] = time.time() - written["started_unix"]
    return out


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_record(run_dir: str | Path) -> dict | None:
    """The run's record; None when there is none, or when it cannot be read (then the run is not done)."""
    path = Path(run_dir) / RECORD_FILE
    if not path.exists():
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def git_info(cwd: str | Path | None = None) -> dict:
    cwd = Path(cwd or Path(__file__).resolve().parent)

    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        commit = git("rev-parse", "HEAD")
        if commit.returncode != 0:
            return {"commit": None, "dirty": None, "error": commit.stderr.strip()[-200:]}
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"commit": None, "dirty": None, "error": str(e)}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info() -> dict:
    info = {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(), "gpu": None}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(model_checksum: str | None = None, data_checksum: str | None = None, **extra) -> dict:
    from ..version import code_version

    return {"git": git_info(), "code_version": code_version(), "packages": package_versions(),
            "machine": machine_info(),
            "model_checksum": model_checksum, "data_checksum": data_checksum, **extra}


def peak_memory_mb() -> dict:
    """Peak resident memory of this process (the notebook's kernel: one per run) and, on a GPU, peak allocated."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        import torch

        if torch.cuda.is_available():
            out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return out


class Timer:
    """Wall times of named phases: `with timer("train"): ...`, then `timer.seconds`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_summary(task, key: str | None = None) -> dict:
    """What a record says of its task: name, labels, sizes after caps and how each split was made, and `key`, the
    study's name for the task (from `llmclf run`, through params.json), which the report groups by."""
    return {**({"key": key} if key else {}), "name": task.name, "labels": task.labels, "multi_label": task.multi_label,
            "sizes": {s: len(getattr(task, s)) for s in ("train", "validation", "test")},
            "sizes_before_caps": task.source.get("sizes_before_caps"),
            "split_method": task.source.get("split_method")}


def save_exploration(run_dir: str, *, notebook: str, params: dict, task, stats: dict) -> dict:
    """The record of a run that trains nothing (data exploration): status, parameters, statistics, provenance."""
    identity = run_identity(run_dir) if run_dir else {}
    key = identity.pop("task_key", None)
    record = {"status": "done", **identity, "notebook": notebook,
              "finished_at": now(), "task": task_summary(task, key),
              "params": params, "data_stats": stats, "memory": peak_memory_mb(),
              "provenance": provenance(data_checksum=task.checksum(), data_source=task.source)}
    if run_dir:
        write_json_atomic(Path(run_dir) / RECORD_FILE, record)
    return record


def train_labels(task) -> dict:
    """What the floors need from the training split (analysis.floors): the count of each label and, for
    multi-label, every distinct label set with its count (as lists of label indices)."""
    indicator = np.asarray(task.train.label_indicator(task.n_labels)).astype(np.int8)
    out = {"train_label_counts": indicator.sum(axis=0).astype(int).tolist()}
    if task.multi_label:
        sets, counts = np.unique(indicator, axis=0, return_counts=True)
        out["train_label_sets"] = [[np.flatnonzero(row).tolist(), int(c)] for row, c in zip(sets, counts)]
    return out


def save_run(run_dir: str, *, notebook: str, params: dict, task, metrics: dict, costs: dict,
             test_proba: np.ndarray, model_checksum: str | None, extra: dict | None = None,
             val_proba: np.ndarray | None = None, test_invalid: np.ndarray | None = None,
             val_invalid: np.ndarray | None = None) -> dict | None:
    """Write predictions.parquet (test: id, the start of the text, p:<label>, y:<label>, invalid),
    val_predictions.parquet (the same for validation, without text; when `val_proba` is given) and the run's record
    (status 'done'). With no run_dir, only return the record.

    `invalid` (bool) marks the outputs that named no label (`test_invalid` / `val_invalid`: the classifier's
    `invalid_mask`, which the record's metrics scored as wrong); all False when no mask is given, so the report
    scores each row as the record did."""
    identity = run_identity(run_dir) if run_dir else {}
    key = identity.pop("task_key", None)
    record = {
        "status": "done",
        **identity,
        "notebook": notebook,
        "finished_at": now(),
        "task": {**task_summary(task, key), **train_labels(task)},
        "params": params,
        "metrics": metrics,
        **costs,
        **(extra or {}),
        "provenance": provenance(model_checksum=model_checksum, data_checksum=task.checksum(),
                                 data_source=task.source),
    }
    if not run_dir:
        return record
    import pandas as pd

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_predictions(run_dir / PREDICTIONS_FILE, task, task.test, test_proba, test_invalid, with_text=True)
    if val_proba is not None:
        _write_predictions(run_dir / VAL_PREDICTIONS_FILE, task, task.validation, val_proba, val_invalid,
                           with_text=False)
    write_json_atomic(run_dir / RECORD_FILE, record)
    return record


INVALID_COLUMN = "invalid"  # analysis.runs reads it back
HELD_OUT_PREDICTIONS_FILE = "heldout_predictions.parquet"


def save_held_out(run_dir: str | Path, task, proba: np.ndarray, invalid: np.ndarray | None = None) -> Path:
    """`llmclf confirm`: the kept model's predictions of the test rows `max_test` left out (task.held_out), in the
    format of predictions.parquet."""
    path = Path(run_dir) / HELD_OUT_PREDICTIONS_FILE
    _write_predictions(path, task, task.held_out, proba, invalid, with_text=True)
    return path


def _write_predictions(path: Path, task, split, proba, invalid, with_text: bool) -> None:
    import pandas as pd

    frame = pd.DataFrame(np.asarray(proba, dtype=np.float32), columns=[f"p:{l}" for l in task.labels])
    frame.insert(0, "id", split.ids)
    if with_text:
        frame.insert(1, "text", [t[:TEXT_CHARS] for t in split.texts])
    truth = split.label_indicator(task.n_labels)
    for j, label in enumerate(task.labels):
        frame[f"y:{label}"] = truth[:, j].astype(np.int8)
    invalid = np.zeros(len(frame), dtype=bool) if invalid is None else np.asarray(invalid, dtype=bool)
    if invalid.shape != (len(frame),):
        raise ValueError(f"the invalid mask has shape {invalid.shape}, expected {(len(frame),)}")
    frame[INVALID_COLUMN] = invalid
    tmp = path.parent / f".{path.name}.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


if __name__ == "__main__":  # pragma: no cover - quick look at what a record's provenance holds
    json.dump(provenance(), sys.stdout, indent=2)
