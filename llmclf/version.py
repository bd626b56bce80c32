"""Which code made a run: the package version and a hash of the package's own files.

A record carries `code_version`; `llmclf run --rerun stale` re-executes the runs whose record names another one,
and the report marks them. The hash covers the Python modules and the notebooks, the code a run executes.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"
PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def code_version() -> str:
    """`<version>+<sha256 of the package's .py and .ipynb files, by relative path>[:12]`."""
    digest = hashlib.sha256()
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.suffix in (".py", ".ipynb") and "__pycache__" not in p.parts)
    for path in files:
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+{digest.hexdigest()[:12]}"
