"""Exactly-once runs: a run is executed only by the process that holds the claim on its folder.

Two files in `runs/<study>/<run id>/` while a run executes:

- `lock`: filelock's `SoftFileLock` marker, created with O_CREAT | O_EXCL (so one process wins, on one machine or on
  a shared filesystem); it holds the holder's pid, host and process start token, and filelock takes it over when
  that process is gone from this host (a recycled pid is told apart by the start token);
- `lock.json`: who holds it, for people and for the next holder: host, pid, start time, Dask worker and scheduler,
  CUDA_VISIBLE_DEVICES.

Both are removed when the holder releases the claim. A `lock.json` found by a new holder therefore belongs to a
process that died mid-run (a killed worker): the new holder gets it as `Claim.previous` and records the attempt.

A lock held on another host cannot be probed from here; it is taken over only when the caller can prove the holder
gone (`holder_gone`: a Dask worker checks that the holder's worker has left the holder's own scheduler). Otherwise a
lock left behind by a machine that died is removed by hand (the message says which file).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .record import now, write_json_atomic

LOCK_FILE = "lock"
LOCK_INFO_FILE = "lock.json"


def placement() -> dict:
    """Where this process runs: host, pid, the Dask worker and scheduler if any, and the GPUs it may use."""
    worker = scheduler = None
    if "distributed" in sys.modules:  # a Dask worker has imported it; a sequential run need not pay for it
        from distributed import get_worker

        try:
            w = get_worker()
            worker, scheduler = w.address, w.scheduler.address
        except ValueError:  # not inside a Dask task
            pass
    return {"host": socket.gethostname(), "pid": os.getpid(), "worker": worker, "scheduler": scheduler,
            # None: not restricted (whatever devices the machine has); "": no GPU
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def read_lock_info(run_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / LOCK_INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def describe_holder(info: dict | None) -> str:
    if not info:
        return "another process (no lock.json yet)"
    where = f"pid {info.get('pid')} on {info.get('host')}"
    if info.get("worker"):
        where += f" (Dask worker {info['worker']})"
    return f"{where} since {info.get('started_at', '?')}"


@dataclass
class Claim:
    run_dir: Path
    acquired: bool
    holder: dict | None = None     # not acquired: the live holder's lock.json
    previous: dict | None = None   # acquired: the lock.json of a holder that died mid-run, taken over
    _lock: object = field(default=None, repr=False)

    @property
    def previous_attempts(self) -> list[dict]:
        """Every earlier holder that died mid-run, oldest first (their lock.json)."""
        return _attempt_chain(self.previous)

    def release(self) -> None:
        """Remove lock.json, then the lock; only ours (`SoftFileLock.release` checks the marker is ours)."""
        if not self.acquired or self._lock is None:
            return
        info = read_lock_info(self.run_dir)
        if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            (self.run_dir / LOCK_INFO_FILE).unlink(missing_ok=True)
        self._lock.release()
        self.acquired = False

    def message(self) -> str:
        return (f"locked by {describe_holder(self.holder)}; skipped here (if that process is gone, remove "
                f"{self.run_dir / LOCK_FILE})")


def claim_run(run_dir: str | Path, holder_gone: Callable[[dict], bool] | None = None) -> Claim:
    """Try once, without waiting, to claim `run_dir`. A same-host holder that is gone (or a zombie) is taken over;
    a holder elsewhere only when `holder_gone(its lock.json)` says so."""
    from filelock import SoftFileLock, Timeout

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = SoftFileLock(str(run_dir / LOCK_FILE), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        holder = read_lock_info(run_dir)
        if not _provably_gone(run_dir, holder, holder_gone):
            return Claim(run_dir, False, holder=holder)
        if not _break_and_acquire(run_dir, lock, holder):
            return Claim(run_dir, False, holder=read_lock_info(run_dir))
    previous = read_lock_info(run_dir)  # left by a holder that died: a released claim removes it
    info = {**placement(), "started_at": now()}
    if previous:  # the chain of attempts that died, oldest first, survives further deaths
        info["previous_attempts"] = _attempt_chain(previous)
    try:
        write_json_atomic(run_dir / LOCK_INFO_FILE, info)
    except BaseException:
        lock.release()
        raise
    return Claim(run_dir, True, previous=previous, _lock=lock)


@contextmanager
def claimed(run_dir: str | Path, holder_gone: Callable[[dict], bool] | None = None) -> Iterator[Claim]:
    claim = claim_run(run_dir, holder_gone)
    try:
        yield claim
    finally:
        claim.release()


def _attempt_chain(previous: dict | None) -> list[dict]:
    if not previous:
        return []
    return [*previous.get("previous_attempts", []),
            {k: v for k, v in previous.items() if k != "previous_attempts"}]


def _provably_gone(run_dir: Path, holder: dict | None, holder_gone) -> bool:
    marker = _marker(run_dir)
    if marker and marker[1] == _filelock_host() and _is_zombie(marker[0]):
        return True  # killed but not yet reaped by its parent: filelock still sees the pid
    return bool(holder and holder_gone is not None and holder.get("host") != socket.gethostname()
                and holder_gone(holder))


def _break_and_acquire(run_dir: Path, lock, holder: dict | None) -> bool:
    """Break a lock proven stale, serialized among breakers, and only if it is still the one judged stale."""
    from filelock import FileLock, Timeout

    with FileLock(str(run_dir / f"{LOCK_FILE}.break"), timeout=30):
        if read_lock_info(run_dir) != holder:
            return False  # someone else took it over meanwhile
        lock.break_lock()
        try:
            lock.acquire()
        except Timeout:
            return False
    return True


def _marker(run_dir: Path) -> tuple[int, str] | None:
    try:
        lines = (run_dir / LOCK_FILE).read_text().splitlines()
        return int(lines[0]), lines[1]
    except (OSError, ValueError, IndexError):
        return None


def _filelock_host() -> str:
    try:
        from filelock._identity import host_name  # the form filelock writes into its marker (private: may move)
    except ImportError:
        return socket.gethostname()
    return host_name()


def _is_zombie(pid: int) -> bool:
    with suppress(Exception):
        import psutil

        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return False
