"""The rows of the history table as read: by version, each version a whole number, and once.

vcp-migrate makes the version the table's INTEGER PRIMARY KEY, so SQLite keeps it whole and
unique. A table made again by hand (a tool that rebuilds tables, an import from CSV, which makes
every column TEXT) can hold '3', 3.5, NULL or a BLOB, or a version twice: the commands compared
such a version with whole numbers and failed with an unexpected error, or kept one row of two.
Such a history is refused, naming the value and the query that finds its row. So is a table made
again without a column of its layout, naming the columns and how to add back those that can be.

Text that is not UTF-8 in it (written by hand) is read as a file name is: ``tolerant``.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

from .applied_times import as_text
from .database import Queries
from .errors import DatabaseError
from .models import AppliedMigration

TABLE = "vcp_migrations"
# The columns of the history table at each layout (see ``history``).
COLUMNS = {
    1: ("version", "name", "checksum", "applied_at", "execution_ms"),
    2: ("version", "name", "checksum", "applied_at", "execution_ms", "file", "source"),
}
# The columns a history can do without, and their type: NULL there reads as not kept (as in layout 1).
_ADDABLE = {"file": "TEXT", "source": "BLOB"}
_NO_COLUMN = ("no such column", "has no column named")  # SQLite's words when a column is not there
# What reads no row but fails when the table has no column source: the read of the rows names all
# the columns of layout 2, without reading any source (a whole file each).
SOURCE_THERE = f"(SELECT source FROM {TABLE} WHERE 0)"


R = TypeVar("R", bound=Callable[..., Any])
_NOT_UTF8 = "Could not decode to UTF-8"  # sqlite3's words for text that is not UTF-8


def tolerant(read: R) -> R:
    """``read`` (of the history; its first argument is the connection), reading it again if a text
    in it is not UTF-8 (written by hand: CAST(x'ff' AS TEXT)) with such text decoded as a file name
    is, each byte that is not UTF-8 as a surrogate (``\\udcff``): shown escaped, it matches no
    checksum and is no time. sqlite3 refuses such text, and every command failed with 'Could not
    decode to UTF-8 column ...'. Only then: a text factory costs a Python call a value."""

    @functools.wraps(read)
    def reading(connection: Queries, *args: Any, **kwargs: Any) -> Any:
        try:
            return read(connection, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith(_NOT_UTF8) or not isinstance(connection, sqlite3.Connection):
                raise
        factory = connection.text_factory
        connection.text_factory = _surrogates
        try:
            return read(connection, *args, **kwargs)
        finally:
            connection.text_factory = factory

    return cast(R, reading)


def _surrogates(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def read_rows(connection: Queries, layout: int) -> dict[int, AppliedMigration]:
    """The applied migrations of a history at ``layout`` (1 or more) by version, in one statement.

    Raises DatabaseError for a table that lacks a column of its layout (``lacking``), a version
    that is not a whole number, or one found twice."""
    file = f"file, {SOURCE_THERE}" if layout >= 2 else "NULL, NULL"
    try:
        rows = connection.execute(
            f"SELECT version, name, checksum, applied_at, execution_ms, {file} FROM {TABLE} ORDER BY version"
        )
    except sqlite3.OperationalError as exc:
        found = lacking(connection, layout) if any(words in str(exc) for words in _NO_COLUMN) else None
        if found is None:
            raise
        raise found from None
    return by_version(rows)


def lacking(connection: Queries, layout: int) -> DatabaseError | None:
    """The error for a history table without a column its layout has (it was made again by hand,
    or by another tool), naming the columns and what to do; None when it has them all."""
    query = "SELECT name FROM pragma_table_info(?, 'main')"
    there = {str(row[0]).lower() for row in connection.execute(query, (TABLE,))}
    missing = [column for column in COLUMNS[layout] if column not in there]
    if not missing:
        return None
    them = "them" if len(missing) > 1 else "it"
    backup = "restore a backup ('vcp-migrate backups' lists them)"
    if all(column in _ADDABLE for column in missing):  # NULL there is what a history before them holds
        adding = " and ".join(f"ALTER TABLE {TABLE} ADD COLUMN {column} {_ADDABLE[column]}" for column in missing)
        what_to_do = f"add {them} with {adding} (NULL there reads as not kept), or {backup}"
    else:
        what_to_do = f"{backup}, or add {them} and give each row its value by hand"
    return DatabaseError(
        f"its history table {TABLE} has no column {', '.join(missing)}: it was made again by hand, or by another tool",
        hint=f"{what_to_do}; nothing was changed",
    )


def by_version(rows: Iterable[Sequence[object]]) -> dict[int, AppliedMigration]:
    """The applied migrations by version, from rows of (version, name, checksum, applied_at,
    execution_ms, file, ...). Raises DatabaseError for a version that is not a whole number, or
    one found twice."""
    applied: dict[int, AppliedMigration] = {}
    for row in rows:
        version = row[0] if type(row[0]) is int else whole_version(row[0])
        if version in applied:
            raise twice(version)
        name, checksum, applied_at, ms, file = row[1:6]
        if not (
            type(name) is str
            and type(checksum) is str
            and type(applied_at) is str
            and type(ms) is int
            and (file is None or type(file) is str)
        ):  # a value edited by hand into another type: as SQL writes it (x'ff00'), no time, no number
            name, checksum, applied_at, ms = as_text(name), as_text(checksum), as_text(applied_at), _whole(ms)
            file = None if file is None else as_text(file)
        applied[version] = AppliedMigration(version, name, checksum, applied_at, ms, file)
    return applied


def whole_version(value: object) -> int:
    """A version read from a table made again by hand: a whole number a REAL column keeps as 2.0
    is that number; anything else (NULL, text, 1.5, a BLOB) is refused (DatabaseError)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise not_whole(value)


def _whole(value: object) -> int | None:
    """A number of milliseconds, or None for a value that is none (text, a BLOB, infinity)."""
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    return None


def not_whole(value: object) -> DatabaseError:
    """The error for a history whose ``value`` of a version is no whole number (``...`` when unknown)."""
    return DatabaseError(
        f"its history table {TABLE} has the version {_sql(value)}, which is not a whole number: it was edited by hand",
        hint=f"find the row with: SELECT rowid, * FROM {TABLE} WHERE typeof(version) <> 'integer' and give it its"
        " version, in a table whose version column is INTEGER PRIMARY KEY as vcp-migrate makes it (another type"
        " keeps what it is given as that type), or restore a backup; nothing was changed",
    )


def twice(version: int) -> DatabaseError:
    """The error for a history that holds ``version`` in two rows."""
    return DatabaseError(
        f"its history table {TABLE} has version {version} twice: it was edited by hand",
        hint=f"delete the wrong row (SELECT rowid, * FROM {TABLE} WHERE version = {version}),"
        " or restore a backup; nothing was changed",
    )


def _sql(value: object) -> str:
    """``value`` as SQL writes it: NULL, 'text', x'ff00', 3.5; ``...`` stands for one not known."""
    if value is Ellipsis:
        return "..."
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)
