"""SQLite's errors about the database file rather than the SQL that ran (not a database, corrupt,
read-only, moved, locked, full, I/O), and the DatabaseError each becomes: what happened to the
file and what to do. A server's failures (``backends.remote``) count as such errors too, and a
COMMIT whose answer a server lost is said to be of unknown outcome (``commit_unknown``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import DatabaseError, LockTimeout, setting

_READONLY_DBMOVED = 1032  # SQLite's extended code (Python 3.11+): the file it had open was renamed or unlinked
# SQLite's fixed messages for errors about the database file rather than the SQL that ran.
_FILE_ERRORS = {
    "file is not a database": "not-a-database",
    "database disk image is malformed": "corrupt",
    "malformed database schema": "corrupt",
    "attempt to write a readonly database": "read-only",
    "database is locked": "locked",
    "database schema is locked": "locked",
    "database table is locked": "locked",
    "unable to open database file": "cannot-open",
    "database or disk is full": "disk",
    "disk i/o error": "disk",
}


def _file_error_kind(exc: BaseException) -> str | None:
    if not isinstance(exc, sqlite3.Error):
        return None
    if getattr(exc, "about_database", False):  # a server or its stream failed (backends.remote)
        return "server"
    try:
        text = str(exc).lower()
    except Exception:  # a subclass raised by a migration, whose message cannot be read: not SQLite's
        return None
    return next((kind for prefix, kind in _FILE_ERRORS.items() if text.startswith(prefix)), None)


def is_file_problem(exc: BaseException) -> bool:
    """Whether a SQLite error is about the database file (read-only, locked, corrupt, full, I/O),
    not about the SQL that was running."""
    return _file_error_kind(exc) is not None


def is_locked(exc: BaseException) -> bool:
    """Whether a SQLite error says another connection holds a lock the statement needs."""
    return _file_error_kind(exc) == "locked"


def database_error(exc: sqlite3.Error, path: Path | str, changed: str = "nothing was changed") -> DatabaseError:
    """Translate a SQLite error about the database file itself into a DatabaseError; ``changed``
    ends the hint: what the command had done when the error came."""
    where = str(path)
    kind = _file_error_kind(exc)
    if kind == "not-a-database":
        return DatabaseError("is not a SQLite database", where=where, hint=f"check {setting('db_path')}; {changed}")
    if kind == "corrupt":
        return DatabaseError(f"is corrupt ({exc})", where=where, hint=f"restore it from a backup; {changed}")
    gone = "://" not in where and not os.path.lexists(where)  # before 3.11 (no extended code): the file gone says it
    if kind == "read-only" and getattr(exc, "sqlite_errorcode", _READONLY_DBMOVED if gone else 0) == _READONLY_DBMOVED:
        return DatabaseError("was moved or deleted during the run", where=where, hint=f"put it back; {changed}")
    if kind == "read-only":
        return DatabaseError(
            "is read-only", where=where, hint=f"check the permissions of the file and its folder; {changed}"
        )
    if kind == "locked":
        return LockTimeout(
            "is locked by another connection",
            where=where,
            hint=f"retry when it is released, or raise {setting('lock_timeout')}; {changed}",
        )
    if kind == "cannot-open" and (link := _linked_beside(where)) is not None:
        return DatabaseError(
            f"cannot be opened: {link} beside it is a symbolic link, which SQLite refuses to open or write through",
            where=where,
            hint=f"remove the link: SQLite never makes its journal, WAL or shared-memory file one; {changed}",
        )
    if kind == "cannot-open":
        return DatabaseError("cannot be opened", where=where, hint=f"check the path and its permissions; {changed}")
    if kind == "disk":
        return DatabaseError(str(exc), where=where, hint=f"check the disk; {changed}")
    return DatabaseError(str(exc), where=where, hint=changed)


def _linked_beside(where: str) -> str | None:
    """The journal, WAL or shared-memory file of the database at ``where`` that is a symbolic link
    (planted, or left by a copy that kept links), if any: SQLite then cannot open the database."""
    if "://" in where:
        return None
    return next((where + end for end in ("-journal", "-wal", "-shm") if os.path.islink(where + end)), None)


def commit_unknown(what: str = "it") -> str:
    """What to say of ``what`` when a server's answer to its COMMIT was lost: not "nothing was changed"."""
    return (
        f"whether {what} was committed is unknown (the server's answer to its COMMIT was lost):"
        " 'vcp-migrate status' tells once the server answers"
    )
