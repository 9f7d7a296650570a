"""The foreign key check before a migration's COMMIT, over what the migration touched.

``PRAGMA foreign_key_check`` with no argument walks every table, which costs O(schema) a
migration. On a database it has found without violations, a migration can only create one
where it touched: the rows it wrote (as a child, or as a parent its children point at), the
tables and views it created or dropped (a child may name them), a parent that lost an index.
``References`` lists every foreign key of the database (read once, in one pass), so those tables
are checked one by one; what the map cannot follow (ALTER TABLE) gets the full check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .database import Queries, quoted

_MOST = 5  # violations named in an error
_ONE_BY_ONE = 8  # more tables than this to check: the full check is as cheap

# A table with a foreign key says REFERENCES in its SQL (LIKE ignores case): a superset, made exact by the pragma.
_READ = (
    "SELECT m.name, f.\"table\" FROM main.sqlite_master AS m, pragma_foreign_key_list(m.name, 'main') AS f"
    " WHERE m.type = 'table' AND m.sql LIKE '%references%'"
)


class References(NamedTuple):
    """Every foreign key of a database, table by table: ``parents`` maps a child (by ``key``) to
    its name and the names (by ``key``) its foreign keys reference; ``children`` the other way."""

    parents: Mapping[str, tuple[str, frozenset[str]]]
    children: Mapping[str, frozenset[str]]

    @classmethod
    def read(cls, connection: Queries) -> References:
        """Read every table's foreign keys (one pass over the schema)."""
        return _build(connection.execute(_READ))

    def refreshed(self, names: Mapping[str, str], keys: Iterable[tuple[str, str]]) -> References:
        """The map after the tables and views ``names`` (``key`` -> name) were created or dropped,
        given their foreign keys as they are now (``keys``, from ``foreign_keys``)."""
        if not names:
            return self
        kept = [
            (child, parent) for key, (child, parents) in self.parents.items() if key not in names for parent in parents
        ]
        return _build([*kept, *keys])

    def to_check(self, touched: Iterable[str]) -> list[str]:
        """The tables whose foreign keys the changes to ``touched`` (names by ``key``) could break,
        in order of name: each touched table that has foreign keys, and every table referencing one."""
        found: set[str] = set()
        for key in touched:
            if key in self.parents:
                found.add(key)
            found.update(self.children.get(key, ()))
        return [self.parents[key][0] for key in sorted(found)]


def data_version(connection: Queries) -> int:
    """PRAGMA data_version: it changes when another connection commits (never for our own commits)."""
    return int(connection.execute("PRAGMA data_version").fetchone()[0])


def foreign_keys(connection: Queries, names: Iterable[str]) -> list[tuple[str, str]]:
    """The foreign keys (child, parent) of the tables ``names`` as they are now (none when gone)."""
    found: list[tuple[str, str]] = []
    for name in names:
        found += [(name, str(row[2])) for row in connection.execute(f"PRAGMA main.foreign_key_list({quoted(name)})")]
    return found


# SQLite's names ignore the case of ASCII letters only: "\u00c4rzte" and "\u00e4rzte" are two tables.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def key(name: str) -> str:
    """The name of a table as SQLite tells names apart: ASCII letters lower-cased, nothing else
    (``str.lower`` would make one of two tables whose names differ in a non-ASCII letter's case)."""
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


def _build(rows: Iterable[tuple[str, str]]) -> References:
    parents: dict[str, tuple[str, set[str]]] = {}
    children: dict[str, set[str]] = {}
    for child, parent in rows:
        parents.setdefault(key(child), (child, set()))[1].add(key(parent))
        children.setdefault(key(parent), set()).add(key(child))
    return References(
        {key: (name, frozenset(found)) for key, (name, found) in parents.items()},
        {key: frozenset(found) for key, found in children.items()},
    )


def violations(connection: Queries, tables: Iterable[str] | None = None) -> list[str]:
    """Describe the rows (at most five) PRAGMA foreign_key_check reports, for the whole database
    or for ``tables`` only (each checked as a child)."""
    names = None if tables is None else list(tables)
    if names is None or len(names) > _ONE_BY_ONE:
        rows = connection.execute("PRAGMA foreign_key_check").fetchmany(_MOST)
    else:
        rows = []
        for name in names:
            rows += connection.execute(f"PRAGMA main.foreign_key_check({quoted(name)})").fetchmany(_MOST - len(rows))
            if len(rows) >= _MOST:
                break
    return [f"table {table} row {rowid} references a missing row in {parent}" for table, rowid, parent, _ in rows]
