"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so; done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .record import RECORD_FILE, now, read_record, write_json_atomic
from .spec import RunSpec, load_study

NOTEBOOK_FILE = "notebook.ipynb"


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str          # done | skipped | failed
    seconds: float = 0.0
    error: str | None = None


def run_dir_for(spec: RunSpec, runs_root: Path) -> Path:
    return runs_root / spec.study / spec.run_id


def is_stale(record: dict | None) -> bool:
    """A done record made by other code than this (see llmclf.version)."""
    from ..version import code_version

    return bool(record) and (record.get("provenance") or {}).get("code_version") != code_version()


def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None, redo: bool = False) -> RunOutcome:
    """Run one spec unless its record says done; `redo` runs it again all the same (--force, --rerun stale)."""
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = read_record(run_dir)
    if previous and previous.get("status") == "done" and not redo:
        return RunOutcome(spec, "skipped")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "params.json", {"study": spec.study, "run_id": spec.run_id,
                                               "notebook": spec.notebook, "label": spec.label,
                                               "params": spec.params})
    (run_dir / RECORD_FILE).unlink(missing_ok=True)  # a failed attempt's record is replaced, not mixed in
    started, start = now(), time.perf_counter()
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started}
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


RERUN_CHOICES = ("failed", "stale")


def run_study(study_file: str | Path, runs_root: str | Path = "runs", kernel_name: str | None = None,
              only: str | None = None, by_seed: bool = False, force: bool = False,
              rerun: str | None = None) -> list[RunOutcome]:
    """Execute every run of a study. `by_seed`: every configuration's first seed before any second seed, so that
    a long study stopped early still has every configuration. `force`: run even what is done. `rerun`: 'failed'
    runs only the runs whose record says failed; 'stale' also runs again the done runs whose record names other
    code (`code_version`) than this."""
    if rerun not in (None, *RERUN_CHOICES):
        raise ValueError(f"rerun must be one of {RERUN_CHOICES}, got {rerun!r}")
    specs = load_study(study_file)  # every run validated before the first starts
    if only:
        specs = [s for s in specs if only in s.run_id or only in s.label]
    runs_root = Path(runs_root)
    if rerun == "failed":
        specs = [s for s in specs if (read_record(run_dir_for(s, runs_root)) or {}).get("status") == "failed"]
    if by_seed:
        seeds = sorted({s.params.get("seed", 0) for s in specs})
        specs = sorted(specs, key=lambda s: seeds.index(s.params.get("seed", 0)))  # stable: file order within
    outcomes: list[RunOutcome] = []
    start = time.perf_counter()
    bar = tqdm(specs, desc=f"study {specs[0].study if specs else ''}", unit="run")
    for spec in bar:
        bar.set_postfix_str(f"{spec.run_id} {spec.label}"[:70])
        redo = force or (rerun == "stale" and is_stale(read_record(run_dir_for(spec, runs_root))))
        outcome = execute(spec, runs_root, kernel_name, redo=redo)
        outcomes.append(outcome)
        note = f"  ({outcome.error})" if outcome.error else ""
        bar.write(f"[{len(outcomes)}/{len(specs)}] {outcome.status:7s} {outcome.seconds:7.1f}s  "
                  f"{spec.run_id}  {spec.label}{note}  | elapsed {time.perf_counter() - start:.0f}s")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"study {specs[0].study if specs else '?'}: {counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed, in {time.perf_counter() - start:.0f}s; "
          f"records under {runs_root.resolve() / (specs[0].study if specs else '')}")
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.spec.run_id} {o.spec.label}: {o.error}\n"
                  f"         see {run_dir_for(o.spec, runs_root) / NOTEBOOK_FILE}")
    return outcomes
