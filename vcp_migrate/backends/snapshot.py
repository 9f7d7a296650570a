"""A server's database copied into a local SQLite database: its schema, rows and user_version,
read in the caller's read transaction (one consistent snapshot), a page of rows at a time.

What a server's backup, validate's checks and a dry run with Python code work on. The copy keeps
what a schema can hold that a plain ``SELECT *`` would not: generated columns are left to be
computed again, the tables a virtual table (FTS5) keeps its data in are copied as they are
(the virtual table itself has no rows of its own), and AUTOINCREMENT counters (sqlite_sequence).
"""

from __future__ import annotations

import math
import sqlite3

from .. import history
from ..database import Queries, quoted

_FIRST_PAGE, _MAX_PAGE, _PAGE_BYTES = 1, 20000, 2_000_000  # one row first, to learn their size


def copy_into(connection: Queries, target: sqlite3.Connection) -> None:
    """Copy the database behind ``connection`` into the empty local ``target``."""
    objects = connection.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
        " AND tbl_name <> ? ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END,"
        " rowid",
        (history.LEASE,),  # the run lock is the server's, not part of its data
    ).fetchall()
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    target.isolation_level = None
    target.execute("BEGIN")
    tables = [(str(name), str(sql)) for kind, name, sql in objects if kind == "table"]
    for name, sql in tables:
        if not _exists(target, name):  # a virtual table made its own tables already
            target.execute(sql)
    for name, sql in tables:
        if not sql.lstrip().upper().startswith("CREATE VIRTUAL"):
            _copy_rows(connection, target, name)
    if _exists(connection, "sqlite_sequence"):
        for row in connection.execute("SELECT name, seq FROM sqlite_sequence").fetchall():
            target.execute("DELETE FROM sqlite_sequence WHERE name = ?", (row[0],))
            target.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", tuple(row))
    for kind, _, sql in objects:
        if kind != "table":
            target.execute(sql)
    target.execute(f"PRAGMA user_version = {int(version):d}")
    target.execute("COMMIT")


def _exists(connection: Queries | sqlite3.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None


def _copy_rows(connection: Queries, target: sqlite3.Connection, table: str) -> None:
    name = quoted(table)
    # Stored columns only: generated ones (hidden 2 and 3) are computed again by the copy.
    columns = [str(row[1]) for row in connection.execute(f"PRAGMA table_xinfo({name})").fetchall() if row[6] == 0]
    names = ", ".join(map(quoted, columns))
    signed = _infinite_columns(connection, name, columns)
    # The protocol's JSON has no infinity: the server sends a REAL of +/-infinity as a float
    # without a value, read as NULL. Columns that hold one are read with their sign beside them.
    signs = "".join(f", CASE WHEN {_infinite(column)} THEN {quoted(column)} > 0 END" for column in signed)
    at = [columns.index(column) for column in signed]
    insert = f"INSERT OR REPLACE INTO {name} ({names}) VALUES ({', '.join('?' * len(columns))})"
    offset, page = 0, _FIRST_PAGE
    while True:
        rows = connection.execute(f"SELECT {names}{signs} FROM {name} LIMIT {page} OFFSET {offset}").fetchall()
        if at:
            rows = [_with_infinities(row, at) for row in rows]
        if rows:
            target.executemany(insert, rows)
        offset += len(rows)
        if len(rows) < page:
            return
        # The next page sized to about 2 MB: the server refuses an answer over about 10 MB, and
        # pages of small rows should not cost a request each.
        size = sum(len(value) if isinstance(value, (str, bytes)) else 8 for row in rows for value in row)
        page = max(1, min(_MAX_PAGE, _PAGE_BYTES * len(rows) // max(size, 1)))


def _infinite(column: str) -> str:
    """SQL: whether ``column``'s value is a REAL of +/-infinity."""
    return f"(typeof({quoted(column)}) = 'real' AND abs({quoted(column)}) = 9e999)"


def _infinite_columns(connection: Queries, name: str, columns: list[str]) -> list[str]:
    """The columns of table ``name`` (quoted) where some row holds an infinity, in one scan."""
    if not columns:
        return []
    held = connection.execute(f"SELECT {', '.join(f'max({_infinite(column)})' for column in columns)} FROM {name}")
    return [column for column, infinite in zip(columns, held.fetchone(), strict=True) if infinite]


def _with_infinities(row: tuple[object, ...], at: list[int]) -> tuple[object, ...]:
    """``row`` without its trailing signs, and with an infinity where a sign says one was."""
    values = list(row[: len(row) - len(at)])
    for index, sign in zip(at, row[len(row) - len(at) :], strict=True):
        if sign is not None:
            values[index] = math.inf if sign else -math.inf
    return tuple(values)
