"""Held-out confirmation (`llmclf confirm <study>`): the kept models score the test rows the study's `max_test`
left out, a second test set that no run, threshold or choice has read.

For every done run of the study that kept its model: rebuild the run's task from its recorded parameters (the same
split: its test ids must equal the ones the run scored), predict `task.held_out` with the kept model and write
`heldout_predictions.parquet` beside its predictions. The report (analysis.heldout) then says whether the ranking
and the floor claims hold there. Runs that kept no model (zero-shot, save_model: false) are listed, not scored; a
run already confirmed after its record was written is skipped.

`max_held_out` (the study file's key, or `llmclf confirm --max-held-out N`) caps the rows scored at a stratified
sample of N, the same rows for every run of a task (drawn from the task's split seed), so that a large held-out
remainder (uspto-10k sections: 3,635 rows) costs minutes rather than an hour.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .record import HELD_OUT_PREDICTIONS_FILE, RECORD_FILE, read_record, save_held_out


def held_out_sample(task, max_held_out: int | None):
    """`task` with its held-out rows cut to a stratified sample of `max_held_out` (every row when None or when
    there are no more), drawn from the task's split seed: the same rows for every run of the task."""
    import dataclasses

    import numpy as np

    from ..data.tasks import Split, _cap

    rest = task.held_out
    if rest is None or max_held_out is None or len(rest.texts) <= max_held_out:
        return task
    rng = np.random.default_rng([int(task.source.get("split_seed") or 0), 3])  # a stream of its own (splits: 0-2)
    keep = np.sort(_cap(rest.y, max_held_out, rng))
    sample = Split(texts=[rest.texts[i] for i in keep], y=rest.y[keep], ids=[rest.ids[i] for i in keep])
    return dataclasses.replace(task, held_out=sample)


def confirm_study(study: str, runs_root: str | Path = "runs", run_ids: list[str] | None = None,
                  progress: bool = True, max_held_out: int | None = None) -> dict:
    """{"scored": [run ids], "skipped": {run id: why}, "failed": {run id: error}}; `run_ids`: only these runs;
    `max_held_out`: score at most this many held-out rows a task (a stratified sample, the same for every run)."""
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
        params = record.get("params") or {}
        try:
            cfg = config_for(record["notebook"]).from_dict(params)
            key = json.dumps([cfg.dataset, cfg.task_kwargs()], sort_keys=True, default=str)
            if key not in tasks:
                tasks[key] = held_out_sample(load_task(cfg.dataset, **cfg.task_kwargs()), max_held_out)
            task = tasks[key]
            if task.held_out is None:
                out["skipped"][run_id] = "its test split was not capped: nothing held out"
                continue
            if done.exists() and done.stat().st_mtime >= (run_dir / RECORD_FILE).stat().st_mtime:
                before = pd.read_parquet(done, columns=["id"])["id"].astype(str).tolist()
                if before == [str(i) for i in task.held_out.ids]:  # the same rows (another cap: scored again)
                    out["skipped"][run_id] = "already confirmed"
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
