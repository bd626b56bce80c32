"""Tasks: the texts and labels of a train / validation / test split, from built-in, patent or users' files.

`tasks` reads CSV, JSON Lines, Parquet and folders of them, checks them and splits them; `patents` reads the shared
USPTO data sets and the IPC titles. Imports only `llmclf.config` and `llmclf.artifacts` (never models or anything
above).
"""

from .tasks import DataError, Split, Task, load_task

__all__ = ["DataError", "Split", "Task", "load_task"]
