"""What a migration's guarded step did, as SQLite's authorizer saw it, so that the checks before
its COMMIT read the whole schema only when the step did something that could matter to them.

A local connection installs a fresh ``Watch`` as its authorizer for each guarded step. Installing
an authorizer expires every statement Python's sqlite3 module had cached on the connection, so
each statement the step runs is authorized when it runs (a cached statement otherwise is not,
and a migration could have reused our own COMMIT). A watch is believed only if it is still the
authorizer when the step's guard savepoint is released: Python code that swapped it out (through
the base class's ``set_authorizer``) gets the full checks, and the connection is replaced after
it. A server's connection has no authorizer and is never watched.

What the checks established is kept on the connection as ``Known``, tied to PRAGMA
data_version: any commit by another connection changes it, and the next checks read everything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .history import TABLES
from .references import key

if TYPE_CHECKING:
    from .references import References
    from .sqlite import MigrationConnection

# Statements after which the connection may carry state into the next migration.
STATEFUL_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
    }
)
# What changes nothing the checks look at (reads, indexes, triggers on other tables are sorted below).
_QUIET = frozenset(
    {
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_SAVEPOINT,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
    }
)
_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
# Named by arg1: a table or view appears or goes, which foreign keys may name.
_NAMES = frozenset(
    {sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_CREATE_VIEW, sqlite3.SQLITE_DROP_VIEW}
)
_CREATES = frozenset({sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_VIEW})
_TRIGGERS = frozenset({sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_TEMP_TRIGGER})
# SQLite writes these itself for every schema change; a migration can only with writable_schema,
# which takes a PRAGMA or setconfig(), both of which mark the connection (and so the full checks).
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})
_HISTORY = frozenset(TABLES)


class Known(NamedTuple):
    """What the checks before a COMMIT established on a connection, true while PRAGMA data_version
    stays ``version`` (no other connection committed) and the watched steps since did nothing that
    could change it: both history tables are there without a trigger on them, no foreign key is
    violated, and (once read) ``references`` lists every foreign key of the database."""

    version: int
    references: References | None


class Watch:
    """The authorizer of one guarded step (``guard`` is its savepoint), and what it saw the step do.

    ``history``: it may have dropped, renamed or put a trigger on a history table. ``wrote_history``:
    the history table it wrote rows of (INSERT, UPDATE or DELETE), which a migration must never do,
    and the trigger it did it through (None: a statement of its own). ``unsure``: it
    did something whose effect on foreign keys is not followed here (ALTER TABLE, virtual or
    TEMP tables...). ``written``: tables whose rows it wrote, and tables that lost an index;
    ``named``: tables and views it created or dropped (``references.key`` -> name), ``created`` the
    names it created (each a statement it prepared: not necessarily one that succeeded);
    ``triggers``: the triggers it created in the main database, with their tables.
    ``authorize`` is what the connection installs (a closure: SQLite calls it for every action of
    every statement prepared, and a plain function costs a fifth of a callable object).
    """

    __slots__ = (
        "authorize",
        "connection",
        "created",
        "guard",
        "history",
        "named",
        "released",
        "triggers",
        "unsure",
        "written",
        "wrote_history",
    )

    def __init__(self, connection: MigrationConnection, guard: str | None = None) -> None:
        self.connection = connection
        self.guard = guard
        self.released = False  # it was still the authorizer when the guard was released
        self.history = False
        self.wrote_history: tuple[str, str | None] | None = None
        self.unsure = False
        self.written: dict[str, str] = {}
        self.named: dict[str, str] = {}
        self.created: set[str] = set()
        self.triggers: dict[str, str] = {}
        self.authorize = _authorizer(self)

    @property
    def trusted(self) -> bool:
        """Whether it saw the whole step: still the authorizer at the end, and no connection state
        changed (a PRAGMA could have made the schema writable)."""
        return self.released and not self.connection.touched_state

    def history_written(self) -> str | None:
        """What the step did to rows of the history tables, or left a trigger of its own to do
        whenever the application writes a table, said as a failure; None when it did neither."""
        if self.wrote_history is not None:
            table, trigger = self.wrote_history
            how = "" if trigger is None else f" through the trigger {trigger} (drop it in the migration)"
            return f"it writes to the history table {table} (INSERT, UPDATE or DELETE){how}"
        for created, on, written in triggers_writing_history(self):
            return (
                f"it creates the trigger {created} on {on}, which writes to the history table {written}"
                f" (INSERT, UPDATE or DELETE) whenever {on} is written"
            )
        return None

    def saw(
        self, action: int, arg1: str | None, arg2: str | None, trigger: str | None = None, database: str | None = None
    ) -> None:
        """Record an action of the guarded step that is not a read (those return early)."""
        if action in _WRITES:
            if arg1 is not None and (name := key(arg1)) not in _SCHEMA_TABLES:
                self.written[name] = arg1
                # DROP TABLE is authorized as a DELETE of its rows too, right after: a history
                # table dropped is named as such by the checks that follow.
                if name in _HISTORY and not (action == sqlite3.SQLITE_DELETE and name in self.named):
                    self.wrote_history = (arg1, trigger)
        elif action in _NAMES:
            if arg1 is None:
                self.unsure = self.history = True
            else:
                name = key(arg1)
                self.named[name] = arg1
                self.history = self.history or name in _HISTORY
                if action in _CREATES:
                    self.created.add(name)
        elif action in _TRIGGERS:
            self.history = self.history or arg2 is None or key(arg2) in _HISTORY
            # one on a history table is refused as such when the history row is written
            if action == sqlite3.SQLITE_CREATE_TRIGGER and database == "main" and arg1 and not self.history:
                self.triggers[arg1] = arg2 or ""
        elif action == sqlite3.SQLITE_DROP_INDEX:
            if arg2 is not None:  # a parent that loses the index its foreign keys need
                self.written[key(arg2)] = arg2
        else:  # ALTER TABLE, TEMP and virtual tables, ATTACH, PRAGMA, a new kind of action
            self.unsure = True
            self.history = self.history or action != sqlite3.SQLITE_ALTER_TABLE or key(arg2 or "") in _HISTORY
        if action in STATEFUL_ACTIONS:
            self.connection.touched_state = True


def _authorizer(watch: Watch) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    connection, guard = watch.connection, watch.guard
    ok, deny, attach, savepoint, transaction = (
        sqlite3.SQLITE_OK,
        sqlite3.SQLITE_DENY,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_SAVEPOINT,
        sqlite3.SQLITE_TRANSACTION,
    )

    def authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
        if action == attach and connection._rehearsing and arg1 not in ("", ":memory:"):
            target = f"the file {arg1!r}" if arg1 is not None else "a file named by an expression"
            connection.unrehearsable = f"it would write to {target} (ATTACH or VACUUM INTO)"
            return deny
        if not connection._guarded:  # the attribute behind the property: this runs for every action
            return ok
        if action in _QUIET:
            if action == savepoint and arg2 == guard and arg1 == "RELEASE":
                watch.released = True
            return ok
        if action == transaction:
            connection.refused = f"run {arg1}"
            return deny
        watch.saw(action, arg1, arg2, trigger, database)
        return ok

    return authorize


def triggers_writing_history(watch: Watch) -> list[tuple[str, str, str]]:
    """The triggers the step created that write rows of a history table whenever their table is
    written (by the application, long after the run): (trigger, its table, the history table).

    Each is found without running anything: an INSERT, an UPDATE of every column and a DELETE of
    its table are compiled (EXPLAIN), for which SQLite codes every trigger they would fire, nested
    ones too, and shows the authorizer each write, naming the trigger that makes it. A write made
    by a trigger that was there before the step is not the step's doing and is not listed.
    """
    if not watch.triggers:
        return []
    connection = watch.connection
    created = {key(name): (name, table) for name, table in watch.triggers.items()}
    writes: list[tuple[str, str]] = []

    def probe(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
        if action in _WRITES and arg1 is not None and key(arg1) in _HISTORY and trigger is not None:
            writes.append((arg1, trigger))
        return sqlite3.SQLITE_OK

    found: dict[str, tuple[str, str, str]] = {}
    base = sqlite3.Connection
    base.set_authorizer(connection, probe)
    try:
        for table in dict.fromkeys(watch.triggers.values()):
            for statement in _writes_of(connection, table):
                try:
                    base.execute(connection, f"EXPLAIN {statement}").fetchall()
                except sqlite3.Error:  # a view with no trigger for it, a column that cannot be set
                    continue
        for history_table, trigger in writes:
            if key(trigger) in created:
                found.setdefault(key(trigger), (*created[key(trigger)], history_table))
    finally:
        base.set_authorizer(connection, watch.authorize)
    return list(found.values())


def _writes_of(connection: MigrationConnection, table: str) -> list[str]:
    """Statements that write every row and column of ``table`` in the main database."""
    name = f'main."{table.replace(chr(34), chr(34) * 2)}"'
    columns = [str(row[1]) for row in sqlite3.Connection.execute(connection, f"PRAGMA main.table_info({name[5:]})")]
    quoted = ", ".join(f'"{c.replace(chr(34), chr(34) * 2)}" = NULL' for c in columns)
    statements = [f"INSERT INTO {name} DEFAULT VALUES", f"DELETE FROM {name}"]
    if quoted:
        statements.append(f"UPDATE {name} SET {quoted}")
    return statements
