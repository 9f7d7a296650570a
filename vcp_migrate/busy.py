"""Waiting for the locks other connections hold on a local file, in Python, so Ctrl-C stops the wait.

SQLite's busy handler sleeps in C until the lock timeout, and ``sqlite3_interrupt()`` does not
cut it short: Ctrl-C while a run waited for the application's lock came only when the wait
ended, up to ``--lock-timeout`` (30 s by default) later. A command waits at four statements of
its own: the first read of a database it opens (is it one?) and the history read that begins a
run (for an application holding the database exclusively: committing, or writing more than its
cache holds, in rollback-journal mode), its BEGIN IMMEDIATE
(for the application's write transaction) and its COMMIT (in rollback-journal mode, for the
application's readers). These wait here in slices of at most ``SLICE_MS`` instead, and Python
runs its signal handlers between them. Each can simply run again: a read or a BEGIN IMMEDIATE
that failed did nothing, and a COMMIT that failed for a lock leaves the transaction as it was,
to be committed again (SQLite's rule). Only where a Ctrl-C can stop anything (``stoppable``):
the slices cost two statements a wait, which a fleet's worker (it ignores Ctrl-C; its fleet ends
it) does not pay for each of its databases.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from typing import Any

from .history import CURRENT
from .transactions import BEGIN, COMMIT

FIRST_READ = "SELECT count(*) FROM sqlite_master"  # opening a database: is it one?
OWN_WAITS = frozenset({FIRST_READ, CURRENT, BEGIN, COMMIT})
SLICE_MS = 50


def stoppable() -> bool:
    """Whether a Ctrl-C could stop a wait here: in the main thread, under a handler written in
    Python (not in a fleet's worker process, which ignores it: its fleet ends it)."""
    return threading.current_thread() is threading.main_thread() and callable(signal.getsignal(signal.SIGINT))


def execute_waiting(connection: sqlite3.Connection, sql: str, parameters: Any, timeout: float) -> sqlite3.Cursor:
    """Run ``sql`` on ``connection`` (whose busy timeout is ``timeout`` seconds), waiting for
    others' locks up to ``timeout`` in slices; SQLite's "database is locked" once it has run out."""
    run = sqlite3.Connection.execute
    full_ms = int(timeout * 1000)  # as sqlite3.connect() sets it
    deadline = time.monotonic() + timeout
    try:
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            run(connection, f"PRAGMA busy_timeout = {max(0, min(SLICE_MS, left_ms)):d}")
            try:
                return run(connection, sql, parameters)
            except sqlite3.OperationalError as exc:
                # SQLITE_BUSY only (file_errors.is_locked also counts SQLITE_LOCKED, which never waits).
                if not str(exc).startswith("database is locked") or left_ms <= SLICE_MS:
                    raise  # the last slice was the rest of the timeout
    finally:
        run(connection, f"PRAGMA busy_timeout = {full_ms:d}")
