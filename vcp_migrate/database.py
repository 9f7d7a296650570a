"""What the engine needs of a connection to a database, whatever kind it is.

Two kinds implement it: a local SQLite file (``sqlite.MigrationConnection``, a real
``sqlite3.Connection``) and a database on a libSQL server (``backends.remote.RemoteConnection``).
The engine types its connections with these protocols, never with either class, and the few
things that differ (opening, the run lock, backups, error translation) sit behind named functions
of ``sqlite`` and ``backends.server``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .watching import Known, Watch


class Rows(Protocol):
    """What a statement returns: rows to fetch or iterate, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Queries(Protocol):
    """Enough to read and write with SQL: what the history, schema and checks modules use."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...


class Connection(Queries, Protocol):
    """A connection a run owns: autocommit, its transactions issued as statements (BEGIN
    IMMEDIATE, COMMIT, ROLLBACK), guarded while a migration runs so that the migration cannot end
    them (``guarded``, and ``refused`` says what it tried), and what the guard observed."""

    guarded: bool
    fenced: bool  # a step outside a transaction runs: its writes to the history tables are refused
    writable_schema: bool  # the step may have made the schema writable
    refused: str | None
    touched_state: bool  # the migration changed connection state: the connection is replaced after it
    rehearsing: bool
    unrehearsable: str | None
    foreign_keys: bool | None
    capture: list[str] | None
    on_statement: Callable[[str, float], None] | None
    in_step: bool
    history_layout: int | None
    latest_applied_at: str | None  # the latest applied_at the history read on it found ('' for none)
    remote: bool  # a database on a server (its reads outside a transaction are each a snapshot)
    known: Known | None  # what the checks before the last commit established (never, on a server)

    @property
    def in_transaction(self) -> bool: ...

    @property
    def total_changes(self) -> int: ...

    def executemany(self, sql: str, parameters: Any, /) -> Rows: ...

    def executescript(self, sql_script: str, /) -> Any: ...

    def cursor(self) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def interrupt(self) -> None: ...

    def reset_python_state(self) -> None: ...

    def watch(self, guard: str | None) -> Watch | None:
        """Watch a step (its savepoint is ``guard``; None outside a transaction) through the
        authorizer; None when this kind of database cannot (then every check before the commit
        reads the whole schema)."""


def quoted(name: str) -> str:
    """``name`` in double quotes, each double quote inside doubled: an identifier whatever it holds."""
    return '"' + name.replace('"', '""') + '"'
