"""Progress inside a run: long loops report to `<run dir>/progress.json`, which `llmclf run` reads while papermill
executes the notebook (a notebook is saved only when a cell completes, so it cannot show a 20-minute cell's life).

The run folder comes from `$LLMCLF_RUN_DIR` (set by the runner for the kernel) or is passed in; without one (a
notebook run by hand) only the tqdm bar shows. The file is written atomically, at most about once a second:

    {"phase": "train", "step": 12, "total": 40, "elapsed": 31.2, "eta": 72.8, "updated_at": 1763800000.0}

Base layer: imports only the standard library and tqdm, so any module may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

ENV_VAR = "LLMCLF_RUN_DIR"
PROGRESS_FILE = "progress.json"
MIN_WRITE_INTERVAL = 1.0  # seconds between two writes of progress.json


def current_run_dir(run_dir: str | Path | None = None) -> Path | None:
    run_dir = run_dir or os.environ.get(ENV_VAR)
    return Path(run_dir) if run_dir else None


def read_progress(run_dir: str | Path) -> dict | None:
    try:
        with open(Path(run_dir) / PROGRESS_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Progress:
    """`with Progress("predict", total=n) as p: ... p.update(k)`: a tqdm bar (unless `bar=False`, e.g. where
    the Trainer draws its own) and progress.json in the run folder."""

    def __init__(self, phase: str, total: int | None = None, run_dir: str | Path | None = None, bar: bool = True,
                 unit: str = "it"):
        self.phase, self.total, self.step = phase, total, 0
        self.run_dir = current_run_dir(run_dir)
        self.start = time.perf_counter()
        self._last_write = 0.0
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=phase, unit=unit, mininterval=1.0, leave=False)
        self._write(force=True)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()
        self._write(force=True)

    def update(self, n: int = 1) -> None:
        self.step += n
        if self.bar is not None:
            self.bar.update(n)
        self._write()

    def state(self) -> dict:
        elapsed = time.perf_counter() - self.start
        eta = None
        if self.total and self.step:
            eta = elapsed / self.step * max(self.total - self.step, 0)
        return {"phase": self.phase, "step": self.step, "total": self.total, "elapsed": round(elapsed, 2),
                "eta": None if eta is None else round(eta, 2), "updated_at": time.time()}

    def _write(self, force: bool = False) -> None:
        if self.run_dir is None or not self.run_dir.is_dir():
            return
        now = time.perf_counter()
        if not force and now - self._last_write < MIN_WRITE_INTERVAL and self.step != self.total:
            return
        self._last_write = now
        try:
            _write_atomic(self.run_dir / PROGRESS_FILE, self.state())
        except OSError:
            pass  # progress is a courtesy: it never fails a run

    def close(self) -> None:
        self._write(force=True)
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable, phase: str, total: int | None = None, run_dir: str | Path | None = None, bar: bool = True):
    """`for x in track(batches, "predict", total=n): ...`: Progress over an iterable, one step an item."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with Progress(phase, total, run_dir, bar) as p:
        for item in iterable:
            yield item
            p.update(1)


def describe(state: dict | None) -> str:
    """One line for the terminal: 'train 12/40 (30%), 31 s, about 73 s left'."""
    if not state:
        return "starting"
    step, total = state.get("step", 0), state.get("total")
    text = f"{state.get('phase', '?')} {step}" + (f"/{total} ({step / total:.0%})" if total else "")
    text += f", {state.get('elapsed', 0):.0f} s"
    if state.get("eta") is not None:
        text += f", about {state['eta']:.0f} s left"
    return text
