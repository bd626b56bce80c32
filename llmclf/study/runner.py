"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so; done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on. A run executes only under a claim on its folder
(study.locks), so two `llmclf run` of one study never execute one run twice; where the runs execute (here, one
after another, or on a Dask cluster) is study.executors' business.
"""

from __future__ import annotations

import time
import traceback
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from .locks import claimed, describe_holder, placement
from .record import RECORD_FILE, now, read_record, write_json_atomic
from .spec import RunSpec, load_study

NOTEBOOK_FILE = "notebook.ipynb"


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str          # done | skipped | failed | locked (running elsewhere) | interrupted | cancelled (not started)
    seconds: float = 0.0
    error: str | None = None
    attempt: int = 1     # > 1: earlier attempts died mid-run (a killed worker) and this one took over


def run_dir_for(spec: RunSpec, runs_root: Path) -> Path:
    return runs_root / spec.study / spec.run_id


# ---- issue 13: the run's claim (exactly once, study.locks); the run itself is _execute_claimed below ----------
def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None,
            holder_gone=None) -> RunOutcome:
    """Execute one run unless it is done or another live process is executing it.

    The run folder is claimed first (study.locks) and the record checked again under the claim, since another
    process may have finished the run meanwhile. A run whose holder died mid-run is taken over: the partial
    notebook is kept as notebook.attempt-<n>.ipynb and the record lists the earlier attempts. A run stopped by
    Ctrl-C or a cancelled task gets an 'interrupted' record, never 'done'. `holder_gone(lock_info)`: whether a
    holder on another host is provably gone (see locks.claim_run).
    """
    run_dir = run_dir_for(spec, runs_root)
    if _is_done(run_dir):
        return RunOutcome(spec, "skipped")
    with claimed(run_dir, holder_gone) as claim:
        if not claim.acquired:
            return RunOutcome(spec, "locked", error=claim.message())
        if _is_done(run_dir):
            return RunOutcome(spec, "skipped")
        attempts = _keep_partial_notebooks(run_dir, claim.previous_attempts)
        extra = {"ran_on": placement(), **({"previous_attempts": attempts} if attempts else {})}
        try:
            outcome = _execute_claimed(spec, runs_root, kernel_name, extra=extra)
        except BaseException as e:  # KeyboardInterrupt, a cancelled Dask task: recorded, then passed on
            _write_stopped(run_dir, spec, "interrupted", f"{type(e).__name__}: stopped before the run finished",
                           extra)
            raise
    outcome.attempt = len(attempts) + 1
    return outcome


def settle(spec: RunSpec, runs_root: Path, status: str, reason: str, holder_gone=None) -> RunOutcome:
    """Give a run whose executing process is gone (a worker killed for good, a study interrupted) a record saying
    so, keeping its partial notebook; only under the run's claim, so a live run's record is never touched."""
    run_dir = run_dir_for(spec, runs_root)
    if _is_done(run_dir):
        return RunOutcome(spec, "done")
    with claimed(run_dir, holder_gone) as claim:
        if not claim.acquired:
            return RunOutcome(spec, "locked", error=f"still running: {describe_holder(claim.holder)}")
        if _is_done(run_dir):
            return RunOutcome(spec, "done")
        if not claim.previous:  # nobody had started it
            cancelled = True
        else:
            cancelled = False
            attempts = _keep_partial_notebooks(run_dir, claim.previous_attempts, rename=False)
            last = attempts[-1]
            error = f"{reason} (it ran as {describe_holder(last)})"
            _write_stopped(run_dir, spec, status, error, {"ran_on": last, "previous_attempts": attempts})
    if cancelled:
        with suppress(OSError):
            run_dir.rmdir()  # the claim's empty folder: nothing ran
        return RunOutcome(spec, "cancelled")
    return RunOutcome(spec, status, error=error, attempt=len(attempts))


def _is_done(run_dir: Path) -> bool:
    try:
        record = read_record(run_dir)
    except ValueError:  # unreadable: not done
        return False
    return bool(record) and record.get("status") == "done"


def _keep_partial_notebooks(run_dir: Path, attempts: list[dict], rename: bool = True) -> list[dict]:
    """Before a new attempt, the partial notebook of the last one that died becomes notebook.attempt-<n>.ipynb
    (`rename`; otherwise it stays notebook.ipynb, as a failed run's does); each attempt names its notebook."""
    out = []
    for n, attempt in enumerate(attempts, 1):
        name = f"notebook.attempt-{n}.ipynb"
        if n == len(attempts) and not rename:
            name = NOTEBOOK_FILE
        elif n == len(attempts) and (run_dir / NOTEBOOK_FILE).exists() and not (run_dir / name).exists():
            (run_dir / NOTEBOOK_FILE).rename(run_dir / name)
        out.append({**attempt, "ended": "its process died before the run finished",
                    "partial_notebook": name if (run_dir / name).exists() else None})
    return out


def _write_stopped(run_dir: Path, spec: RunSpec, status: str, error: str, extra: dict) -> None:
    write_json_atomic(run_dir / RECORD_FILE, {
        "status": status, "study": spec.study, "run_id": spec.run_id, "label": spec.label,
        "notebook": spec.notebook, "params": spec.params, **({} if status == "running" else {"finished_at": now()}),
        "error": error, **extra,
        "partial_notebook": NOTEBOOK_FILE if (run_dir / NOTEBOOK_FILE).exists() else None})
# ---- end of issue 13's claim ---------------------------------------------------------------------------------


def _execute_claimed(spec: RunSpec, runs_root: Path, kernel_name: str | None = None, *,
                     extra: dict | None = None) -> RunOutcome:
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = read_record(run_dir)
    if previous and previous.get("status") == "done":
        return RunOutcome(spec, "skipped")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "params.json", {"study": spec.study, "run_id": spec.run_id,
                                               "notebook": spec.notebook, "label": spec.label,
                                               "params": spec.params})
    started, start = now(), time.perf_counter()
    # issue 13: a record from the start, replaced (not mixed in) when the run ends: a process that dies mid-run
    # leaves one that says the run did not finish, and where it ran
    _write_stopped(run_dir, spec, "running", f"started at {started}; not finished: if its process "
                   "(ran_on) is gone, it died mid-run, and a rerun of the study takes the run over", extra or {})
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started,
                **(extra or {})}  # issue 13: where it ran (host, worker, devices) and earlier attempts
    try:
        papermill.execute_notebook(
            str(spec.notebook_path), str(run_dir / NOTEBOOK_FILE),
            parameters={**spec.params, "run_dir": str(run_dir.resolve())},
            kernel_name=kernel_name, cwd=str(spec.notebook_path.parent), progress_bar=False,
        )
        record = read_record(run_dir)
        if not record or record.get("status") != "done":
            raise RuntimeError(f"the notebook finished without writing a 'done' record to {run_dir / RECORD_FILE}")
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, and the study goes on
        seconds = time.perf_counter() - start
        error = _describe(e)
        write_json_atomic(run_dir / RECORD_FILE, {
            "status": "failed", **identity, "notebook": spec.notebook, "params": spec.params,
            "finished_at": now(), "wall_seconds": seconds, "error": error,
            "traceback": traceback.format_exc()[-4000:], "partial_notebook": NOTEBOOK_FILE,
        })
        return RunOutcome(spec, "failed", seconds, error)
    seconds = time.perf_counter() - start
    record.update(identity, wall_seconds=seconds)
    write_json_atomic(run_dir / RECORD_FILE, record)
    return RunOutcome(spec, "done", seconds)


def _describe(e: Exception) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename:  # papermill's PapermillExecutionError carries the notebook's exception
        return f"{ename}: {evalue}"
    return f"{type(e).__name__}: {e}"


def run_study(study_file: str | Path, runs_root: str | Path = "runs", kernel_name: str | None = None,
              only: str | None = None, by_seed: bool = False, executor=None) -> list[RunOutcome]:
    """Execute every run of a study. `by_seed`: every configuration's first seed before any second seed, so that
    a long study stopped early still has every configuration. `executor`: where the runs execute (study.executors;
    default: one after another in this process). The outcomes come back in the study file's order."""
    from .executors import SequentialExecutor, StudyProgress  # issue 13

    specs = load_study(study_file)  # every run validated before the first starts
    if only:
        specs = [s for s in specs if only in s.run_id or only in s.label]
    position = {s.run_id: i for i, s in enumerate(specs)}
    specs = order_runs(specs, by_seed)
    runs_root = Path(runs_root)
    study = specs[0].study if specs else "?"
    start = time.perf_counter()
    # runs already done are counted here, not sent to an executor (each executor checks again under the claim)
    skipped = [RunOutcome(s, "skipped") for s in specs if _is_done(run_dir_for(s, runs_root))]
    to_run = [s for s in specs if not _is_done(run_dir_for(s, runs_root))]
    progress = StudyProgress(study, len(to_run), already_done=len(skipped))
    try:
        outcomes = skipped + (executor or SequentialExecutor()).run(to_run, runs_root, kernel_name, progress)
    finally:
        progress.close()
    outcomes.sort(key=lambda o: position[o.spec.run_id])  # the study file's order, however they ran
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("done", "skipped", "failed", "locked", "interrupted", "cancelled")}
    retried = sum(o.attempt > 1 for o in outcomes)
    others = "".join(f", {counts[s]} {name}" for s, name in (
        ("locked", "running in another process (skipped here)"), ("interrupted", "interrupted"),
        ("cancelled", "not started")) if counts[s])
    print(f"study {study}: {counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed{others}, {retried} retried, in "
          f"{time.perf_counter() - start:.0f}s; records under {runs_root.resolve() / (specs[0].study if specs else '')}")
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.spec.run_id} {o.spec.label}: {o.error}\n"
                  f"         see {run_dir_for(o.spec, runs_root) / NOTEBOOK_FILE}")
        elif o.status == "locked":
            print(f"  LOCKED {o.spec.run_id} {o.spec.label}: {o.error}")
    return outcomes


def order_runs(specs: list[RunSpec], by_seed: bool = False) -> list[RunSpec]:
    """The order runs start in, sequential or parallel: data explorations first, then (`by_seed`) every
    configuration's first seed before any second seed; the study file's order otherwise (the sorts are stable)."""
    if by_seed:
        seeds = sorted({s.params.get("seed", 0) for s in specs})
        specs = sorted(specs, key=lambda s: seeds.index(s.params.get("seed", 0)))
    return sorted(specs, key=lambda s: s.notebook != "00_data")
