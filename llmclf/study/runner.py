"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so and its data is still the data it read (the data's fingerprint is kept in
the record: a file edited in place reruns). Done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on. The notebook writes its done record whole, identity
included (from params.json), in one atomic write: a crash leaves no record or a complete one. Ctrl-C records the
run as 'interrupted', prints the summary and ends the study.

While papermill executes a notebook (in a thread), the runner reads the run's progress.json (llmclf.progress) and
shows the run's phase and progress under the study bar; a run with no progress for `stall_seconds` is flagged.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import ConfigError
from ..config import KERNEL_ARGUMENTS
from ..data.fingerprint import data_fingerprint
from ..progress import ENV_VAR as RUN_DIR_ENV
from ..progress import PROGRESS_FILE, describe, read_progress
from . import interrupt
from .record import PARAMS_FILE, RECORD_FILE, now, read_record, write_json_atomic
from .spec import RunSpec, load_study

NOTEBOOK_FILE = "notebook.ipynb"
STALL_ENV = "LLMCLF_STALL_SECONDS"
DEFAULT_STALL_SECONDS = 600.0
POLL_SECONDS = 1.0
# The kernel logs "Kernel is running over TCP without encryption" on every start: a warning about a local
# connection that the user can do nothing about. Its own log level hides it; the notebook's output is unaffected.


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str          # done | skipped | failed | interrupted
    seconds: float = 0.0
    error: str | None = None
    sizes: dict | None = None  # the record's split sizes (after caps)


def run_dir_for(spec: RunSpec, runs_root: Path) -> Path:
    """runs_root/<study>/<run id>, refused if it would land outside runs_root (names are checked on load too)."""
    root = Path(runs_root).resolve()
    run_dir = (root / spec.study / spec.run_id).resolve()
    if root not in run_dir.parents:
        raise ConfigError(f"run folder {run_dir} would be outside the runs folder {root}; check the study's name")
    return Path(runs_root) / spec.study / spec.run_id


def is_stale(record: dict | None) -> bool:
    """A done record made by other code than this (see llmclf.version)."""
    from ..version import code_version

    return bool(record) and (record.get("provenance") or {}).get("code_version") != code_version()


def is_done(record: dict | None, fingerprint: str | None) -> bool:
    """Done, and (when both are known) on the same data: a record whose data changed since is not done."""
    if not record or record.get("status") != "done":
        return False
    recorded = record.get("data_fingerprint")
    return recorded is None or fingerprint is None or recorded == fingerprint


def _sizes(record: dict | None) -> dict | None:
    return ((record or {}).get("task") or {}).get("sizes")


def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None, watch=None, redo: bool = False,
            fingerprint: str | None = None) -> RunOutcome:
    """Run one spec unless its record says done on the same data (`redo`: all the same, for --force and --rerun
    stale). `watch(run_dir, thread)`, when given, is called while papermill runs in `thread` (the runner's
    progress display); without it the call simply blocks."""
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = read_record(run_dir)
    if is_done(previous, fingerprint) and not redo:
        return RunOutcome(spec, "skipped", sizes=_sizes(previous))
    rerun_note = (f"data changed since the done run of {previous.get('finished_at')}: run again"
                  if previous and previous.get("status") == "done" and not redo else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    # a failed or stale attempt's record is removed before anything else, so that it cannot pass as this run's
    (run_dir / RECORD_FILE).unlink(missing_ok=True)
    (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    started = now()
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started,
                "data_fingerprint": fingerprint}
    write_json_atomic(run_dir / PARAMS_FILE, {**identity, "task_key": spec.task_key, "started_unix": time.time(),
                                              "notebook": spec.notebook, "params": spec.params})
    start = time.perf_counter()

    def record_failure(status: str, error: str) -> float:
        seconds = time.perf_counter() - start
        write_json_atomic(run_dir / RECORD_FILE, {
            "status": status, **identity, "notebook": spec.notebook, "task": {"key": spec.task_key},
            "params": spec.params, "finished_at": now(), "wall_seconds": seconds, "error": error,
            "traceback": traceback.format_exc()[-4000:], "partial_notebook": NOTEBOOK_FILE,
        })
        return seconds

    try:
        params = spec.execution_params()  # relative data paths resolved against the study file's folder
        failure = []

        def target():
            try:
                papermill.execute_notebook(
                    str(spec.notebook_path), str(run_dir / NOTEBOOK_FILE),
                    parameters={**params, "run_dir": str(run_dir.resolve())},
                    # the directory `llmclf run` was started in, as for a notebook run by hand from there
                    kernel_name=kernel_name, cwd=os.getcwd(), progress_bar=False,
                    extra_arguments=KERNEL_ARGUMENTS,
                    engine_name=interrupt.ENGINE,  # stops between cells after a Ctrl-C
                )
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                failure.append(e)

        previous_env = os.environ.get(RUN_DIR_ENV)
        os.environ[RUN_DIR_ENV] = str(run_dir.resolve())  # the kernel inherits it: approaches report progress
        try:
            thread = threading.Thread(target=target, name=f"papermill {spec.run_id}", daemon=True)
            thread.start()
            if watch is not None:
                watch(run_dir, thread)
            thread.join()
        finally:
            if previous_env is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = previous_env
        if failure:
            raise failure[0]
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
    record = read_record(run_dir)
    return RunOutcome(spec, "done", time.perf_counter() - start, rerun_note, sizes=_sizes(record))


def _interrupted(e: Exception) -> bool:
    # Ctrl-C reaches the kernel too (same process group): the cell then fails with KeyboardInterrupt
    return getattr(e, "ename", None) == "KeyboardInterrupt"


def _describe(e: Exception) -> str:
    ename, evalue = getattr(e, "ename", None), getattr(e, "evalue", None)
    if ename:  # papermill's PapermillExecutionError carries the notebook's exception
        return f"{ename}: {evalue}"
    return f"{type(e).__name__}: {e}"


RERUN_CHOICES = ("failed", "stale")


class Watcher:
    """Shows a running notebook's progress.json on a second bar under the study bar; flags a stalled run."""

    def __init__(self, bar, stall_seconds: float | None = None, poll_seconds: float = POLL_SECONDS):
        if stall_seconds is None:
            stall_seconds = float(os.environ.get(STALL_ENV, DEFAULT_STALL_SECONDS))
        self.bar, self.stall_seconds, self.poll_seconds = bar, stall_seconds, poll_seconds
        self.stalls: list[str] = []

    def __call__(self, run_dir: Path, thread: threading.Thread) -> None:
        inner = tqdm(total=None, position=1, leave=False, desc="  run: starting", bar_format="{desc}")
        last, changed, flagged = None, time.perf_counter(), False
        try:
            while thread.is_alive():
                thread.join(self.poll_seconds)
                state = read_progress(run_dir)
                key = None if state is None else (state.get("phase"), state.get("step"), state.get("total"))
                if key != last:
                    last, changed, flagged = key, time.perf_counter(), False
                    inner.set_description_str(f"  run: {describe(state)}", refresh=True)
                idle = time.perf_counter() - changed
                if not flagged and self.stall_seconds and idle >= self.stall_seconds:
                    flagged = True
                    message = (f"  ! {run_dir.name}: no progress for {idle:.0f} s "
                               f"(last: {describe(state)}); still running")
                    self.stalls.append(message)
                    self.bar.write(message)
        finally:
            inner.close()


def check_only(specs: list[RunSpec], only: str) -> list[RunSpec]:
    """The runs whose id or label contains `only`; none is an error naming what there is."""
    chosen = [s for s in specs if only in s.run_id or only in s.label]
    if not chosen:
        labels = sorted({s.label for s in specs})
        raise ConfigError(f"--only {only!r} matches no run id or label; labels: {labels}; run ids: "
                          f"{[s.run_id for s in specs]}")
    return chosen


def plan(specs: list[RunSpec]) -> list[dict]:
    """What will run, for --dry-run: per run the task, the split sizes after caps (the data is read, once per
    task), the model and the dtype. Fails, naming every problem, on a missing file or column, as the runs would."""
    from ..config import config_for
    from ..data.tasks import load_task

    tasks, rows, errors = {}, [], []
    for spec in specs:
        row = {"run_id": spec.run_id, "seed": spec.params.get("seed", "-"), "task": spec.task_key,
               "label": spec.label, "sizes": None, "model": _model_of(spec), "dtype": _dtype_of(spec)}
        try:
            params = spec.execution_params()
            cfg = config_for(spec.notebook).from_dict(params)
            data = cfg.task_kwargs()
            key = repr((cfg.dataset, sorted(data.items())))
            if key not in tasks:
                try:
                    task = load_task(cfg.dataset, **data)
                    tasks[key] = {s: len(getattr(task, s)) for s in ("train", "validation", "test")}
                except Exception as e:  # noqa: BLE001 - reported with the run
                    tasks[key] = e
            if isinstance(tasks[key], Exception):
                raise tasks[key]
            row["sizes"] = tasks[key]
        except Exception as e:  # noqa: BLE001
            errors.append(f"{spec.run_id} ({spec.label}, task {spec.task_key}): {type(e).__name__}: {e}")
        rows.append(row)
    if errors:
        raise ConfigError("the study cannot run:\n  " + "\n  ".join(dict.fromkeys(errors)))
    return rows


def _model_of(spec: RunSpec) -> str:
    p = spec.params
    if spec.notebook == "30_baselines" and p.get("baseline") == "tfidf":
        return "(none: tfidf)"
    return p.get("model") or p.get("tokenizer_model") or "-"


def _dtype_of(spec: RunSpec) -> str:
    dtype = spec.params.get("dtype")
    if dtype is None:
        return "-"
    if dtype == "auto":  # resolved by the hardware, as the run will
        try:
            from ..models import loading

            resolve = getattr(loading, "resolve_dtype", None)
            if resolve is not None:
                return f"auto -> {resolve(dtype)}"
        except Exception:  # noqa: BLE001 - display only
            pass
    return str(dtype)


def format_sizes(sizes: dict | None) -> str:
    if not sizes:
        return "sizes ?"
    return f"train {sizes.get('train')} / val {sizes.get('validation')} / test {sizes.get('test')}"


def run_study(study_file: str | Path, runs_root: str | Path = "runs", kernel_name: str | None = None,
              only: str | None = None, by_seed: bool = False, stall_seconds: float | None = None,
              force: bool = False, rerun: str | None = None) -> list[RunOutcome]:
    """Execute every run of a study. `by_seed`: every configuration's first seed before any second seed, so that
    a long study stopped early still has every configuration. `stall_seconds`: flag a run whose progress has not
    moved for that long (default $LLMCLF_STALL_SECONDS, else 600). `force`: run even what is done. `rerun`:
    'failed' runs only the runs whose record says failed; 'stale' also runs again the done runs whose record names
    other code (`code_version`) than this."""
    if rerun not in (None, *RERUN_CHOICES):
        raise ValueError(f"rerun must be one of {RERUN_CHOICES}, got {rerun!r}")
    specs = load_study(study_file)  # every run validated before the first starts
    if only:
        specs = check_only(specs, only)
    runs_root = Path(runs_root)
    if rerun == "failed":
        specs = [s for s in specs if (read_record(run_dir_for(s, runs_root)) or {}).get("status") == "failed"]
    if by_seed:
        seeds = sorted({s.params.get("seed", 0) for s in specs})
        specs = sorted(specs, key=lambda s: seeds.index(s.params.get("seed", 0)))  # stable: file order within
    outcomes: list[RunOutcome] = []
    start = time.perf_counter()
    fingerprints: dict[str, str | None] = {}  # one hash of each data source per study run, not one per run

    def fingerprint(spec: RunSpec) -> str | None:
        key = json.dumps([spec.params.get("dataset"), spec.params.get("data_dir")])
        if key not in fingerprints:
            fingerprints[key] = data_fingerprint(spec.execution_params())
        return fingerprints[key]

    bar = tqdm(specs, desc=f"study {specs[0].study if specs else ''}", unit="run", position=0)
    watcher = Watcher(bar, stall_seconds)
    try:
        with interrupt.stop_after_cell_on_ctrl_c():
            for spec in bar:
                interrupt.check()  # a Ctrl-C between runs stops before the next
                bar.set_postfix_str(f"{spec.run_id} {spec.label}"[:70])
                redo = force or (rerun == "stale" and is_stale(read_record(run_dir_for(spec, runs_root))))
                outcome = execute(spec, runs_root, kernel_name, watch=watcher, redo=redo,
                                  fingerprint=fingerprint(spec))
                outcomes.append(outcome)
                note = f"  ({outcome.error})" if outcome.error else ""
                sizes = (f"  [{spec.task_key}: {format_sizes(outcome.sizes)}]" if outcome.sizes
                         else f"  [{spec.task_key}]")
                bar.write(f"[{len(outcomes)}/{len(specs)}] {outcome.status:7s} {outcome.seconds:7.1f}s  "
                          f"{spec.run_id}  {spec.label}{sizes}{note}  | elapsed {time.perf_counter() - start:.0f}s")
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
    by_task = {}
    for o in outcomes:
        if o.sizes:
            by_task.setdefault(o.spec.task_key, set()).add(format_sizes(o.sizes))
    for task, sizes in by_task.items():
        print(f"  task {task}: {'; '.join(sorted(sizes))}")
    for o in outcomes:
        if o.status == "failed":
            print(f"  FAILED {o.spec.run_id} {o.spec.label}: {o.error}\n"
                  f"         see {run_dir_for(o.spec, runs_root) / NOTEBOOK_FILE}")
