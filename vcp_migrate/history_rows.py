"""The rows of the history table as read: by version, each version a whole number, and once.

vcp-migrate makes the version the table's INTEGER PRIMARY KEY, so SQLite keeps it whole and
unique. A table made again by hand (a tool that rebuilds tables, an import from CSV, which makes
every column TEXT) can hold '3', 3.5, NULL or a BLOB, or a version twice: the commands compared
such a version with whole numbers and failed with an unexpected error, or kept one row of two.
Such a history is refused, naming the value and the query that finds its row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .applied_times import as_text
from .errors import DatabaseError
from .models import AppliedMigration


def by_version(rows: Iterable[Sequence[object]]) -> dict[int, AppliedMigration]:
    """The applied migrations by version, from rows of (version, name, checksum, applied_at,
    execution_ms, file, ...). Raises DatabaseError for a version that is not a whole number, or
    one found twice."""
    applied: dict[int, AppliedMigration] = {}
    for row in rows:
        version = row[0]
        if type(version) is not int:
            raise not_whole(version)
        if version in applied:
            raise twice(version)
        # An applied_at put there by hand as a BLOB or a number reads as text (no time).
        applied[version] = AppliedMigration(version, row[1], row[2], as_text(row[3]), row[4], row[5])  # type: ignore[arg-type]
    return applied


def not_whole(value: object) -> DatabaseError:
    """The error for a history whose ``value`` of a version is no whole number (``...`` when unknown)."""
    from .history import TABLE  # history imports this module

    return DatabaseError(
        f"its history table {TABLE} has the version {_sql(value)}, which is not a whole number: it was edited by hand",
        hint=f"find the row with: SELECT rowid, * FROM {TABLE} WHERE typeof(version) <> 'integer'; give it its"
        " version, or restore a backup; nothing was changed",
    )


def twice(version: int) -> DatabaseError:
    """The error for a history that holds ``version`` in two rows."""
    from .history import TABLE

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
