"""What a Python migration can leave on its connection for the next migration to meet, even
through the base class (``sqlite3.Connection.set_trace_callback(connection, ...)``), past the
methods ``sqlite`` wraps to mark the connection: what can be undone is undone after each Python
step, and what can be seen is compared with a fresh connection's; a difference marks the
connection, replaced after the migration.

Not seen: functions, aggregates and window functions registered through the base class, and
what an extension loaded through it registers besides collations (virtual table modules...).
SQLite lists them in ``PRAGMA function_list`` and ``module_list``, which cost 30-130 us a read,
as much as a small Python migration's whole run: too much on every migration for a way round
that code must go out of its way to take.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .sqlite import MigrationConnection

_LIMITS = tuple(getattr(sqlite3, name) for name in dir(sqlite3) if name.startswith("SQLITE_LIMIT_"))
# Foreign key enforcement is ours to switch around each transaction (and a PRAGMA, which marks).
_CONFIGS = tuple(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith("SQLITE_DBCONFIG_") and name != "SQLITE_DBCONFIG_ENABLE_FKEY"
)
_WRITABLE_SCHEMA = getattr(sqlite3, "SQLITE_DBCONFIG_WRITABLE_SCHEMA", None)
# The base class's own descriptors and methods: a subclass's could be wrapped, or lie.
_ISOLATION_LEVEL: Any = vars(sqlite3.Connection)["isolation_level"]
_AUTOCOMMIT: Any = vars(sqlite3.Connection).get("autocommit")  # Python 3.12
_GETLIMIT: Any = getattr(sqlite3.Connection, "getlimit", None)  # 3.11
_GETCONFIG: Any = getattr(sqlite3.Connection, "getconfig", None)  # 3.12
_LOAD_EXTENSION: Any = getattr(sqlite3.Connection, "enable_load_extension", None)  # absent in some builds


class Settings(NamedTuple):
    """What can be seen of a connection's state that a migration can change and nothing undoes:
    its transaction control (``isolation_level``; ``autocommit`` from Python 3.12), its limits
    (read from 3.11), its ``getconfig()`` options (3.12), and how many collations it has."""

    isolation_level: str | None
    autocommit: object
    limits: tuple[int, ...]
    configs: tuple[bool, ...]
    collations: int


def settings(connection: sqlite3.Connection) -> Settings:
    """``connection``'s settings now, read through the base class."""
    return Settings(
        _ISOLATION_LEVEL.__get__(connection),
        _AUTOCOMMIT.__get__(connection) if _AUTOCOMMIT is not None else None,
        tuple(_GETLIMIT(connection, limit) for limit in _LIMITS) if _GETLIMIT is not None else (),
        tuple(_GETCONFIG(connection, config) for config in _CONFIGS) if _GETCONFIG is not None else (),
        len(sqlite3.Connection.execute(connection, "PRAGMA collation_list").fetchall()),
    )


_fresh: Settings | None = None


def _as_opened() -> Settings:
    """A fresh connection's settings, as ours are opened (autocommit mode); read once a process,
    the first time a Python migration ran."""
    global _fresh
    if _fresh is None:
        with sqlite3.connect(":memory:", isolation_level=None) as fresh:
            _fresh = settings(fresh)
        fresh.close()
    return _fresh


def after_python(connection: MigrationConnection) -> None:
    """Undo what a Python step may have set on ``connection`` that would break our own queries
    before the commit or reach the next migration unseen (factories, trace and progress
    callbacks, extension loading), and mark it touched when it differs from a fresh connection in
    what can be seen but not undone (setting ``writable_schema`` when that option is on)."""
    base = sqlite3.Connection
    connection.row_factory = None
    connection.text_factory = str
    base.set_progress_handler(connection, None, 0)
    base.set_trace_callback(connection, None)
    if _LOAD_EXTENSION is not None:
        _LOAD_EXTENSION(connection, False)
    if _WRITABLE_SCHEMA is not None and _GETCONFIG is not None and _GETCONFIG(connection, _WRITABLE_SCHEMA):
        connection.writable_schema = connection.touched_state = True
    if connection.touched_state:
        return
    try:
        now = settings(connection)
    except sqlite3.Error:  # what to report is the step's, or the file's at our next statement
        connection.touched_state = True
        return
    if now != _as_opened():
        connection.touched_state = True
