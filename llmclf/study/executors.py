"""Where a study's runs execute: one after another in this process (`SequentialExecutor`, the default), or side by
side on a Dask cluster (`DaskExecutor`): a `LocalCluster` of N worker processes with one thread each (so papermill
kernels never share an interpreter), or an existing cluster by its scheduler address (dask-jobqueue on SLURM/PBS).

Every run goes through `runner.execute` wherever it executes: the same folder, the same record, the same claim on
the run folder (study.locks), so two `llmclf run` of one study, sequential or parallel, execute each run once.
Dask adds what a home-made scheduler would lack: worker resources (`GPU`), retries of a run whose worker died
(the scheduler's `allowed-failures`), priorities (the order of the study), and a dashboard.

Ctrl-C, as with sequential runs: the first stops every run in flight after its current cell (each records itself
as interrupted; runs not started are not started), a second stops at once (local workers are closed, the runs in
flight settled as interrupted). Local workers sit in a process group of their own, so a terminal's Ctrl-C reaches
only `llmclf run`, which passes the request on through a Dask `Event` that each run asks between cells.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from ..config import ConfigError
from . import interrupt
from .locks import read_lock_info
from .predict import teacher_candidates
from .runner import SequentialExecutor  # noqa: F401 - the sequential one lives with the runner
from .runner import RunOutcome, StudyProgress, execute, run_dir_for, settle
from .spec import RunSpec


class DaskExecutor:
    """Runs side by side on a Dask cluster; see the module docstring.

    workers: start a LocalCluster of that many worker processes (one thread each) on this machine;
    scheduler: or submit to an existing cluster at this address (`tcp://host:8786`);
    gpus_per_run: each run holds that many units of the workers' `GPU` resource; on a LocalCluster worker i gets
        CUDA_VISIBLE_DEVICES of devices i*K .. i*K+K-1 (of this process's CUDA_VISIBLE_DEVICES, if set); a remote
        worker passes its own CUDA_VISIBLE_DEVICES (set by SLURM or dask-cuda) to the run's kernel;
    retries: how many times a run whose worker died is run again on another worker (the scheduler's
        `distributed.scheduler.allowed-failures`; for an existing cluster it is the scheduler's own setting).

    Each local worker, and the kernels it starts, uses cores // workers threads (OMP_NUM_THREADS and its kin, set
    before the worker process starts, unless this process's environment sets them already).
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None, gpus_per_run: int | None = None,
                 retries: int = 1, dashboard_address: str | None = ":0", poll_seconds: float = 2.0):
        if (workers is None) == (scheduler is None):
            raise ConfigError("give either a number of local workers or a scheduler address")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        if gpus_per_run is not None and gpus_per_run < 1:
            raise ConfigError(f"--gpus-per-run must be at least 1, got {gpus_per_run}")
        if retries < 0:
            raise ConfigError(f"--retries must be 0 or more, got {retries}")
        self.workers, self.scheduler, self.gpus_per_run, self.retries = workers, scheduler, gpus_per_run, retries
        self.dashboard_address, self.poll_seconds = dashboard_address, poll_seconds

    def _connect(self):
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            return None, Client(self.scheduler)
        # the scheduler of a LocalCluster lives in this process and reads allowed-failures when it starts; the
        # nannies (in this process too) set the thread variables before each worker process starts (Dask's own
        # default is 1 thread, which would leave most cores of a big machine idle)
        threads = str(threads_per_run(self.workers))
        spawn_env = {f"distributed.nanny.pre-spawn-environ.{var}": threads for var in THREAD_VARIABLES}
        with dask.config.set({"distributed.scheduler.allowed-failures": self.retries, **spawn_env}), \
                _sigint_ignored(), _environ_kept():  # the first workers are born deaf to a terminal's Ctrl-C
            cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=self.dashboard_address,
                resources={"GPU": self.gpus_per_run} if self.gpus_per_run else None)
        client = Client(cluster)
        client.register_plugin(OwnProcessGroup(), name="llmclf-own-process-group")  # and restarted ones too
        return cluster, client

    def _devices_by_worker(self) -> dict[str, str] | None:
        if not (self.gpus_per_run and self.workers):
            return None
        k = self.gpus_per_run
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(self.workers * k)]
        if len(ids) < self.workers * k:
            raise ConfigError(f"{self.workers} workers x {k} GPUs need {self.workers * k} devices; "
                              f"CUDA_VISIBLE_DEVICES={visible} names {len(ids)}")
        return {str(i): ",".join(ids[i * k:(i + 1) * k]) for i in range(self.workers)}

    def run(self, specs: list[RunSpec], runs_root: Path, kernel_name: str | None,
            progress: StudyProgress) -> list[RunOutcome]:
        from distributed import wait

        if not specs:
            return []
        runs_root = Path(runs_root).resolve()  # the same absolute path on every worker of a shared filesystem
        saved = _environ_now()  # a nanny sets its variables in this process too, at every (re)start of a worker
        cluster, client = self._connect()
        futures: dict = {}
        outcomes: list[RunOutcome] = []
        stop = _stop_event(client)
        stopping = False
        try:
            _print_dashboard(client, progress)
            check_shared_folder(client, runs_root / specs[0].study)
            holder_gone = _holder_gone_on(client)
            devices = self._devices_by_worker()
            token = uuid.uuid4().hex[:6]
            by_id = {}
            for i, spec in enumerate(specs):  # priorities keep the study's order: earlier runs start first
                # a distillation run starts once the runs it may take its teacher from have ended (Dask waits for
                # the futures given as an argument)
                after = [by_id[s.run_id] for s in teacher_candidates(spec, specs[:i])]
                fut = by_id[spec.run_id] = client.submit(
                    run_on_worker, spec, str(runs_root), kernel_name, devices, stop.name, after,
                    key=f"{spec.run_id}-{token}", priority=len(specs) - i, pure=False, retries=self.retries,
                    resources={"GPU": self.gpus_per_run} if self.gpus_per_run else None)
                futures[fut] = spec
            pending = set(futures)
            while pending:
                try:
                    finished, pending = wait(pending, timeout=self.poll_seconds, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    finished = set()
                for fut in finished:
                    outcome = self._outcome(fut, futures[fut], runs_root, holder_gone)
                    outcomes.append(outcome)
                    progress.done(outcome)
                progress.running(_running_now([futures[f] for f in pending], runs_root))
                if interrupt.requested() and not stopping:  # the first Ctrl-C: pass it on to the runs
                    stopping = True
                    stop.set()
                    progress.write("interrupted: the runs in flight stop after their current cell and are recorded "
                                   "as interrupted; no other run starts (Ctrl-C again to stop at once)")
        except KeyboardInterrupt:
            progress.write("interrupted: cancelling the study; runs in flight are recorded as interrupted")
            stop.set()  # runs on a cluster that is not ours stop after their current cell
            done_ids = {o.spec.run_id for o in outcomes}
            unfinished = [s for s in futures.values() if s.run_id not in done_ids]
            client.cancel(list(futures), force=True)
            if cluster is not None:  # our workers: stop them, and with them the runs in flight
                client.close()
                cluster.close()
                client = cluster = None
            for spec in unfinished:
                outcomes.append(settle(spec, runs_root, "interrupted", "the study was interrupted (Ctrl-C)",
                                       holder_gone if client is not None else None))
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            _restore_environ(saved)
        return outcomes

    def _outcome(self, fut, spec: RunSpec, runs_root: Path, holder_gone) -> RunOutcome:
        from distributed import KilledWorker

        if fut.status == "finished":
            return fut.result()
        exc = fut.exception()
        if isinstance(exc, KilledWorker):  # its worker died more often than `retries` allows
            return settle(spec, runs_root, "failed",
                          f"its worker died {self.retries + 1} time(s) (Dask: {type(exc).__name__})", holder_gone)
        return RunOutcome(spec, "failed", error=f"{type(exc).__name__}: {exc}")


def run_on_worker(spec: RunSpec, runs_root: str, kernel_name: str | None,
                  devices_by_worker: dict[str, str] | None, stop_name: str, after=()) -> RunOutcome:
    """The task a Dask worker runs: one run, through runner.execute, with this worker's GPUs for its kernel; it
    stops after the current cell once the study's stop event is set (Ctrl-C where `llmclf run` runs). `after`:
    the outcomes of the runs it had to wait for (Dask started it once they had ended)."""
    from distributed import Event, get_worker

    worker = get_worker()
    stop = Event(stop_name)
    if stop.is_set():  # the study was interrupted before this run started
        return RunOutcome(spec, "cancelled")
    if devices_by_worker is not None and str(worker.name) in devices_by_worker:
        # one thread a worker, so one run at a time changes this process's environment; the kernel inherits it
        os.environ["CUDA_VISIBLE_DEVICES"] = devices_by_worker[str(worker.name)]
    def asked() -> bool:
        try:
            return stop.is_set()
        except Exception:  # noqa: BLE001 - the scheduler unreachable: no stop was asked that this run can see
            return False

    try:
        with interrupt.stop_when(asked):
            return execute(spec, Path(runs_root), kernel_name, holder_gone=_holder_gone_from_worker)
    except interrupt.StopRequested:  # execute recorded it; a KeyboardInterrupt must not escape into the worker
        return RunOutcome(spec, "interrupted", error="KeyboardInterrupt: stopped by the user (Ctrl-C)")


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


SPAWN_VARIABLES = (*THREAD_VARIABLES, "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")  # what nannies set here


def threads_per_run(workers: int) -> int:
    """This machine's cores (those this process may use, where the OS says), shared evenly by the local workers."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def _environ_now() -> dict[str, str | None]:
    return {var: os.environ.get(var) for var in SPAWN_VARIABLES}


def _restore_environ(saved: dict[str, str | None]) -> None:
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


@contextmanager
def _environ_kept():
    """Dask's nannies write the workers' pre-spawn variables into this process's environment as well; undone here,
    so that a variable set by the user stays told apart from one a cluster left behind."""
    saved = _environ_now()
    try:
        yield
    finally:
        _restore_environ(saved)


class OwnProcessGroup(WorkerPlugin):
    """Puts each local worker (and so the kernels it starts) in a process group of its own, out of the reach of the
    terminal's Ctrl-C, which goes to the foreground group; `llmclf run` passes the stop on itself."""

    def setup(self, worker):
        if os.getpgid(0) != os.getpid():
            os.setpgid(0, 0)


@contextmanager
def _sigint_ignored():
    """Processes started within inherit an ignored SIGINT (only the main thread may change a handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _stop_event(client):
    from distributed import Event

    return Event(f"llmclf-stop-{uuid.uuid4().hex[:8]}", client=client)


def _holder_gone_from_worker(info: dict) -> bool:
    from distributed import get_client

    return _gone(info, get_client())


def _holder_gone_on(client):
    return lambda info: _gone(info, client)


def _gone(info: dict, client) -> bool:
    """A holder on another host is gone when it was a worker of our scheduler and the scheduler no longer has it."""
    if not info.get("worker") or info.get("scheduler") != client.scheduler.address:
        return False
    return info["worker"] not in client.scheduler_info(n_workers=-1)["workers"]


def _running_now(specs: list[RunSpec], runs_root: Path) -> dict[str, str]:
    out = {}
    for spec in specs:
        info = read_lock_info(run_dir_for(spec, runs_root))
        if info:
            out[spec.run_id] = info.get("host", "?")
    return out


def _print_dashboard(client, progress: StudyProgress) -> None:
    import importlib.util

    services = client.scheduler_info().get("services", {})
    if "dashboard" in services:
        # the pages need bokeh where the scheduler runs; without it the address serves no dashboard
        note = "" if importlib.util.find_spec("bokeh") else " (its pages need bokeh installed with the scheduler)"
        progress.write(f"Dask dashboard: {client.dashboard_link}{note}")
    progress.write(f"Dask scheduler {client.scheduler.address}: "
                   f"{len(client.scheduler_info()['workers'])} worker(s)")


def check_shared_folder(client, folder: Path) -> None:
    """Fail before any run when a worker cannot write to the study's runs folder, or does not see this process's
    files in it (the runs folder must be on a filesystem every worker shares)."""
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    probe = folder / f".probe-{token}"
    probe.write_text("client\n")
    try:
        answers = client.run(_probe_folder, str(folder), token)
    finally:
        probe.unlink(missing_ok=True)
    bad = {w: err for w, err in answers.items() if err}
    if bad:
        lines = "\n  ".join(f"{w}: {err}" for w, err in bad.items())
        raise ConfigError(f"the runs folder {folder} must be on a filesystem that every Dask worker shares and "
                          f"can write; these workers cannot use it:\n  {lines}")


def _probe_folder(folder: str, token: str) -> str | None:
    folder_ = Path(folder)
    if not (folder_ / f".probe-{token}").exists():
        return f"does not see {folder} as the client does (not a shared filesystem?) on {socket.gethostname()}"
    mine = folder_ / f".probe-{token}-{socket.gethostname()}-{os.getpid()}"
    try:
        mine.write_text("worker\n")
        mine.unlink()
    except OSError as e:
        return f"cannot write there: {e}"
    return None
