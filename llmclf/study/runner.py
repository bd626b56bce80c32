"""`llmclf run`: execute a study's notebooks with papermill, one folder and one record per run.

A run is done when its record says so and its data is still the data it read (the data's fingerprint is kept in
the record: a file edited in place reruns). Done runs are skipped. A failed run keeps its partial notebook and gets a
record with status 'failed' and the error; the others go on. The notebook writes its done record whole, identity
included (from params.json), in one atomic write: a crash leaves no record or a complete one. Ctrl-C records the
run as 'interrupted', prints the summary and ends the study.

While papermill executes a notebook (in a thread), the runner reads the run's progress.json (llmclf.progress) and
shows the run's phase and progress under the study bar; a run with no progress for `stall_seconds` is flagged.

A run executes only under a claim on its folder (study.locks), so two `llmclf run` of one study never
execute one run twice; where the runs execute (here, one after another, or on a Dask cluster) is
study.executors' business.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import threading
import time
import traceback
from contextlib import suppress
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
from .locks import claimed, describe_holder, placement
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
    status: str          # done | skipped | failed | locked (running elsewhere) | interrupted | cancelled (not started)
    seconds: float = 0.0
    error: str | None = None
    sizes: dict | None = None  # the record's split sizes (after caps)
    attempt: int = 1     # > 1: earlier attempts died mid-run (a killed worker) and this one took over


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


# ---- issue 13: the run's claim (exactly once, study.locks); the run itself is _execute_claimed below ----------
def execute(spec: RunSpec, runs_root: Path, kernel_name: str | None = None,
            holder_gone=None, watch=None) -> RunOutcome:
    """Execute one run unless it is done or another live process is executing it.

    The run folder is claimed first (study.locks) and the record checked again under the claim, since another
    process may have finished the run meanwhile. A run whose holder died mid-run is taken over: the partial
    notebook is kept as notebook.attempt-<n>.ipynb and the record lists the earlier attempts. A run stopped by
    Ctrl-C or a cancelled task gets an 'interrupted' record, never 'done'. `holder_gone(lock_info)`: whether a
    holder on another host is provably gone (see locks.claim_run). `watch(run_dir, thread)`: the progress display
    while papermill runs (sequential runs). `spec.redo` runs a done run again (--force, --rerun stale); a done run
    whose data no longer has `spec.fingerprint` is not done.
    """
    run_dir = run_dir_for(spec, runs_root)
    if _skip(spec, run_dir):
        return RunOutcome(spec, "skipped", sizes=_sizes(_read(run_dir)))
    with claimed(run_dir, holder_gone) as claim:
        if not claim.acquired:
            return RunOutcome(spec, "locked", error=claim.message())
        if _skip(spec, run_dir):
            return RunOutcome(spec, "skipped", sizes=_sizes(_read(run_dir)))
        attempts = _keep_partial_notebooks(run_dir, claim.previous_attempts)
        extra = {"ran_on": placement(), **({"previous_attempts": attempts} if attempts else {})}
        try:
            outcome = _execute_claimed(spec, runs_root, kernel_name, extra=extra, watch=watch)
        except BaseException as e:  # KeyboardInterrupt, a cancelled Dask task: recorded, then passed on
            if (_read(run_dir) or {}).get("status") not in ("interrupted", "done"):  # not said better already
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


def _read(run_dir: Path) -> dict | None:
    try:
        return read_record(run_dir)
    except ValueError:  # unreadable: not done
        return None


def _is_done(run_dir: Path) -> bool:
    record = _read(run_dir)
    return bool(record) and record.get("status") == "done"


def _skip(spec: RunSpec, run_dir: Path) -> bool:
    """Done on the same data, and not asked to run again."""
    return not spec.redo and is_done(_read(run_dir), spec.fingerprint)


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
                     extra: dict | None = None, watch=None) -> RunOutcome:
    import papermill

    run_dir = run_dir_for(spec, runs_root)
    previous = _read(run_dir)  # execute() skipped it if it was done on the same data and not to be redone
    rerun_note = (f"data changed since the done run of {previous.get('finished_at')}: run again"
                  if previous and previous.get("status") == "done" and not spec.redo else None)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    # an earlier attempt's held-out predictions (`llmclf confirm`) describe a model this run replaces
    (run_dir / "heldout_predictions.parquet").unlink(missing_ok=True)
    started = now()
    # a record from the start, replacing a failed or stale attempt's (never mixed in): a process that dies mid-run
    # leaves one that says the run did not finish, and where it ran (issue 13)
    _write_stopped(run_dir, spec, "running", f"started at {started}; not finished: if its process "
                   "(ran_on) is gone, it died mid-run, and a rerun of the study takes the run over", extra or {})
    identity = {"study": spec.study, "run_id": spec.run_id, "label": spec.label, "started_at": started,
                "data_fingerprint": spec.fingerprint, **(extra or {})}  # where it ran, earlier attempts
    # the notebook reads its identity from params.json and writes its done record whole, in one atomic write
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
            # in a copy of this context: papermill's thread sees interrupt.stop_when of a run on a Dask worker
            thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                                      name=f"papermill {spec.run_id}", daemon=True)
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


# ---- executing a study's runs here, one after another (study.executors holds the Dask one) ----------------

class StudyProgress:
    """A tqdm bar of the runs this process has to execute (done ones are counted apart): finished of total, with
    elapsed and estimated time left from tqdm, and the runs running now (run id @ host) and failed so far."""

    def __init__(self, study: str, total: int, already_done: int = 0):
        self.start = time.perf_counter()
        self.failed = 0
        self.finished = 0
        self.total = total
        note = f" ({already_done} already done)" if already_done else ""
        self.bar = tqdm(total=total, desc=f"study {study}{note}", unit="run")
        self._postfix = None
        self._live = bool(getattr(self.bar.fp, "isatty", lambda: False)())

    def running(self, where: dict[str, str]) -> None:
        """`where`: run id -> host of the runs executing now."""
        shown = ", ".join(f"{rid[-12:]}@{host}" for rid, host in list(where.items())[:4])
        more = f" +{len(where) - 4}" if len(where) > 4 else ""
        text = f"running {len(where)}: {shown}{more} | failed {self.failed}"
        if text != self._postfix:
            self._postfix = text
            self.bar.set_postfix_str(text, refresh=True)
        elif self._live:
            self.bar.refresh()  # a terminal: let elapsed time tick; a log gets a line only when something changed

    def done(self, o: RunOutcome) -> None:
        self.finished += 1
        self.failed += o.status == "failed"
        note = f"  ({o.error})" if o.error else ""
        retry = f"  attempt {o.attempt}" if o.attempt > 1 else ""
        self.bar.write(f"[{self.finished}/{self.total}] {o.status:7s} {o.seconds:7.1f}s  {o.spec.run_id}  "
                       f"{o.spec.label}{retry}{note}  | elapsed {time.perf_counter() - self.start:.0f}s")
        self.bar.update(1)

    def write(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


class SequentialExecutor:
    """Today's loop: one run after another in this process. Ctrl-C: the run in flight is recorded as interrupted
    (by runner.execute), the rest are not started. `watch`: the progress display of the run in flight."""

    def __init__(self, watch=None):
        self.watch = watch

    def run(self, specs: list[RunSpec], runs_root: Path, kernel_name: str | None,
            progress: StudyProgress) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = []
        try:
            for spec in specs:
                interrupt.check()  # a Ctrl-C between runs stops before the next
                progress.running({spec.run_id: socket.gethostname()})
                outcomes.append(execute(spec, runs_root, kernel_name, watch=self.watch))
                progress.done(outcomes[-1])
                if outcomes[-1].status == "interrupted":  # stopped after a cell by Ctrl-C
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            progress.write("interrupted: the run in flight is recorded as interrupted; no other run starts")
            finished = {o.spec.run_id for o in outcomes}
            rest = [s for s in specs if s.run_id not in finished]
            if rest and (read_record(run_dir_for(rest[0], runs_root)) or {}).get("status") == "interrupted":
                outcomes.append(RunOutcome(rest[0], "interrupted", error="KeyboardInterrupt"))
                rest = rest[1:]
            outcomes += [RunOutcome(s, "cancelled") for s in rest]
        return outcomes



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
    if dtype is None or (spec.notebook == "30_baselines" and spec.params.get("baseline") == "tfidf"):
        return "-"
    if dtype == "auto":  # resolved by the hardware, as the run will
        from ..models.hardware import resolve_dtype

        return f"auto -> {resolve_dtype(dtype)}"
    return str(dtype)


def format_sizes(sizes: dict | None) -> str:
    if not sizes:
        return "sizes ?"
    return f"train {sizes.get('train')} / val {sizes.get('validation')} / test {sizes.get('test')}"


def run_study(study_file: str | Path, runs_root: str | Path = "runs", kernel_name: str | None = None,
              only: str | None = None, by_seed: bool = False, stall_seconds: float | None = None,
              force: bool = False, rerun: str | None = None, executor=None) -> list[RunOutcome]:
    """Execute every run of a study. `by_seed`: every configuration's first seed before any second seed, so that
    a long study stopped early still has every configuration. `stall_seconds`: flag a run whose progress has not
    moved for that long (default $LLMCLF_STALL_SECONDS, else 600; sequential runs). `force`: run even what is done.
    `rerun`: 'failed' runs only the runs whose record says failed; 'stale' also runs again the done runs whose
    record names other code (`code_version`) than this. `executor`: where the runs execute (study.executors;
    default: one after another in this process). The outcomes come back in the study file's order. The first
    Ctrl-C stops after the current cell (the run is recorded as interrupted), the rest are not started."""
    if rerun not in (None, *RERUN_CHOICES):
        raise ValueError(f"rerun must be one of {RERUN_CHOICES}, got {rerun!r}")
    specs = load_study(study_file)  # every run validated before the first starts
    if only:
        specs = check_only(specs, only)
    runs_root = Path(runs_root)
    if rerun == "failed":
        specs = [s for s in specs if (_read(run_dir_for(s, runs_root)) or {}).get("status") == "failed"]
    fingerprints: dict[str, str | None] = {}  # one hash of each data source per study run, not one per run
    for spec in specs:
        key = json.dumps([spec.params.get("dataset"), spec.params.get("data_dir")])
        if key not in fingerprints:
            fingerprints[key] = data_fingerprint(spec.execution_params())
        spec.fingerprint = fingerprints[key]
        spec.redo = force or (rerun == "stale" and is_stale(_read(run_dir_for(spec, runs_root))))
    position = {s.run_id: i for i, s in enumerate(specs)}
    specs = order_runs(specs, by_seed)
    study = specs[0].study if specs else "?"
    start = time.perf_counter()
    # runs already done are counted here, not sent to an executor (each executor checks again under the claim)
    done = {s.run_id: _skip(s, run_dir_for(s, runs_root)) for s in specs}
    skipped = [RunOutcome(s, "skipped", sizes=_sizes(_read(run_dir_for(s, runs_root))))
               for s in specs if done[s.run_id]]
    to_run = [s for s in specs if not done[s.run_id]]
    progress = StudyProgress(study, len(to_run), already_done=len(skipped))
    executor = executor or SequentialExecutor()
    if isinstance(executor, SequentialExecutor) and executor.watch is None:
        executor.watch = Watcher(progress.bar, stall_seconds)
    try:
        with interrupt.stop_after_cell_on_ctrl_c():
            outcomes = skipped + executor.run(to_run, runs_root, kernel_name, progress)
    finally:
        progress.close()
    outcomes.sort(key=lambda o: position[o.spec.run_id])  # the study file's order, however they ran
    _summary(study, outcomes, runs_root, start)
    return outcomes


def _summary(study: str, outcomes: list[RunOutcome], runs_root: Path, start: float) -> None:
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("done", "skipped", "failed", "locked", "interrupted", "cancelled")}
    retried = sum(o.attempt > 1 for o in outcomes)
    others = "".join(f", {counts[s]} {name}" for s, name in (
        ("locked", "running in another process (skipped here)"), ("interrupted", "interrupted"),
        ("cancelled", "not started")) if counts[s])
    stop = ("interrupted (Ctrl-C); run the same command again to go on: "
            if counts["interrupted"] or counts["cancelled"] else "")
    print(f"study {study}: {stop}{counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed{others}, {retried} retried, in "
          f"{time.perf_counter() - start:.0f}s; records under {runs_root.resolve() / study}", flush=True)
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
