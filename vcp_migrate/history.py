"""The history tables: the only module that knows their SQL.

``vcp_migrations`` holds one row per applied migration, with the file name and the exact
source that was applied. ``vcp_migrations_meta`` records the layout of these tables, so a
later release upgrades them in place, and an id that tells backups of this database apart.

Layouts: 1 (the first release) had no ``file`` and ``source``; 2 adds them and the database id.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from typing import NamedTuple

from . import applied_times
from .database import Queries
from .errors import DatabaseError
from .history_rows import SOURCE_THERE, by_version, read_rows, tolerant, whole_version
from .history_rows import TABLE as TABLE
from .models import AppliedMigration, MigrationFile

META = "vcp_migrations_meta"
TABLES = (TABLE, META)
HANDS_OFF = "leave the history tables to vcp-migrate"  # what a migration that touched them is told
LEASE = "vcp_migrations_lease"  # the run lock on a server (backends.lease)
OURS = (*TABLES, LEASE)  # left out of schema snapshots: they are the tool's, not the application's
LAYOUT = 2
USER_VERSION_MAX = 2**31 - 1  # PRAGMA user_version is a signed 32-bit integer

# What this module writes, and reads back before a commit, names the schema: a migration's TEMP
# table of the same name would otherwise take our row (unqualified names find TEMP first).
_MAIN_TABLE = f"main.{TABLE}"
_MAIN_META = f"main.{META}"

_CREATE = (
    f"CREATE TABLE {_MAIN_TABLE} ("
    " version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL,"
    " execution_ms INTEGER NOT NULL,"
    " file TEXT,"
    " source BLOB)",
    f"CREATE TABLE {_MAIN_META} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
# Statements that take the tables from layout N to N + 1.
_UPGRADES = {
    1: (f"ALTER TABLE {_MAIN_TABLE} ADD COLUMN file TEXT", f"ALTER TABLE {_MAIN_TABLE} ADD COLUMN source BLOB"),
}


@tolerant
def layout(connection: Queries) -> int:
    """The layout of the history tables in this database; 0 when it has none.

    Raises DatabaseError when something of the application's has a history table's name (a table
    of other columns, a view, another spelling of the name): SQLite would refuse ours beside it.
    """
    return _layout(connection)[0]


def _layout(connection: Queries) -> tuple[int, tuple[str, ...]]:
    """``layout``, and the triggers on the history tables in the main schema, in one read of it."""
    query = (  # the kinds whose names a table's may not take; a trigger's may
        "SELECT name, type FROM sqlite_master WHERE name COLLATE NOCASE IN (?, ?)"
        f" AND type IN ('table', 'view', 'index') UNION ALL {_ON_HISTORY} ORDER BY name"
    )
    names, triggers = set(), []
    for name, kind in connection.execute(query, TABLES):
        if kind == "trigger":
            triggers.append(str(name))
        elif kind != "table" or name not in TABLES:
            raise _not_ours(str(name), str(kind))
        else:
            names.add(str(name))
    if not names:
        return 0, ()
    if TABLE not in names:
        raise _not_ours(META)
    try:
        row = connection.execute(f"SELECT value FROM {META} WHERE key = 'layout'").fetchone() if META in names else None
    except sqlite3.OperationalError as exc:
        if str(exc).startswith("no such column"):
            raise _not_ours(META) from None
        raise
    if row is None or not str(row[0]).isdigit():
        raise _not_ours(TABLE)
    found = int(row[0])
    if found > LAYOUT:
        raise DatabaseError(
            f"its history was written by a newer vcp-migrate (layout {found}, this one knows {LAYOUT})",
            hint="upgrade vcp-migrate; nothing was changed",
        )
    return found, tuple(triggers)


def _not_ours(name: str, kind: str = "table") -> DatabaseError:
    return DatabaseError(
        f"has a {name} {kind} that vcp-migrate did not create",
        hint=f"rename the application's {name} {kind}; nothing was changed",
    )


def unmanaged_tables(connection: Queries) -> list[str]:
    """The tables of a database that has never had vcp-migrate's history tables; [] when it has them."""
    if layout(connection):
        return []
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
        " AND name NOT IN (?, ?, ?) ORDER BY name"
    )
    return [str(row[0]) for row in connection.execute(query, OURS)]


def has_objects(connection: Queries) -> bool:
    """Whether the database holds anything but the run lock's lease (tables, indexes, views...)."""
    query = "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!' AND tbl_name <> ?"
    return int(connection.execute(query, (LEASE,)).fetchone()[0]) > 0


@tolerant
def read(connection: Queries) -> dict[int, AppliedMigration]:
    """Every applied migration by version (without sources); empty when there is no history yet."""
    return _rows(connection, layout(connection))


class Found(NamedTuple):
    """What a read of the history found: the layout of its tables, the applied migrations, the id,
    and the triggers on its tables (``history_guard.not_made_here``), read with them at no extra statement."""

    layout: int
    applied: dict[int, AppliedMigration]
    database_id: str | None
    triggers: tuple[str, ...] = ()


@tolerant
def read_all(connection: Queries, *, with_id: bool) -> Found:
    """``read``, the layout, and (``with_id``) ``database_id`` together, looking up the layout once
    (call in one snapshot)."""
    found, triggers = _layout(connection)
    return Found(found, _rows(connection, found), _id(connection, found) if with_id else None, triggers)


# The triggers on the history tables in the main schema (a TEMP one could only be the reading
# connection's own), as SQLite compares names: ignoring the case of ASCII letters (NOCASE).
_ON_HISTORY = (
    "SELECT name, type FROM main.sqlite_master"
    f" WHERE type = 'trigger' AND tbl_name COLLATE NOCASE IN ('{TABLE}', '{META}')"
)
# The whole history at the current layout in one statement, hence one snapshot and one round of
# SQLite's file locking without a transaction around it: a first row (version NULL, so sorted
# first) carries the triggers on its tables (separated by NUL, which no name holds), the layout
# and the database id (and fails without the column source), the others are the applied migrations.
CURRENT = (
    f"SELECT NULL, (SELECT group_concat(name, char(0)) FROM ({_ON_HISTORY})), {SOURCE_THERE}, NULL, NULL, NULL,"
    f" (SELECT value FROM {META} WHERE key = 'layout'),"
    f" (SELECT value FROM {META} WHERE key = 'database_id')"
    f" UNION ALL SELECT version, name, checksum, applied_at, execution_ms, file, NULL, NULL FROM {TABLE}"
    " ORDER BY 1"
)
_NOT_CURRENT = ("no such table", "no such column")  # SQLite's words when a table or column is not there


@tolerant
def read_current(connection: Queries, *, with_id: bool) -> Found | None:
    """``read_all`` in one statement (one snapshot, no transaction needed) when the history tables
    are at the current layout; None when they are not (absent, older, or not vcp-migrate's):
    ``read_all``, in one snapshot, then tells which. Errors about the database pass through."""
    try:
        rows = connection.execute(CURRENT).fetchall()
    except sqlite3.OperationalError as exc:
        if str(exc).startswith(_NOT_CURRENT):
            return None
        raise
    layout, database_id = rows[0][6], rows[0][7]
    if layout is None or str(layout) != str(LAYOUT):
        return None
    applied = by_version(rows[1:])
    triggers = () if rows[0][1] is None else tuple(sorted(str(rows[0][1]).split("\0")))
    return Found(LAYOUT, applied, str(database_id) if with_id and database_id is not None else None, triggers)


def _rows(connection: Queries, found: int) -> dict[int, AppliedMigration]:
    return read_rows(connection, found) if found else {}


@tolerant
def applied_source(connection: Queries, version: int) -> bytes | None:
    """The file content as it was applied, or None when the history predates sources."""
    if layout(connection) < 2:
        return None
    row = connection.execute(f"SELECT source FROM {TABLE} WHERE version = ?", (version,)).fetchone()
    if not row or row[0] is None:
        return None
    if isinstance(row[0], str):  # TEXT, if not kept by us; what is not UTF-8 in it back to its bytes
        return row[0].encode("utf-8", "surrogateescape")
    return bytes(row[0])


@tolerant
def database_id(connection: Queries) -> str | None:
    """The id vcp-migrate gave this database, or None if it has no (current) history."""
    return _id(connection, layout(connection))


def _id(connection: Queries, found: int) -> str | None:
    if found < 2:
        return None
    row = connection.execute(f"SELECT value FROM {META} WHERE key = 'database_id'").fetchone()
    return str(row[0]) if row else None


def prepare(connection: Queries) -> None:
    """Create the history tables, or upgrade them to the current layout; call inside a write transaction."""
    found = layout(connection)
    if found == LAYOUT:
        return
    if found == 0:
        for statement in _CREATE:
            connection.execute(statement)
        connection.execute(f"INSERT INTO {_MAIN_META} (key, value) VALUES ('layout', ?)", (str(LAYOUT),))
    else:
        for step in range(found, LAYOUT):
            for statement in _UPGRADES[step]:
                connection.execute(statement)
        connection.execute(f"UPDATE {_MAIN_META} SET value = ? WHERE key = 'layout'", (str(LAYOUT),))
    import uuid

    connection.execute(
        f"INSERT OR IGNORE INTO {_MAIN_META} (key, value) VALUES ('database_id', ?)", (uuid.uuid4().hex,)
    )


def record(connection: Queries, migration: MigrationFile, execution_ms: int, after: str | None = None) -> str:
    """Write the history row of an applied migration, in the caller's transaction; returns its
    applied_at.

    applied_at is the order of application (rollback undoes the migration applied last first), so
    a row never takes a time at or before the latest one's (``after``, the latest the caller
    knows; None: read here): a clock set back, or the clock of another host that is behind,
    writes a millisecond after it instead.
    """
    if after is None:
        after = latest_applied_at(connection)
    stamp = applied_times.after(after, utc_now())
    connection.execute(
        f"INSERT INTO {_MAIN_TABLE} (version, name, checksum, applied_at, execution_ms, file, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            migration.version,
            migration.name,
            migration.checksum,
            stamp,
            execution_ms,
            migration.path.name,
            migration.source,
        ),
    )
    return stamp


@tolerant
def latest_applied_at(connection: Queries) -> str:
    """The latest applied_at in the history that is a time ('' when none is), in the form
    vcp-migrate writes: one read of its rows (a row written by hand may hold another form)."""
    rows = connection.execute(f"SELECT applied_at FROM {_MAIN_TABLE} WHERE typeof(applied_at) = 'text'")
    return applied_times.latest(row[0] for row in rows)


def update(connection: Queries, migration: MigrationFile) -> None:
    """Record a reviewed edit of an applied migration: its new name, checksum and source."""
    connection.execute(
        f"UPDATE {_MAIN_TABLE} SET name = ?, checksum = ?, file = ?, source = ? WHERE version = ?",
        (migration.name, migration.checksum, migration.path.name, migration.source, migration.version),
    )


def remove(connection: Queries, version: int) -> bool:
    """Delete the history row of a rolled-back migration, in the caller's transaction; False when
    there was no row to delete (another run, through another name, rolled it back first)."""
    return bool(connection.execute(f"DELETE FROM {_MAIN_TABLE} WHERE version = ?", (version,)).rowcount == 1)


def written_in(sql: str) -> str | None:
    """The history table that ``sql`` (a statement, or a trigger's text) names as one it writes
    (INSERT or REPLACE INTO, UPDATE [OR ...], DELETE FROM it, a schema's name before it or not),
    if any. Read, not compiled: for where no authorizer sees what a statement does (a trigger
    that will not compile yet, a statement sent to a server)."""
    if _NAMED.search(sql) is None:  # at C's speed: most statements name neither table
        return None
    from .sqltext import words  # not on the path of every command

    said = [word.lower() if word.isascii() else word for word in words(sql)]
    for at, word in enumerate(said):
        if word not in TABLES:
            continue
        start = at - 2 if at >= 2 and said[at - 1] == "." else at  # main.vcp_migrations
        before = said[max(0, start - 3) : start]
        if before and (
            before[-1] in ("into", "update") or before[-2:] == ["delete", "from"] or before[:2] == ["update", "or"]
        ):
            return word
    return None


def refusal(sql: str) -> str | None:
    """What a statement would do to the history tables, as what a migration tried (to write to
    one, to create, drop, alter or index one, or to create a trigger on one or that would write
    one), read where no authorizer sees it; None if nothing."""
    if _NAMED.search(sql) is None:
        return None
    from .sqltext import words

    said = [word.lower() if word.isascii() else word for word in words(sql)]
    if (reshaped := _reshaped_in(said)) is not None:
        return reshaped
    table = written_in(sql)
    if table is None:
        return None
    if said[:1] == ["create"] and "trigger" in said[1:3]:
        return f"create a trigger that writes to the history table {table}"
    return f"write to the history table {table} (INSERT, UPDATE or DELETE)"


def _reshaped_in(said: list[str]) -> str | None:
    """What a statement's words do to a history table itself, if anything (see ``refusal``)."""
    kind = said[1:3] if said[1:2] in (["temp"], ["temporary"], ["unique"]) else said[1:2]
    kind = kind[-1:]
    if said[:1] == ["drop"] and kind == ["table"]:
        doing, at = "drop", 2
    elif said[:1] == ["alter"] and kind == ["table"]:
        doing, at = "alter or rename", 2
    elif said[:1] == ["create"] and kind == ["table"] and said[1] not in ("temp", "temporary"):
        doing, at = "create", 2
    elif said[:1] == ["create"] and kind in (["index"], ["trigger"]) and "on" in said:
        doing, at = f"put an {kind[0]} on" if kind == ["index"] else "put a trigger on", said.index("on") + 1
    else:
        return None
    while said[at : at + 1] in (["if"], ["not"], ["exists"]):
        at += 1
    if said[at + 1 : at + 2] == ["."]:  # main.vcp_migrations
        at += 2
    named = said[at] if at < len(said) else ""
    return f"{doing} a history table ({named})" if named in TABLES else None


_NAMED = re.compile("vcp_migrations", re.IGNORECASE)  # TABLE, in META too
# The row of a version, and the highest version: read back before a COMMIT (``history_guard``).
CHECKSUM = f"SELECT checksum FROM {_MAIN_TABLE} WHERE version = ?"
HIGHEST = f"SELECT coalesce(max(version), 0) FROM {_MAIN_TABLE}"


def is_recorded(connection: Queries, migration: MigrationFile, *, applied: bool) -> bool:
    """Whether the history says what the run just wrote: the row of ``migration`` with its
    checksum (``applied``), or no row at all (rolled back)."""
    row = connection.execute(CHECKSUM, (migration.version,)).fetchone()
    checksum = None if row is None or row[0] is None else str(row[0])
    return checksum == migration.checksum if applied else checksum is None


def highest(connection: Queries) -> int:
    """The highest applied version, 0 when none."""
    if layout(connection) == 0:
        return 0
    found = connection.execute(f"SELECT coalesce(max(version), 0) FROM {TABLE}").fetchone()[0]
    # A table made again by hand: text sorts above every number; a REAL column keeps 2 as 2.0.
    return found if type(found) is int else whole_version(found)


def sync_user_version(connection: Queries, highest: int | None = None) -> bool:
    """Set PRAGMA user_version to the highest applied version (``highest``, when the caller has
    just read it), in the caller's transaction, which has just written the history (so the
    table exists: no need to look for it, at O(schema) a time).

    Returns False, leaving it unchanged, when that version does not fit in 32 bits.
    """
    if highest is None:
        highest = int(connection.execute(HIGHEST).fetchone()[0])
    if highest > USER_VERSION_MAX:
        return False
    connection.execute(f"PRAGMA user_version = {highest:d}")
    return True


def utc_now() -> str:
    """The current UTC time as ISO 8601 with milliseconds, e.g. 2026-11-24T12:00:00.000Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
