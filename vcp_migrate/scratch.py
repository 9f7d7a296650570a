"""Throw-away copies of a database for the checks that run migrations on one (validate's lint and
round trips, dry runs of a server's database): on disk, not in memory, so a check of a 1 GB
database needs about 1 GB of free disk and little memory.

A copy is SQLite's own temporary database (one opened with an empty name): SQLite makes its file,
and its journal's, in its temporary folder (``SQLITE_TMPDIR``, else ``TMPDIR``, else /var/tmp,
/usr/tmp, /tmp) and unlinks each as soon as it has opened it, so the space goes back with the
last descriptor on it, when the copy is closed or when the process dies, killed or not. SQLite
cannot do that for a file it opened by name: it needs the name to make the journal beside it, and
refuses to write a database whose file is gone ("attempt to write a readonly database").

Only where SQLite was built to keep temporary databases in memory (``SQLITE_TEMP_STORE`` 2 or 3),
which would put the whole copy in memory, is the copy a named file in Python's temporary folder,
deleted when its connection closes; a killed run leaves that one behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile

from .copying import copy
from .sqlite import MigrationConnection

_PREFIX = "vcp-migrate-scratch-"
_TEMPORARY = ""  # the name that opens SQLite's temporary database


class ScratchConnection(MigrationConnection):
    """A connection to a scratch database, which goes when it closes (a named one with its journal)."""

    scratch_path = ""  # the named file's path; "" for SQLite's temporary database, which has none

    def close(self) -> None:
        super().close()
        if self.scratch_path:
            for path in (self.scratch_path, f"{self.scratch_path}-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


def database() -> ScratchConnection:
    """An empty scratch database. Nothing needs to survive a crash there: no syncs."""
    connection = sqlite3.connect(_TEMPORARY, isolation_level=None, factory=ScratchConnection)
    if str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "memory":  # kept in memory
        connection.close()
        handle, path = tempfile.mkstemp(prefix=_PREFIX, suffix=".db")
        os.close(handle)
        connection = sqlite3.connect(path, isolation_level=None, factory=ScratchConnection)
        connection.scratch_path = path
    connection.execute("PRAGMA synchronous = OFF")
    return connection


def copy_of(source: sqlite3.Connection) -> ScratchConnection:
    """A scratch copy of the database behind ``source`` as it sees it now, page by page (memory flat)."""
    connection = database()
    try:
        copy(source, connection)
        connection.execute("PRAGMA synchronous = OFF")  # the copy brought the source's settings
    except BaseException:
        connection.close()
        raise
    return connection
