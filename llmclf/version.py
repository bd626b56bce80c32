"""The code that made a record: the package version and a hash of the package's own sources and notebooks."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_version() -> str:
    """'<version>+<sha256 of every .py and .ipynb under llmclf/, first 12 hex>': two records with the same value
    were made by the same code, whatever git says (an uncommitted edit changes it too)."""
    try:
        version = metadata.version("llmclf")
    except metadata.PackageNotFoundError:
        version = "0"
    digest = hashlib.sha256()
    for path in sorted(p for ext in ("*.py", "*.ipynb") for p in PACKAGE_DIR.rglob(ext)
                       if "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"{version}+{digest.hexdigest()[:12]}"
