"""Ctrl-C during `llmclf run`: the first stops the study after the current cell (the run is recorded as interrupted,
its notebook kept up to that cell), a second one stops at once.

The kernel runs in a session of its own (jupyter_client starts it so), so a terminal's Ctrl-C reaches only the
runner; papermill is given an engine that looks for the request between cells. A run on a Dask worker has no
terminal: `stop_when` gives it a question to ask between cells instead (has its client asked the study to stop?).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

from nbclient.exceptions import CellExecutionError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.utils import merge_kwargs, remove_args

ENGINE = "llmclf-interruptible"
_requested = threading.Event()
_stop_when: ContextVar[Callable[[], bool] | None] = ContextVar("llmclf_stop_when", default=None)


class StopRequested(KeyboardInterrupt):
    """Ctrl-C was pressed: the study stops at the next cell boundary."""


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    asked = _stop_when.get()
    if _requested.is_set() or (asked is not None and asked()):
        raise StopRequested("stopped by the user (Ctrl-C)")


@contextmanager
def stop_when(asked: Callable[[], bool]):
    """Within (this context, and threads started with a copy of it): stop at the next cell boundary once `asked()`
    is true, as after a Ctrl-C. A run on a Dask worker asks whether its study was interrupted."""
    token = _stop_when.set(asked)
    try:
        yield
    finally:
        _stop_when.reset(token)


class _Client(PapermillNotebookClient):
    def papermill_execute_cells(self):
        # papermill's loop (clientwrap.py), with a stop between cells
        for index, cell in enumerate(self.nb.cells):
            check()
            try:
                self.nb_man.cell_start(cell, index)
                self.execute_cell(cell, index)
            except CellExecutionError as ex:
                self.nb_man.cell_exception(self.nb.cells[index], cell_index=index, exception=ex)
                break
            finally:
                self.nb_man.cell_complete(self.nb.cells[index], cell_index=index)


class InterruptibleEngine(NBClientEngine):
    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        # as NBClientEngine.execute_managed_notebook, with our client
        import logging

        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                                    startup_timeout=start_timeout, kernel_name=kernel_name,
                                    log=logging.getLogger("papermill"), log_output=log_output,
                                    stdout_file=stdout_file, stderr_file=stderr_file)
        return _Client(nb_man, **final_kwargs).execute()


papermill_engines.register(ENGINE, InterruptibleEngine)


@contextmanager
def stop_after_cell_on_ctrl_c():
    """Within: the first Ctrl-C asks for a stop at the next cell boundary, the second raises at once. Only in the
    main thread (signal handlers live there); elsewhere Ctrl-C keeps its default."""
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _requested.is_set():
            raise KeyboardInterrupt
        _requested.set()
        print("\nCtrl-C: stopping after the current cell (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
