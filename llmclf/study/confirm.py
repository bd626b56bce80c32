"""Held-out confirmation (`llmclf confirm <study>`): the kept models score the test rows the study's `max_test`
left out, a second test set that no run, threshold or choice has read.

For every done run of the study that kept its model: rebuild the run's task from its recorded parameters (the same
split: its test ids must equal the ones the run scored), predict `task.held_out` with the kept model and write
`heldout_predictions.parquet` beside its predictions. The report (analysis.heldout) then says whether the ranking
and the floor claims hold there. Runs that kept no model (zero-shot, save_model: false) are listed, not scored; a
run already confirmed after its record was written is skipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .record import HELD_OUT_PREDICTIONS_FILE, RECORD_FILE, read_record, save_held_out


def confirm_study(study: str, runs_root: str | Path = "runs", run_ids: list[str] | None = None,
                  progress: bool = True) -> dict:
    """{"scored": [run ids], "skipped": {run id: why}, "failed": {run id: error}}; `run_ids`: only these runs."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..config import config_for
    from ..data.tasks import load_task
    from .predict import PredictError, load_run

    folder = Path(runs_root) / study
    if not folder.is_dir():
        raise FileNotFoundError(f"no runs of study {study!r} in {folder}")
    dirs = sorted(p.parent for p in folder.glob(f"*/{RECORD_FILE}"))
    if run_ids is not None:
        dirs = [d for d in dirs if d.name in set(run_ids)]
    out = {"scored": [], "skipped": {}, "failed": {}}
    tasks: dict = {}
    for run_dir in tqdm(dirs, desc=f"confirm {study}", unit="run", disable=not progress, file=sys.stderr):
        record = read_record(run_dir)
        run_id = run_dir.name
        if record is None or record.get("status") != "done" or record.get("notebook") == "00_data":
            continue
        done = run_dir / HELD_OUT_PREDICTIONS_FILE
        if done.exists() and done.stat().st_mtime >= (run_dir / RECORD_FILE).stat().st_mtime:
            out["skipped"][run_id] = "already confirmed"
            continue
        params = record.get("params") or {}
        try:
            cfg = config_for(record["notebook"]).from_dict(params)
            key = json.dumps([cfg.dataset, cfg.task_kwargs()], sort_keys=True, default=str)
            if key not in tasks:
                tasks[key] = load_task(cfg.dataset, **cfg.task_kwargs())
            task = tasks[key]
            if task.held_out is None:
                out["skipped"][run_id] = "its test split was not capped: nothing held out"
                continue
            scored = pd.read_parquet(run_dir / "predictions.parquet", columns=["id"])["id"].astype(str).tolist()
            if sorted(scored) != sorted(map(str, task.test.ids)):
                raise ValueError("the data no longer gives the test split this run scored (the data or the split "
                                 "code changed): run the study again")
            try:
                model = load_run(run_dir)
            except PredictError as e:
                out["skipped"][run_id] = str(e)
                continue
            proba = model.predict_proba(task.held_out.texts)
            save_held_out(run_dir, task, proba, model.invalid_mask)
            out["scored"].append(run_id)
        except Exception as e:  # noqa: BLE001 - one run's failure is reported and the others go on
            out["failed"][run_id] = f"{type(e).__name__}: {e}"
    return out
