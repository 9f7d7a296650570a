"""Every quirk of a local SQLite file vcp-migrate relies on: connecting, the guarded connection
(an authorizer refuses a migration's COMMIT), translating errors, checking its integrity (its
foreign keys: ``references``; copying it: ``copying``).

Everything tied to a local SQLite file is behind these few names: ``open_database``,
``memory_database``, ``translated`` (error translation: ``file_errors``), ``copying.copy`` (the online backup API;
copies for checks are in ``scratch``), ``quick_check`` and ``integrity_problems``. A database on a server supplies
its own in ``backends.server``; transactions (``transactions``) are the same for both.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

from .busy import FIRST_READ, OWN_WAITS, execute_waiting, stoppable
from .database import Connection, Queries
from .errors import DatabaseError, setting
from .history import HANDS_OFF, TABLES
from .transactions import may_have_committed, transaction
from .watching import Known, Watch, fence_statement


# ``guarded``, ``fenced`` and ``rehearsing``: setting any installs the connection's authorizer (once).
def _flag(name: str) -> Any:
    def set_flag(connection: MigrationConnection, value: bool) -> None:
        setattr(connection, name, value)
        if value and not connection._authorizing:
            connection._authorizing = True
            sqlite3.Connection.set_authorizer(connection, Watch(connection).authorize)  # records nothing outside a step

    return property(lambda connection: getattr(connection, name), set_flag)


class MigrationConnection(sqlite3.Connection):
    """A real sqlite3.Connection that, while ``guarded``, refuses to end the migration's transaction.

    The authorizer is the backstop: every COMMIT, ROLLBACK or BEGIN that reaches SQLite (a
    statement, ``commit()``, the implicit commit of ``executescript()``) is denied. The Python
    methods are overridden too, so the error names what the migration did. The authorizer is set
    once guarded or rehearsing (before, it allowed all yet ran for each column read), which
    expires every statement prepared before: none runs unchecked.
    """

    _guarded = _rehearsing = _authorizing = _fenced = False
    guarded = _flag("_guarded")
    # A step outside a transaction (unguarded): its history writes are denied as SQLite prepares them.
    fenced = _flag("_fenced")
    refused: str | None = None
    touched_state = False
    # While rehearsing (validate, dry runs, round trips) nothing may reach a file but the database
    # rehearsed on: ATTACH of a file and VACUUM INTO (which SQLite authorizes as an ATTACH) are denied.
    rehearsing = _flag("_rehearsing")
    unrehearsable: str | None = None
    foreign_keys: bool | None = None  # the connection's enforcement setting, read once
    capture: list[str] | None = None  # while set, every statement the migration asks for
    on_statement: Callable[[str, float], None] | None = None  # -v: each statement of a migration and its ms
    in_step = False  # a migration's step runs (guarded or not): its statements are reported, not ours
    history_layout: int | None = None  # the layout of the history tables the last read on it found
    latest_applied_at: str | None = None  # and the latest applied_at it found
    remote = False
    writable_schema = False  # PRAGMA writable_schema or setconfig() ran: until the connection is replaced
    main_file: str | None = None  # the database's file, as opened
    lock_timeout = 0.0  # seconds: our own waits (busy.OWN_WAITS) last this long, in Python
    known: Known | None = None  # what the checks before the last commit established (watching)

    def watch(self, guard: str | None) -> Watch:
        """Install a fresh authorizer for a step (``guard``: its savepoint; None outside a transaction)
        and return it: it refuses what the step must not do and records what the checks need."""
        watch = Watch(self, guard)
        self._authorizing = True
        super().set_authorizer(watch.authorize)  # which also expires every cached statement: each is authorized again
        return watch

    def reset_python_state(self) -> None:
        """After a Python step: undo what it may have set on the connection, and mark what it
        changed that cannot be undone (``connection_state``), so that the connection is replaced."""
        from . import connection_state  # only a run with a Python migration loads it

        connection_state.after_python(self)

    def _refuse(self, what: str) -> None:
        self.refused = what
        raise sqlite3.OperationalError(f"a migration must not {what}")

    def commit(self) -> None:
        if self.guarded:
            self._refuse("call commit()")
        super().commit()

    def rollback(self) -> None:
        if self.guarded:
            self._refuse("call rollback()")
        super().rollback()

    def close(self) -> None:
        if self.guarded:
            self._refuse("call close()")
        super().close()

    def backup(
        self,
        target: sqlite3.Connection,
        *,
        pages: int = -1,
        progress: Callable[[int, int, int], object] | None = None,
        name: str = "main",
        sleep: float = 0.25,
    ) -> None:
        # SQLite cannot copy a database its own connection is writing: each step answers BUSY, and
        # sqlite3 sleeps and retries that in C for as long as the transaction lasts (forever, for
        # ours), where Ctrl-C cannot reach it.
        if self.in_step and self.in_transaction:
            self._refuse(_NO_BACKUP)
        super().backup(target, pages=pages, progress=progress, name=name, sleep=sleep)

    def set_authorizer(self, authorizer_callback: Any, /) -> None:
        if self.guarded:
            self._refuse("call set_authorizer()")
        super().set_authorizer(authorizer_callback)

    # While capturing, statements go through a recording cursor, and only it records: on 3.10 the C
    # execute() itself calls cursor() and its execute(), so recording here too would count twice.
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self.on_statement is not None and self.in_step:
            return self._timed(sql, lambda: self._execute(sql, parameters))
        return self._execute(sql, parameters)

    def _execute(self, sql: str, parameters: Any) -> sqlite3.Cursor:
        fence_statement(self, sql)
        if self.capture is None:
            if sql in OWN_WAITS and self.lock_timeout > 0 and stoppable():  # Ctrl-C stops the wait
                return execute_waiting(self, sql, parameters, self.lock_timeout)
            return super().execute(sql, parameters)
        cursor: sqlite3.Cursor = self.cursor()
        return cursor.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        if self.on_statement is not None and self.in_step:
            return self._timed(sql, lambda: self._executemany(sql, parameters))
        return self._executemany(sql, parameters)

    def _executemany(self, sql: str, parameters: Any) -> sqlite3.Cursor:
        fence_statement(self, sql)
        if self.capture is None:
            return super().executemany(sql, parameters)
        cursor: sqlite3.Cursor = self.cursor()
        return cursor.executemany(sql, parameters)

    def _timed(self, sql: str, run: Callable[[], sqlite3.Cursor]) -> sqlite3.Cursor:
        """Run a statement of a migration and report it with its time (-v)."""
        started = time.perf_counter()
        try:
            return run()
        finally:
            if self.on_statement is not None:
                self.on_statement(sql, (time.perf_counter() - started) * 1000)

    def cursor(self, factory: Any = None) -> Any:
        if factory is None and self.capture is not None:
            from .capture import RecordingCursor  # loaded only by dry runs and validate

            return super().cursor(RecordingCursor)
        if factory is None and self.in_step:  # statements begin in Python: a pending Ctrl-C comes first
            from .interrupts import StepCursor as factory  # loaded: steps use it
        return super().cursor() if factory is None else super().cursor(factory)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        """Inside a migration, run the script statement by statement in its transaction.

        sqlite3's own executescript() commits first, which would split the migration in two.
        """
        if not self.guarded:
            fence_statement(self, sql_script)  # its first statement said as such, any other as a write
            if self.on_statement is not None and self.in_step:
                return self._timed(sql_script, lambda: sqlite3.Connection.executescript(self, sql_script))
            return super().executescript(sql_script)
        cursor: sqlite3.Cursor = self.cursor()
        from .sqltext import split_statements  # loaded only when a migration calls executescript()

        for statement in split_statements(sql_script):
            cursor = self.execute(statement)  # through execute(): -v reports each statement
        return cursor


_NO_BACKUP = (
    "call backup() inside its transaction, which SQLite cannot copy until the transaction ends;"
    " vcp-migrate backs the database up itself before it migrates (unless --no-backup): see"
    " 'vcp-migrate backups', or take a copy before running vcp-migrate"
)
_BLOB_REFUSED = {*TABLES, "sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}


def _marking(name: str, *, refused: bool = False) -> Callable[..., Any]:
    def method(self: MigrationConnection, *args: Any, **kwargs: Any) -> Any:
        if refused and self.in_step:
            self._refuse(f"call {name}()")
        table = args[0] if args and isinstance(args[0], str) else ""
        if name == "blobopen" and self.in_step and not kwargs.get("readonly") and table.lower() in _BLOB_REFUSED:
            self._refuse(f"write to the table {table} through blobopen(); {HANDS_OFF} and the schema to SQLite")
        if name == "setconfig" and args[:1] == (getattr(sqlite3, "SQLITE_DBCONFIG_WRITABLE_SCHEMA", None),):
            self.writable_schema = True
        self.touched_state = True
        return getattr(sqlite3.Connection, name)(self, *args, **kwargs)

    method.__name__ = name
    return method


class _MarkingAttribute:
    """A connection setting a migration may assign (isolation_level, autocommit): assigning it marks
    the connection's state as touched."""

    def __init__(self, name: str) -> None:
        self.base = getattr(sqlite3.Connection, name)

    def __get__(self, connection: MigrationConnection | None, owner: type | None = None) -> Any:
        return self if connection is None else self.base.__get__(connection, owner)

    def __set__(self, connection: MigrationConnection, value: Any) -> None:
        connection.touched_state = True
        self.base.__set__(connection, value)


# What else a Python migration can change on its connection for the next one (functions, callbacks,
# extensions, limits, transaction settings, setconfig(): Python 3.12) marks the connection, replaced
# after it. blobopen() (3.11) too: a blob's writes pass no authorizer (the history's are refused).
for _name in (
    "create_function", "create_aggregate", "create_window_function", "create_collation", "set_trace_callback",
    "set_progress_handler", "enable_load_extension", "load_extension", "setlimit", "setconfig", "blobopen",
):  # fmt: skip
    if hasattr(sqlite3.Connection, _name):
        setattr(MigrationConnection, _name, _marking(_name))
# deserialize() (3.11) puts a copy in memory in the file's place, to which all would be committed.
if hasattr(sqlite3.Connection, "deserialize"):
    setattr(MigrationConnection, "deserialize", _marking("deserialize", refused=True))  # noqa: B010 (not on 3.10)
for _name in ("isolation_level", "autocommit"):
    if hasattr(sqlite3.Connection, _name):
        setattr(MigrationConnection, _name, _MarkingAttribute(_name))


def check_path(path: Path, *, create: bool) -> None:
    """Raise DatabaseError unless ``path`` is a file, or (with ``create``) could become one."""
    hint = f"check {setting('db_path')}"
    try:  # stat, never open: opening a named pipe waits for a writer, and SQLite cannot use a device
        mode: int | None = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as exc:  # a loop of links, a folder without access
        raise DatabaseError(f"cannot be examined: {exc.strerror}", where=str(path), hint=hint) from exc
    if mode is not None and stat.S_ISDIR(mode):
        raise DatabaseError("is a directory, not a database file", where=str(path), hint=hint)
    if mode is not None and not stat.S_ISREG(mode):
        raise DatabaseError("is not a regular file", where=str(path), hint=hint)
    if mode is None and not create:
        raise DatabaseError("does not exist", where=str(path), hint=f"{hint}; only 'migrate' creates a database")
    if mode is None and not path.absolute().parent.is_dir():
        raise DatabaseError(f"directory {path.parent} does not exist", where=str(path), hint=hint)


_LONGEST_BUSY = (2**31 - 1) / 1000  # SQLite's busy timeout is an int of ms: 24.8 days; longer overflowed to 0


def open_database(path: Path, *, create: bool, timeout: float, read_first: bool = True) -> MigrationConnection:
    """Open ``path`` in autocommit mode and check that it is a SQLite database.

    Only ``create=True`` may create the file. Raises DatabaseError naming the path.
    ``read_first=False`` leaves that check to the caller's first statement, run under ``translated``.
    """
    check_path(path, create=create)
    timeout = min(timeout, _LONGEST_BUSY)
    name = raw if os.path.isabs(raw := os.fspath(path)) else os.path.join(os.getcwd(), raw)  # path.absolute()
    uri = "file://" + quote_from_bytes(os.fsencode(name)) + ("?mode=rwc" if create else "?mode=rw")
    connection: MigrationConnection | None = None
    try:
        connection = sqlite3.connect(
            uri,
            uri=True,
            timeout=timeout,
            isolation_level=None,
            factory=MigrationConnection,
        )
        connection.main_file, connection.lock_timeout = name, timeout
        if read_first:
            connection.execute(FIRST_READ).fetchone()
    except sqlite3.Error as exc:
        if connection is not None:
            connection.close()
        from .file_errors import database_error  # loaded only on an error: a database that opens never needs it

        raise database_error(exc, path) from exc
    return connection


def require_writable(connection: MigrationConnection, path: Path) -> None:
    """Raise DatabaseError now if the database cannot be written (read-only file or directory).

    BEGIN IMMEDIATE succeeds on a read-only file; only a real write (user_version rewritten,
    rolled back at once) fails. It makes a journal, so it is made only when the permissions do
    not say the file and its folder are writable (a write refused later fails its migration whole).
    """
    if os.access(name := os.fspath(path), os.W_OK) and os.access(os.path.dirname(name) or ".", os.W_OK | os.X_OK):
        return
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        with transaction(connection, commit=False):
            connection.execute(f"PRAGMA user_version = {int(version):d}")
    except sqlite3.Error as exc:
        from .file_errors import database_error

        raise database_error(exc, path) from exc


def local(connection: Connection) -> MigrationConnection:
    """The local file's connection behind ``connection`` (TypeError for a server's: commands that
    need a local file's features are refused on a server before they open anything)."""
    if not isinstance(connection, MigrationConnection):
        raise TypeError(f"a local SQLite connection is needed here, not {connection!r}")
    return connection


def memory_database() -> MigrationConnection:
    """An empty throw-away database in memory (dry runs of a database that does not exist yet)."""
    return sqlite3.connect(":memory:", isolation_level=None, factory=MigrationConnection)


@contextmanager
def translated(path: Path | str, changed: str = "nothing was changed") -> Iterator[None]:
    """Turn a SQLite error raised inside into a DatabaseError about ``path`` (see
    ``file_errors.database_error``)."""
    try:
        yield
    except sqlite3.Error as exc:
        from .file_errors import commit_unknown, database_error

        if getattr(exc, "about_database", False) and may_have_committed(exc):  # a server's COMMIT unanswered
            changed = commit_unknown()
        raise database_error(exc, path, changed) from exc


def quick_check(connection: Queries) -> bool:
    """Whether PRAGMA quick_check finds the database sound."""
    return bool(connection.execute("PRAGMA quick_check").fetchone()[0] == "ok")


def integrity_problems(connection: Queries) -> list[str]:
    """What PRAGMA integrity_check reports, empty when the database is sound."""
    return [str(row[0]) for row in connection.execute("PRAGMA integrity_check") if row[0] != "ok"]
