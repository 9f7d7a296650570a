"""A server's database copied into a local SQLite database: its schema, rows and user_version,
read in the caller's read transaction (one consistent snapshot), a page of rows at a time.

What a server's backup, validate's checks and a dry run with Python code work on. The copy keeps
what a schema can hold that a plain ``SELECT *`` would not: generated columns are left to be
computed again, the tables a virtual table (FTS5) keeps its data in are copied as they are
(the virtual table itself has no rows of its own), and AUTOINCREMENT counters (sqlite_sequence).
"""

from __future__ import annotations

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
    insert = f"INSERT OR REPLACE INTO {name} ({names}) VALUES ({', '.join('?' * len(columns))})"
    offset, page = 0, _FIRST_PAGE
    while True:
        rows = connection.execute(f"SELECT {names} FROM {name} LIMIT {page} OFFSET {offset}").fetchall()
        if rows:
            target.executemany(insert, rows)
        offset += len(rows)
        if len(rows) < page:
            return
        # The next page sized to about 2 MB: the server refuses an answer over about 10 MB, and
        # pages of small rows should not cost a request each.
        size = sum(len(value) if isinstance(value, (str, bytes)) else 8 for row in rows for value in row)
        page = max(1, min(_MAX_PAGE, _PAGE_BYTES * len(rows) // max(size, 1)))
