"""Waiting for the locks other connections hold on a local file, in Python, so Ctrl-C stops the wait.

SQLite's busy handler sleeps in C until the lock timeout, and ``sqlite3_interrupt()`` does not
cut it short: Ctrl-C while a run waited for the application's write lock (its BEGIN IMMEDIATE) or
for the application's readers (its COMMIT, in rollback-journal mode) came only when the wait
ended, up to ``--lock-timeout`` (30 s by default) later. Our own BEGIN and COMMIT wait here in
slices of at most ``SLICE_MS`` instead, and Python runs its signal handlers between them. A
BEGIN IMMEDIATE that failed took nothing; a COMMIT that failed for a lock leaves the transaction
as it was, to be committed again (SQLite's rule): both are simply run again. Only where a Ctrl-C
can stop anything (``stoppable``): the slices cost two statements a wait, which a fleet's worker
(it ignores Ctrl-C; its fleet ends it) does not pay for each of its databases.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from typing import Any

from .transactions import BEGIN, COMMIT

OWN_WAITS = frozenset({BEGIN, COMMIT})
SLICE_MS = 50
_SLICE = f"PRAGMA busy_timeout = {SLICE_MS}"


def stoppable() -> bool:
    """Whether a Ctrl-C could stop a wait here: in the main thread, under a handler written in
    Python (not in a fleet's worker process, which ignores it: its fleet ends it)."""
    return threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT))


def execute_waiting(connection: sqlite3.Connection, sql: str, parameters: Any, timeout: float) -> sqlite3.Cursor:
    """Run ``sql`` on ``connection`` (whose busy timeout is ``timeout`` seconds), waiting for
    others' locks up to ``timeout`` in slices; "database is locked" once it has run out."""
    run = sqlite3.Connection.execute
    run(connection, _SLICE)
    try:
        try:
            return run(connection, sql, parameters)  # the lock free: no more than that
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("database is locked"):
                raise
        deadline = time.monotonic() + timeout - SLICE_MS / 1000  # one slice waited already
        while True:
            left_ms = round((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise sqlite3.OperationalError("database is locked")
            run(connection, f"PRAGMA busy_timeout = {min(SLICE_MS, left_ms):d}")
            try:
                return run(connection, sql, parameters)
            except sqlite3.OperationalError as exc:
                if not str(exc).startswith("database is locked"):
                    raise
    finally:
        run(connection, f"PRAGMA busy_timeout = {round(timeout * 1000):d}")
