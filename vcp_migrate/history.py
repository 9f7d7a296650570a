"""The history table: the only module that knows its SQL.

``vcp_migrations`` holds one row per applied migration. ``vcp_migrations_meta`` records the
layout of these tables, so a later release can upgrade them in place.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from .errors import DatabaseError
from .models import AppliedMigration, MigrationFile

TABLE = "vcp_migrations"
META = "vcp_migrations_meta"
LAYOUT = 1

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL,"
    " execution_ms INTEGER NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def layout(connection: sqlite3.Connection) -> int:
    """The layout of the history tables in this database; 0 when it has none."""
    names = {
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)", (TABLE, META)
        )
    }
    if not names:
        return 0
    row = connection.execute(f"SELECT value FROM {META} WHERE key = 'layout'").fetchone() if META in names else None
    if TABLE not in names or row is None or not str(row[0]).isdigit():
        raise DatabaseError(
            f"has a {TABLE} table that vcp-migrate did not create",
            hint=f"rename the application's {TABLE} table; nothing was changed",
        )
    found = int(row[0])
    if found > LAYOUT:
        raise DatabaseError(
            f"its history was written by a newer vcp-migrate (layout {found}, this one knows {LAYOUT})",
            hint="upgrade vcp-migrate; nothing was changed",
        )
    return found


def read(connection: sqlite3.Connection) -> dict[int, AppliedMigration]:
    """Every applied migration by version; empty when the database has no history yet."""
    if layout(connection) == 0:
        return {}
    rows = connection.execute(f"SELECT version, name, checksum, applied_at, execution_ms FROM {TABLE} ORDER BY version")
    return {row[0]: AppliedMigration(*row) for row in rows}


def prepare(connection: sqlite3.Connection) -> None:
    """Create the history tables if missing; call inside a write transaction."""
    if layout(connection) == LAYOUT:
        return
    for statement in _CREATE:
        connection.execute(statement)
    connection.execute(f"INSERT INTO {META} (key, value) VALUES ('layout', ?)", (str(LAYOUT),))


def record(connection: sqlite3.Connection, migration: MigrationFile, execution_ms: int) -> None:
    """Write the history row of an applied migration, in the caller's transaction."""
    connection.execute(
        f"INSERT INTO {TABLE} (version, name, checksum, applied_at, execution_ms) VALUES (?, ?, ?, ?, ?)",
        (migration.version, migration.name, migration.checksum, utc_now(), execution_ms),
    )


def remove(connection: sqlite3.Connection, version: int) -> None:
    """Delete the history row of a rolled-back migration, in the caller's transaction."""
    connection.execute(f"DELETE FROM {TABLE} WHERE version = ?", (version,))


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds, e.g. 2026-11-24T12:00:00.000Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
