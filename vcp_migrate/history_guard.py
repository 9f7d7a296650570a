"""What keeps the history tables vcp-migrate's alone: the read-back before a migration's COMMIT
(both tables still there, no trigger on them, its row as written), and the triggers on them
that a run finds as it begins, which it did not make and refuses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .database import Queries, quoted
from .errors import DatabaseError
from .history import CHECKSUM, HIGHEST, TABLES

_TABLES = "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name IN (?, ?)"
# A trigger's tbl_name is its table as CREATE TRIGGER spelled it (ON VCP_MIGRATIONS): compared as
# SQLite compares names, ignoring the case of ASCII letters only (NOCASE).
_TRIGGERS = (
    "SELECT name FROM temp.sqlite_master WHERE type = 'trigger' AND tbl_name COLLATE NOCASE IN (?, ?)"
    " UNION ALL SELECT name FROM main.sqlite_master WHERE type = 'trigger' AND tbl_name COLLATE NOCASE IN (?, ?)"
)


class Written(NamedTuple):
    """The history as a migration's transaction leaves it, read back before its COMMIT."""

    tables: int  # how many of the two history tables are there
    triggers: int  # triggers on the history tables (names: ``triggers``)
    checksum: str | None  # of the row at the version just written; None when there is none
    highest: int  # the highest applied version


def written(connection: Queries, version: int, *, whole: bool = True) -> Written:
    """Read back, in one statement, what the run must check before it commits ``version``.

    The tables and the triggers are found by reading the whole schema. ``whole=False`` reads only
    the row and the highest version, in O(log n), for a caller that knows the tables are there
    with no trigger on them (nothing since its last full read could have changed that): it
    reports them as such.
    """
    if not whole:
        checksum, highest = connection.execute(f"SELECT ({CHECKSUM}), ({HIGHEST})", (version,)).fetchone()
        return Written(len(TABLES), 0, None if checksum is None else str(checksum), int(highest))
    row = connection.execute(
        f"SELECT ({_TABLES}), (SELECT count(*) FROM ({_TRIGGERS})), ({CHECKSUM}), ({HIGHEST})",
        (*TABLES, *TABLES, *TABLES, version),
    ).fetchone()
    return Written(int(row[0]), int(row[1]), None if row[2] is None else str(row[2]), int(row[3]))


def intact(connection: Queries) -> bool:
    """Whether both history tables are still there (a migration may have dropped or renamed one)."""
    return int(connection.execute(_TABLES, TABLES).fetchone()[0]) == len(TABLES)


def triggers(connection: Queries) -> list[str]:
    """Triggers on the history tables (TEMP or not), which could rewrite the history: a migration's
    (before its COMMIT), or ones made by hand (validate)."""
    rows = connection.execute(f"SELECT name FROM ({_TRIGGERS})", TABLES + TABLES)
    return [str(row[0]) for row in rows]


def not_made_here(found: Iterable[str], where: str) -> DatabaseError:
    """The refusal of a run that found the triggers ``found`` on the history tables as it began:
    it did not make them (by hand, another tool), and they could rewrite the history it writes."""
    names = list(found)
    return DatabaseError(
        f"its history tables carry trigger(s) that this run did not make ({', '.join(names)}), which could"
        " rewrite the history",
        where=where,
        hint=f"{drop_them(names)}; nothing was changed",
    )


def drop_them(found: Iterable[str]) -> str:
    """What to do about triggers on the history tables that vcp-migrate did not make."""
    drops = "; ".join(f"DROP TRIGGER {quoted(name)}" for name in found)
    return f"drop them with {drops}: vcp-migrate's history must be written only by vcp-migrate"
