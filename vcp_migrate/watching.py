"""What a migration's guarded step did, as SQLite's authorizer saw it, so that the checks before
its COMMIT read the whole schema only when the step did something that could matter to them.

A local connection installs a fresh ``Watch`` as its authorizer for each guarded step. Installing
an authorizer expires every statement Python's sqlite3 module had cached on the connection, so
each statement the step runs is authorized when it runs (a cached statement otherwise is not,
and a migration could have reused our own COMMIT). A watch is believed only if it is still the
authorizer when the step's guard savepoint is released: Python code that swapped it out (through
the base class's ``set_authorizer``) gets the full checks, and the connection is replaced after
it. A server's connection has no authorizer and is never watched.

A guarded step is refused a PRAGMA journal_mode that takes the journal its rollback needs off
the disk (``journal``). A step outside a transaction (unguarded) is watched too, as a fence:
nothing would undo what it did, so what would touch the history tables is denied as SQLite
prepares it.

What the checks established is kept on the connection as ``Known``, tied to PRAGMA
data_version: any commit by another connection changes it, and the next checks read everything.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from . import history
from .history import HANDS_OFF, TABLES
from .references import key

if TYPE_CHECKING:
    from .database import Rows
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
    """The authorizer of one step (``guard`` is its savepoint; None outside a transaction, where
    it fences the history off), and what it saw the step do.

    ``history``: it may have dropped, renamed or put a trigger on a history table. ``wrote_history``:
    the history table it wrote rows of (INSERT, UPDATE or DELETE), which a migration must never do,
    and the trigger it did it through (None: a statement of its own). ``unsure``: it
    did something whose effect on foreign keys is not followed here (ALTER TABLE, virtual or
    TEMP tables...). ``written``: tables whose rows it wrote, and tables that lost an index;
    ``named``: tables and views it created or dropped (``references.key`` -> name), ``created`` the
    names it created (each a statement it prepared: not necessarily one that succeeded);
    ``triggers``: the triggers it created in the main database (``references.key`` of each name);
    ``reshaped``: what it did to a history table itself (created, dropped, altered), said;
    ``attached``: it ran an ATTACH.
    ``authorize`` is what the connection installs (a closure: SQLite calls it for every action of
    every statement prepared, and a plain function costs a fifth of a callable object).
    """

    __slots__ = (
        "attached",
        "authorize",
        "connection",
        "created",
        "guard",
        "history",
        "named",
        "released",
        "reshaped",
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
        self.triggers: set[str] = set()
        self.reshaped: str | None = None
        self.attached = False  # it ran an ATTACH
        self.authorize = _authorizer(self)

    @property
    def trusted(self) -> bool:
        """Whether it saw the whole step: still the authorizer at the end, and no connection state
        changed (a PRAGMA could have made the schema writable)."""
        return self.released and not self.connection.touched_state

    def history_refusal(self) -> str | None:
        """What the step did to the history tables or their rows, or left a trigger to do whenever
        the application writes a table, or its ATTACH of the database's own file, said as a
        failure; None when it did none. Reads the schema (and the triggers' text) when needed."""
        if self.attached:  # by a name the authorizer could not read (an expression, a parameter)
            listed = attached_files(self.connection, lambda sql: sqlite3.Connection.execute(self.connection, sql))
            if (again := self_attached(listed)) is not None:
                return f"it attached the database's own file (as {again}); use the database as main instead"
        if self.reshaped is not None:
            return f"it {self.reshaped}, so it cannot be recorded; {HANDS_OFF}"
        untrue = f"which would make the history say what was not done; {HANDS_OFF}"
        if self.wrote_history is not None:
            table, trigger = self.wrote_history
            how = "" if trigger is None else f" through the trigger {trigger} (drop it in the migration)"
            return f"it writes to the history table {table} (INSERT, UPDATE or DELETE){how}, {untrue}"
        for created, on, written in triggers_writing_history(self):
            return (
                f"it creates the trigger {created} on {on}, which writes to the history table {written}"
                f" (INSERT, UPDATE or DELETE) whenever {on} is written (drop it in the migration), {untrue}"
            )
        if self.connection.writable_schema and (bound := history_bound(self.connection)) is not None:
            return (
                f"it gave the history table {bound} a foreign key in the schema (writable_schema), through which"
                f" the application's writes would change the history; {HANDS_OFF}"
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
                if name in _HISTORY and database != "temp":
                    self.reshaped = self.reshaped or _reshaping(action, arg1, arg2)
        elif action in _TRIGGERS:
            self.history = self.history or arg2 is None or key(arg2) in _HISTORY
            if action == sqlite3.SQLITE_CREATE_TRIGGER and database == "main" and arg1:
                self.triggers.add(key(arg1))
        elif action == sqlite3.SQLITE_DROP_INDEX:
            if arg2 is not None:  # a parent that loses the index its foreign keys need
                self.written[key(arg2)] = arg2
        else:  # ALTER TABLE, TEMP and virtual tables, ATTACH, PRAGMA, a new kind of action
            self.unsure = True
            self.history = self.history or action != sqlite3.SQLITE_ALTER_TABLE or key(arg2 or "") in _HISTORY
            if action == sqlite3.SQLITE_ALTER_TABLE and key(arg2 or "") in _HISTORY:
                self.reshaped = self.reshaped or _reshaping(action, arg1, arg2)
            elif action == sqlite3.SQLITE_PRAGMA and key(arg1 or "") == "writable_schema":
                self.connection.writable_schema = True
            self.attached = self.attached or action == sqlite3.SQLITE_ATTACH
        if action in STATEFUL_ACTIONS:
            self.connection.touched_state = True


def _authorizer(watch: Watch) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    connection, guard = watch.connection, watch.guard
    ok, deny, attach, savepoint, transaction, create_index, pragma = (
        sqlite3.SQLITE_OK,
        sqlite3.SQLITE_DENY,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_SAVEPOINT,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_PRAGMA,
    )

    def authorize(action: int, arg1: str | None, arg2: str | None, database: str | None, trigger: str | None) -> int:
        if action == attach and connection._rehearsing and arg1 not in ("", ":memory:"):
            target = f"the file {arg1!r}" if arg1 is not None else "a file named by an expression"
            connection.unrehearsable = f"it would write to {target} (ATTACH or VACUUM INTO)"
            return deny
        if not connection._guarded:  # the attribute behind the property: this runs for every action
            quiet = action in _QUIET and action != create_index
            return fence(action, arg1, arg2, database) if connection._fenced and not quiet else ok
        if action == attach and (refused := own_file(arg1)) is not None:
            connection.refused = refused
            return deny
        if action in _QUIET:
            if action == savepoint and arg2 == guard and arg1 == "RELEASE":
                watch.released = True
            elif action == create_index and key(arg2 or "") in _HISTORY and database != "temp":
                watch.reshaped = watch.reshaped or _reshaping(action, arg1, arg2)
            return ok
        if action == transaction:
            connection.refused = f"run {arg1}"
            return deny
        if action == pragma and arg2 is not None and key(arg1 or "") == "journal_mode":
            from . import journal  # only when a guarded step sets a journal mode

            if (said := journal.refused(arg1 or "journal_mode", arg2, database)) is not None:
                connection.refused = said
                return deny
        watch.saw(action, arg1, arg2, trigger, database)
        return ok

    def own_file(name: str | None) -> str | None:
        """What an ATTACH of ``name`` tried, when it is the database's own file: a second handle on
        it, past our transaction (it waits for our lock, or with nolock=1 writes past it)."""
        if name and is_own_file(connection.main_file, name):
            return f"attach the database's own file ({name}); use the database as main instead"
        return None

    def fence(action: int, arg1: str | None, arg2: str | None, database: str | None) -> int:
        """A step outside a transaction: what would touch the history is denied as it is prepared
        (nothing would undo it); the triggers it creates are recorded, for the checks after it."""
        if database in ("temp", "vacuum_db"):  # VACUUM copies every table, the history's too, into its own
            return ok
        touching = (
            f"write to the history table {arg1} (INSERT, UPDATE or DELETE)"
            if action in _WRITES and key(arg1 or "") in _HISTORY
            else _reshaping(action, arg1, arg2, done=False)
        )
        if touching is None and action == attach:
            touching = own_file(arg1)
        if touching is not None:
            connection.refused = touching if ";" in touching else f"{touching}; {HANDS_OFF}"
            return deny
        if action == sqlite3.SQLITE_CREATE_TRIGGER and database == "main" and arg1:
            watch.triggers.add(key(arg1))
        elif action == sqlite3.SQLITE_PRAGMA and key(arg1 or "") == "writable_schema":
            connection.writable_schema = True
        return ok

    return authorize


def fence_statement(connection: MigrationConnection, sql: str) -> None:
    """Outside a transaction, refuse a statement (or script) that creates a trigger writing the
    history before it runs (the authorizer sees no trigger's body): once created, nothing would
    undo it. One created past this (a cursor's execute()) is named after the step."""
    if connection._fenced and (tried := history.refusal(sql)) is not None:
        connection._refuse(f"{tried}; {HANDS_OFF}")


def attached_files(connection: object, run: Callable[[str], Rows]) -> list[tuple[str, str]]:
    """Each database open on ``connection`` (PRAGMA database_list, run by ``run``), main first, as
    (name, file); the file is '' for one in memory.

    SQLite gives a file's path as the bytes it was opened by, as text: read as a str, a path that
    is not UTF-8 fails to decode. Read as bytes, it is the name the file system gives it.
    """
    if not isinstance(connection, sqlite3.Connection):  # a server's: its answer is text already
        return [(str(name), str(file or "")) for _, name, file in run("PRAGMA database_list").fetchall()]
    factory = connection.text_factory
    connection.text_factory = bytes
    try:
        listed = run("PRAGMA database_list").fetchall()
    finally:
        connection.text_factory = factory
    return [(name.decode(errors="surrogateescape"), os.fsdecode(file)) for _, name, file in listed]


def self_attached(listed: list[tuple[str, str]]) -> str | None:
    """The name under which the database's own file is attached again, from ``attached_files``."""
    main = listed[0][1]
    return next((name for name, file in listed[1:] if file and is_own_file(main, file)), None)


def is_own_file(main: str | None, name: str) -> bool:
    """Whether ``name`` (a path as ATTACH reads it, relative to the working directory, or a file:
    URI) is the file ``main``, through a link too."""
    if main is None or name in ("", ":memory:"):
        return False
    if name.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        name = unquote(urlsplit(name).path)
    try:
        one, other = os.stat(name), os.stat(main)
    except OSError:
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


# What a migration may not do to a history table itself: (said as done, said as tried).
_RESHAPING = {
    sqlite3.SQLITE_CREATE_TABLE: ("created", "create"),
    sqlite3.SQLITE_DROP_TABLE: ("dropped", "drop"),
    sqlite3.SQLITE_ALTER_TABLE: ("altered or renamed", "alter or rename"),
    sqlite3.SQLITE_CREATE_INDEX: ("put an index on", "put an index on"),  # its expressions run at every write
}


def _reshaping(action: int, arg1: str | None, arg2: str | None, *, done: bool = True) -> str | None:
    """What an action does to a history table itself, said as done (or as tried), or None."""
    if action in _TRIGGERS and not done:  # when done, the checks before the COMMIT name the trigger
        return f"put a trigger on a history table ({arg2})" if key(arg2 or "") in _HISTORY else None
    name = arg2 if action in (sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_INDEX) else arg1
    if action not in _RESHAPING or key(name or "") not in _HISTORY:
        return None
    return f"{_RESHAPING[action][0 if done else 1]} a history table ({name})"


def triggers_writing_history(watch: Watch) -> list[tuple[str, str, str]]:
    """The triggers the step left that write rows of a history table whenever their table is
    written (by the application, long after the run): (trigger, its table, the history table).

    A trigger's body has no dynamic SQL: one that writes a history table names it there, after
    INSERT INTO, REPLACE INTO, UPDATE or DELETE FROM (a chain of triggers ends in one that does),
    so its text, as stored, is read. Those the step created are read; every trigger is when the
    step may have written the schema directly (writable_schema, setconfig()) or swapped the
    authorizer out, as then what it created is not known. A trigger an application left before is
    not the step's doing; one on a history table is refused as such when the history row is
    written.
    """
    connection = watch.connection
    everything = connection.writable_schema or (watch.guard is not None and not watch.released)
    if not watch.triggers and not everything:
        return []
    rows = sqlite3.Connection.execute(
        connection, "SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type = 'trigger'"
    ).fetchall()
    chosen = [row for row in rows if (everything or key(row[0]) in watch.triggers) and key(row[1]) not in _HISTORY]
    return [
        (str(name), str(table), written) for name, table, sql in chosen if (written := history.written_in(sql or ""))
    ]


def history_bound(connection: MigrationConnection) -> str | None:
    """The history table whose definition, as stored, names a foreign key (REFERENCES), if any.

    Ours never have one; a migration that made the schema writable can give them one in the text
    SQLite reads at the next open, and then a cascade (ON DELETE CASCADE...) would let the
    application rewrite the history. The text is read: the schema in memory is the old one."""
    from .sqltext import words  # only after writable_schema

    rows = sqlite3.Connection.execute(
        connection, "SELECT name, sql FROM main.sqlite_master WHERE type = 'table' AND name IN (?, ?)", TABLES
    ).fetchall()
    for name, sql in rows:
        if any(word.lower() == "references" for word in words(str(sql or ""))):
            return str(name)
    return None
