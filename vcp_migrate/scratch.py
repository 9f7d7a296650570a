"""Throw-away copies of a database for the checks that run migrations on one (validate's lint and
round trips, dry runs of a server's database): a file in the system's temporary folder, not memory,
so a check of a 1 GB database needs about 1 GB of free disk there and little memory. The file is
deleted when its connection closes, and one left by a killed run is never read again."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile

from .copying import copy
from .sqlite import MigrationConnection

_PREFIX = "vcp-migrate-scratch-"


class ScratchConnection(MigrationConnection):
    """A connection to a scratch file, which is deleted (with its journal) when it closes."""

    scratch_path = ""

    def close(self) -> None:
        super().close()
        for path in (self.scratch_path, f"{self.scratch_path}-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def database() -> ScratchConnection:
    """An empty scratch database. Nothing needs to survive a crash there: no syncs."""
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
