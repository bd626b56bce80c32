"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so and its data is still the data it read (the data's fingerprint is kept in
the record: a file edited in place reruns). Done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on. The notebook writes its done record whole, identity
included (from params.json), in one atomic write: a crash leaves no record or a complete one. Ctrl-C records the
run as 'interrupted', prints the summary and ends the study.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.fingerprint import data_fingerprint
from .record import PARAMS_FILE, RECORD_FILE, now, read_record, write_json_atomic
from . import interrupt
from .spec import RunSpec, load_study

NOTEBOOK_FILE = "notebook.ipynb"


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str          # done | skipped | failed | interrupted
    seconds: float = 0.0
    error: str | None = None


def run_dir_for(spec: RunSpec, runs_root: Path) -> Path:
    """runs_root/<study>/<run id>, refused if it would land outside runs_root (names are checked on load too)."""
    root = Path(runs_root).resolve()
    run_dir = (root / spec.study / spec.run_id).resolve()
    if root not in run_dir.parents:
        raise ConfigError(f"run folder {run_dir} would be outside the runs folder {root}; check the study's name")
    return Path(runs_root) / spec.study / spec.run_id


def is_done(record: dict | None, fingerprint: str | None) -> bool:
    """Done, and (when both are known) on the same data: a record whose data changed since is not done."""
    if not record or record.get("status") != "done":
        return False
    recorded = record.get("data_fingerprint")
    return recorded is None or fingerprint is None or recorded == fingerprint


def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None,
            fingerprint: str | None = None) -> RunOutcome:
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = read_record(run_dir)
    if is_done(previous, fingerprint):
        return RunOutcome(spec, "skipped")
    rerun_note = (f"data changed since the done run of {previous.get('finished_at')}: run again"
                  if previous and previous.get("status") == "done" else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    # a failed or stale attempt's record is removed before anything else, so that it cannot pass as this run's
    (run_dir / RECORD_FILE).unlink(missing_ok=True)
    started = now()
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started,
                "data_fingerprint": fingerprint}
    write_json_atomic(run_dir / PARAMS_FILE, {**identity, "started_unix": time.time(), "notebook": spec.notebook,
                                              "params": spec.params})
    start = time.perf_counter()

    def record_failure(status: str, error: str) -> float:
        seconds = time.perf_counter() - start
        write_json_atomic(run_dir / RECORD_FILE, {
            "status": status, **identity, "notebook": spec.notebook, "params": spec.params,
            "finished_at": now(), "wall_seconds": seconds, "error": error,
            "traceback": traceback.format_exc()[-4000:], "partial_notebook": NOTEBOOK_FILE,
        })
        return seconds

    try:
        papermill.execute_notebook(
            str(spec.notebook_path), str(run_dir / NOTEBOOK_FILE),
            parameters={**spec.params, "run_dir": str(run_dir.resolve())},
            kernel_name=kernel_name, cwd=str(spec.notebook_path.parent), progress_bar=False,
            engine_name=interrupt.ENGINE,  # stops between cells after a Ctrl-C
        )
        record = read_record(run_dir)
        if not record or record.get("status") != "done":
            raise RuntimeError(f"the notebook finished without writing a 'done' record to {run_dir / RECORD_FILE}")
    except KeyboardInterrupt as e:
        if (read_record(run_dir) or {}).get("status") != "done":  # a run that finished its record stays done
            where = "after the current cell" if isinstance(e, interrupt.StopRequested) else "at once"
            record_failure("interrupted", f"KeyboardInterrupt: stopped by the user (Ctrl-C, {where})")
        raise
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, and the study goes on
        if _interrupted(e):
            seconds = record_failure("interrupted", "KeyboardInterrupt: stopped by the user (Ctrl-C)")
            return RunOutcome(spec, "interrupted", seconds, "interrupted")
        error = _describe(e)
        seconds = record_failure("failed", error)
        return RunOutcome(spec, "failed", seconds, error)
    # the notebook wrote the whole record, identity included, in one atomic write; it is not written again
    return RunOutcome(spec, "done", time.perf_counter() - start, None if rerun_note is None else rerun_note)


def _interrupted(e: Exception) -> bool:
    # Ctrl-C reaches the kernel too (same process group): the cell then fails with KeyboardInterrupt
    return getattr(e, "ename", None) == "KeyboardInterrupt"


def _describe(e: Exception) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename:  # papermill's PapermillExecutionError carries the notebook's exception
        return f"{ename}: {evalue}"
    return f"{type(e).__name__}: {e}"


def run_study(study_file: str | Path, runs_root: str | Path = "runs", kernel_name: str | None = None,
              only: str | None = None, by_seed: bool = False) -> list[RunOutcome]:
    """Execute every run of a study. `by_seed`: every configuration's first seed before any second seed, so that
    a long study stopped early still has every configuration."""
    specs = load_study(study_file)  # every run validated before the first starts
    if only:
        specs = [s for s in specs if only in s.run_id or only in s.label]
    if by_seed:
        seeds = sorted({s.params.get("seed", 0) for s in specs})
        specs = sorted(specs, key=lambda s: seeds.index(s.params.get("seed", 0)))  # stable: file order within
    runs_root = Path(runs_root)
    outcomes: list[RunOutcome] = []
    start = time.perf_counter()
    fingerprints: dict[str, str | None] = {}  # one hash of each data source per study run, not one per run

    def fingerprint(spec: RunSpec) -> str | None:
        key = json.dumps([spec.params.get("dataset"), spec.params.get("data_dir")])
        if key not in fingerprints:
            fingerprints[key] = data_fingerprint(spec.params)
        return fingerprints[key]

    bar = tqdm(specs, desc=f"study {specs[0].study if specs else ''}", unit="run")
    try:
        with interrupt.stop_after_cell_on_ctrl_c():
            for spec in bar:
                interrupt.check()  # a Ctrl-C between runs stops before the next
                bar.set_postfix_str(f"{spec.run_id} {spec.label}"[:70])
                outcome = execute(spec, runs_root, kernel_name, fingerprint(spec))
                outcomes.append(outcome)
                note = f"  ({outcome.error})" if outcome.error else ""
                bar.write(f"[{len(outcomes)}/{len(specs)}] {outcome.status:7s} {outcome.seconds:7.1f}s  "
                          f"{spec.run_id}  {spec.label}{note}  | elapsed {time.perf_counter() - start:.0f}s")
                if outcome.status == "interrupted":
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        _summary(specs, outcomes, runs_root, start, interrupted=True)
        raise
    _summary(specs, outcomes, runs_root, start)
    return outcomes


def _summary(specs, outcomes, runs_root: Path, start: float, interrupted: bool = False) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    stop = (f"interrupted (Ctrl-C) after {len(outcomes)} of {len(specs)} runs; run the same command again to "
            "go on: " if interrupted else "")
    print(f"study {specs[0].study if specs else '?'}: {stop}{counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed, in {time.perf_counter() - start:.0f}s; "
          f"records under {runs_root.resolve() / (specs[0].study if specs else '')}", flush=True)
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.spec.run_id} {o.spec.label}: {o.error}\n"
                  f"         see {run_dir_for(o.spec, runs_root) / NOTEBOOK_FILE}")
