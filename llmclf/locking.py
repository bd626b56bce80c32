"""Build-or-load of a shared cache entry, once: `with build_lock(path): load it if there, else build and save it`.

Runs executed side by side (`llmclf run --workers N`) share caches: packaged models, frozen embeddings, instruction
adapters. Without a lock two runs that miss the same entry both build it; with one, the second waits and loads the
first's. filelock's `FileLock` is an OS lock (flock), released by the kernel when its holder dies, so a crashed
build never blocks the next; on a filesystem without flock it falls back to an existence marker, which filelock
takes over once its same-host holder is gone.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def lock_path_for(target: str | Path) -> Path:
    """The lock beside `target` (a file or a folder that may not exist yet): `<target>.lock`."""
    target = Path(target)
    return target.with_name(f"{target.name}.lock")


@contextmanager
def build_lock(target: str | Path, timeout: float = -1) -> Iterator[None]:
    """Hold `<target>.lock` for a build-or-load of `target`; waits for another process's build (`timeout` < 0:
    for as long as it takes). The lock file stays: deleting a lock file others may be waiting on is a race."""
    from filelock import FileLock

    path = lock_path_for(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=timeout):
        yield
