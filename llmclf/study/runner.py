"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so; done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on.

While papermill executes a notebook (in a thread), the runner reads the run's progress.json (llmclf.progress) and
shows the run's phase and progress under the study bar; a run with no progress for `stall_seconds` is flagged.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import ConfigError
from ..progress import ENV_VAR as RUN_DIR_ENV
from ..progress import PROGRESS_FILE, describe, read_progress
from .record import RECORD_FILE, now, read_record, write_json_atomic
from .spec import RunSpec, load_study

NOTEBOOK_FILE = "notebook.ipynb"
STALL_ENV = "LLMCLF_STALL_SECONDS"
DEFAULT_STALL_SECONDS = 600.0
POLL_SECONDS = 1.0
# The kernel logs "Kernel is running over TCP without encryption" on every start: a warning about a local
# connection that the user can do nothing about. Its own log level hides it; the notebook's output is unaffected.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


@dataclass
class RunOutcome:
    spec: RunSpec
    status: str          # done | skipped | failed
    seconds: float = 0.0
    error: str | None = None
    sizes: dict | None = None  # the record's split sizes (after caps)


def run_dir_for(spec: RunSpec, runs_root: Path) -> Path:
    return runs_root / spec.study / spec.run_id


def is_stale(record: dict | None) -> bool:
    """A done record made by other code than this (see llmclf.version)."""
    from ..version import code_version

    return bool(record) and (record.get("provenance") or {}).get("code_version") != code_version()


def _sizes(record: dict | None) -> dict | None:
    return ((record or {}).get("task") or {}).get("sizes")


def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None, watch=None,
            redo: bool = False) -> RunOutcome:
    """Run one spec unless its record says done (`redo`: all the same, for --force and --rerun stale). `watch(run_dir, thread)`, when given, is called while papermill runs in `thread` (the runner's
    progress display); without it the call simply blocks."""
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = read_record(run_dir)
    if previous and previous.get("status") == "done" and not redo:
        return RunOutcome(spec, "skipped", sizes=_sizes(previous))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "params.json", {"study": spec.study, "run_id": spec.run_id,
                                               "notebook": spec.notebook, "label": spec.label,
                                               "task": spec.task_key, "params": spec.params})
    (run_dir / RECORD_FILE).unlink(missing_ok=True)  # a failed attempt's record is replaced, not mixed in
    (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    started, start = now(), time.perf_counter()
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started}
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
    except Exception as e:  # noqa: BLE001 - any failure of one run is recorded, and the study goes on
        seconds = time.perf_counter() - start
        error = _describe(e)
        write_json_atomic(run_dir / RECORD_FILE, {
            "status": "failed", **identity, "notebook": spec.notebook, "task": {"key": spec.task_key},
            "params": spec.params,
            "finished_at": now(), "wall_seconds": seconds, "error": error,
            "traceback": traceback.format_exc()[-4000:], "partial_notebook": NOTEBOOK_FILE,
        })
        return RunOutcome(spec, "failed", seconds, error)
    seconds = time.perf_counter() - start
    record.update(identity, wall_seconds=seconds)
    record.setdefault("task", {})["key"] = spec.task_key  # what the report calls the task (the study's name)
    write_json_atomic(run_dir / RECORD_FILE, record)
    return RunOutcome(spec, "done", seconds, sizes=_sizes(record))


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
    bar = tqdm(specs, desc=f"study {specs[0].study if specs else ''}", unit="run", position=0)
    watcher = Watcher(bar, stall_seconds)
    for spec in bar:
        bar.set_postfix_str(f"{spec.run_id} {spec.label}"[:70])
        redo = force or (rerun == "stale" and is_stale(read_record(run_dir_for(spec, runs_root))))
        outcome = execute(spec, runs_root, kernel_name, watch=watcher, redo=redo)
        outcomes.append(outcome)
        note = f"  ({outcome.error})" if outcome.error else ""
        sizes = f"  [{spec.task_key}: {format_sizes(outcome.sizes)}]" if outcome.sizes else f"  [{spec.task_key}]"
        bar.write(f"[{len(outcomes)}/{len(specs)}] {outcome.status:7s} {outcome.seconds:7.1f}s  "
                  f"{spec.run_id}  {spec.label}{sizes}{note}  | elapsed {time.perf_counter() - start:.0f}s")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"study {specs[0].study if specs else '?'}: {counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed, in {time.perf_counter() - start:.0f}s; "
          f"records under {runs_root.resolve() / (specs[0].study if specs else '')}")
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
    return outcomes
