"""Fault injection (issue 12, point 11): a 4-run study killed with SIGKILL inside a run, in the record window and
between runs, then rerun. No record is ever corrupt or incomplete, no finished run is executed again, and the final
metrics equal a clean run's. One `llmclf run` at a time (concurrent runs are the locks' business).

TF-IDF runs through the real papermill path: each takes a few seconds on an idle machine (kernel start and imports).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import synthetic_rows
from llmclf.study.spec import load_study

REQUIRED = ("status", "run_id", "label", "study", "started_at", "wall_seconds", "data_fingerprint", "metrics",
            "params", "provenance", "finished_at")


def _study(tmp_path) -> Path:
    data = tmp_path / "data.csv"
    pd.DataFrame(synthetic_rows()).to_csv(data, index=False)
    study = tmp_path / "faults.yaml"
    study.write_text(f"""
name: faults
defaults: {{dataset: "{data}"}}
runs:
  - notebook: 30_baselines
    label: tfidf logreg
    params: {{baseline: tfidf, c_values: [1.0, 100.0]}}
    seeds: [0, 1]
  - notebook: 30_baselines
    label: tfidf svm
    params: {{baseline: tfidf, linear_model: svm, c_values: [1.0, 100.0]}}
    seeds: [0, 1]
""")
    return study


def _start(study: Path, runs: Path) -> subprocess.Popen:
    # a session of its own, so that SIGKILL takes the kernel too, as a crash of the machine would
    return subprocess.Popen([sys.executable, "-m", "llmclf.cli", "run", str(study), "--runs-root", str(runs)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    pytest.fail("the kill point was never reached")


def _seconds_after(condition, seconds: float):
    """A condition that holds `seconds` after `condition` first held."""
    since = []

    def holds() -> bool:
        if not since and condition():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] > seconds

    return holds


def _records(folder: Path) -> dict[str, bytes]:
    """Every record's bytes, after checking that each parses and that a done one is complete."""
    out = {}
    for path in sorted(folder.glob("*/record.json")):
        raw = path.read_bytes()
        record = json.loads(raw)  # a corrupt record fails here
        if record["status"] == "done":
            missing = [k for k in REQUIRED if k not in record]
            assert not missing, f"{path}: done record without {missing}"
            assert record["run_id"] == path.parent.name
            out[path.parent.name] = raw
    return out


def _done(folder: Path) -> int:
    n = 0
    for path in folder.glob("*/record.json"):
        try:
            n += json.loads(path.read_bytes())["status"] == "done"
        except (OSError, ValueError):
            pass
    return n


def test_sigkill_at_any_point_leaves_no_bad_record_and_reruns_finish_like_a_clean_run(tmp_path):
    study = _study(tmp_path)
    runs = tmp_path / "runs"
    folder = runs / "faults"
    specs = load_study(study)
    assert len(specs) == 4
    finished: dict[str, bytes] = {}

    def check():
        now = _records(folder)
        for run_id, raw in finished.items():  # a finished run is never executed again: its record is untouched
            assert now.get(run_id) == raw, f"{run_id} was executed again or its record changed"
        finished.update(now)

    # 1. inside the first run: 1.5 s after its folder appeared, its kernel is starting or computing
    _kill_when(_start(study, runs), _seconds_after(lambda: any(folder.glob("*/params.json")), 1.5))
    check()
    # 2. the record window: the moment a done record appears (the old code added run_id, label and timings after)
    before = _done(folder)
    _kill_when(_start(study, runs), lambda: _done(folder) > before)
    check()
    assert len(finished) >= 1
    # 3. between runs: as soon as the next run's folder is made after another record
    before, seen = _done(folder), {p.parent.name for p in folder.glob("*/params.json")}
    _kill_when(_start(study, runs), lambda: _done(folder) > before
               and bool({p.parent.name for p in folder.glob("*/params.json")} - seen - set(finished)))
    check()
    # 4. rerun to the end
    proc = _start(study, runs)
    assert proc.wait(timeout=300) == 0
    check()
    assert set(finished) == {s.run_id for s in specs}

    # the same metrics as a clean run of each spec
    from llmclf.approaches.baselines import make_baseline
    from llmclf.config import BaselineConfig
    from llmclf.data.tasks import load_task
    from llmclf.study.experiment import fit_and_evaluate

    for spec in specs:
        record = json.loads(finished[spec.run_id])
        cfg = BaselineConfig.from_dict(spec.params)
        task = load_task(cfg.dataset, **cfg.task_kwargs())
        clf = make_baseline(cfg, None)
        clean = fit_and_evaluate(clf, task, epochs=clf.epochs).metrics
        for m in ("f1_micro", "f1_macro", "accuracy"):
            assert record["metrics"][m] == pytest.approx(clean[m], abs=1e-12), (spec.label, m)


def test_ctrl_c_stops_after_the_current_cell_records_interrupted_and_exits_130(tmp_path):
    """Issue 12.6: a terminal's Ctrl-C (SIGINT to the foreground group; the kernel has a session of its own)."""
    study = _study(tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "llmclf.cli", "run", str(study), "--runs-root", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list((runs / "faults").glob("*/params.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2)  # the kernel is up and running cells
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted (Ctrl-C)" in out and "Traceback" not in err
    (record,) = [json.loads(p.read_text()) for p in (runs / "faults").glob("*/record.json")]
    assert record["status"] == "interrupted" and record["run_id"] and "Ctrl-C" in record["error"]
