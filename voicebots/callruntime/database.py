"""Database work of live calls, run in a small thread pool of its own.

Channels runs every `database_sync_to_async` call of a process in one thread, one after another: a hundred
calls starting together would wait seconds for each other's queries.
A call's queries touch only that call's rows, so calls may run them side by side; the recorder keeps the
writes of one call in order.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async

CALL_DATABASE_THREADS = 8  # also the most database connections the calls of one process hold at once

_executor = ThreadPoolExecutor(CALL_DATABASE_THREADS, thread_name_prefix="call-db")


def in_call_database_thread(func):
    """`func` as a coroutine function run in the call database pool (its connection is released afterwards:
    back to the connection pool, or closed with DB_POOL=false)."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_executor)
