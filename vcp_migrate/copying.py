"""Copying a local SQLite database with the online backup API, in steps Ctrl-C can stop; and
telling whether a database still holds what a copy of it holds (``differs``).

SQLite copies page by page through its pager (memory stays flat). One call copying every page
ran in C from start to end, and Python runs a signal's handler only between bytecodes: Ctrl-C
during the backup of a 20 GB database waited for the end of it. Here each step copies at most
``STEP_BYTES``, and between steps Python code runs, so a KeyboardInterrupt stops the copy within
a step. The source is read in one read transaction for the whole copy (begun here when it is in
none), as the single step read it: other connections' commits cannot make SQLite restart the copy
(in rollback-journal mode they wait for its end; in WAL mode it copies the snapshot). A copy
stopped part-way leaves its target as it was: SQLite writes it in one transaction, committed at
the last step.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .database import quoted
from .transactions import READ, ROLLBACK

STEP_BYTES = 32 * 1024 * 1024  # about 0.1 s of copying here: the longest a Ctrl-C waits
_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (sqlite3 names them from Python 3.11 only)


class Stopped(KeyboardInterrupt):
    """Ctrl-C stopped a copy before its last step: its target is as it was (nothing to compare)."""


def copy(source: sqlite3.Connection, target: sqlite3.Connection) -> None:
    """Copy the database behind ``source`` over the one behind ``target``.

    A lock still held when the busy timeout of the waiting connection runs out fails the copy
    with "database is locked": sqlite3's own backup() would retry it forever. A KeyboardInterrupt
    that certainly came before the last step is raised as ``Stopped``.
    """
    with _one_snapshot(source):
        page_size, left = (int(source.execute(f"PRAGMA {name}").fetchone()[0]) for name in ("page_size", "page_count"))
        step = max(1, STEP_BYTES // page_size)

        def between_steps(status: int, remaining: int, total: int) -> None:
            nonlocal left  # a Ctrl-C during a step may be raised before this: ``left`` is then the step's start
            left = remaining
            if status in _BUSY:
                raise sqlite3.OperationalError("database is locked")

        try:
            source.backup(target, pages=step, progress=between_steps)
        except KeyboardInterrupt:
            if left > step:  # the step it stopped after could not have been the last, which commits
                raise Stopped from None
            raise


@contextlib.contextmanager
def _one_snapshot(source: sqlite3.Connection) -> Iterator[None]:
    """Hold a read transaction on ``source`` while inside: its own if it is in one (a deferred
    BEGIN holds no lock until it reads: read now), left as it is; otherwise one begun and ended here."""
    begun = not source.in_transaction
    if begun:
        source.execute(READ)
    try:
        source.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # the read lock, taken now
        yield
    finally:
        if begun and source.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # what stopped the copy is what to report
                source.execute(ROLLBACK)


def differs(database: Path, backup: Path, timeout: float) -> bool:
    """Whether ``database`` holds anything other than ``backup``: schema, rows, or the header
    settings a migration can change (page size, journal mode, user_version, ...).

    Reads both whole, so it is asked only when a run failed after code that may have written
    outside a transaction; the database is only read.
    """
    # The backup is opened as main and read-write only so that SQLite removes the -wal and -shm
    # files of a backup of a database in WAL mode when it closes (see backups.copy_into).
    connection = sqlite3.connect(backup.absolute().as_uri() + "?mode=rw", uri=True, timeout=timeout)
    try:
        connection.execute("ATTACH ? AS live", (database.absolute().as_uri() + "?mode=ro",))
        for setting in ("page_size", "journal_mode", "user_version", "application_id", "auto_vacuum"):
            if _one(connection, f"PRAGMA main.{setting}") != _one(connection, f"PRAGMA live.{setting}"):
                return True
        tables = "SELECT name FROM {}.sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL %'"
        schema = "SELECT type, name, tbl_name, sql FROM {}.sqlite_master"
        if _rows_differ(connection, schema.format("main"), schema.format("live")):
            return True
        for (name,) in connection.execute(tables.format("main")).fetchall():
            table = quoted(str(name))
            # Every row of a rowid table is told apart by its rowid, of a WITHOUT ROWID one by its key.
            rowid = "" if _without_rowid(connection, table) else "_rowid_, "
            query = f"SELECT {rowid}* FROM {{}}.{table}"
            if _rows_differ(connection, query.format("main"), query.format("live")):
                return True
        return False
    finally:
        connection.close()


def _one(connection: sqlite3.Connection, sql: str) -> object:
    row = connection.execute(sql).fetchone()
    return str(row[0]).lower() if row else None


def _rows_differ(connection: sqlite3.Connection, left: str, right: str) -> bool:
    counts = connection.execute(f"SELECT (SELECT count(*) FROM ({left})), (SELECT count(*) FROM ({right}))")
    before, after = counts.fetchone()
    return bool(before != after or connection.execute(f"SELECT 1 FROM ({left} EXCEPT {right}) LIMIT 1").fetchone())


def _without_rowid(connection: sqlite3.Connection, table: str) -> bool:
    try:
        connection.execute(f"SELECT _rowid_ FROM main.{table} LIMIT 0")
        return False
    except sqlite3.OperationalError:
        return True
