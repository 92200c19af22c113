"""The test run's processes end without the interpreter's teardown.

Once pytest is done, a process's exit handlers still run as always (they stop the embedded servers, remove
temporary files, flush logs), but then Python frees every object one at a time before the process may end: 1-2 s
of CPU in a worker that has imported the whole product, and `pytest -n` waits for each worker's. The OS frees
a process's memory at once, so here the process ends as soon as its exit handlers are done, with pytest's exit
status.
"""
from __future__ import annotations

import atexit
import os
import sys

import pytest

_exit_status: list[int] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    _exit_status[:] = [int(session.exitstatus)]


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _exit_status:
        # Registered last, so it runs first: it runs the other handlers itself, then ends the process.
        atexit.register(_end_after_exit_handlers, _exit_status[0])


def _end_after_exit_handlers(status: int) -> None:
    atexit.unregister(_end_after_exit_handlers)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
