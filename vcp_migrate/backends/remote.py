"""A database on a libSQL server (sqld, Turso), as the engine uses a local file's connection.

``RemoteConnection`` offers what the engine and migrations use of ``sqlite3.Connection``:
``execute``, ``executemany``, ``executescript``, ``cursor``, ``in_transaction``,
``total_changes`` and the guard attributes of ``sqlite.MigrationConnection``, over one Hrana
stream. What differs from a local file's connection (and so what a Python migration sees):

- There is no authorizer on a server, so the guard that refuses COMMIT, ROLLBACK and BEGIN
  inside a migration reads each statement's first words instead, and one ``execute`` runs one
  statement (as sqlite3's does). Any PRAGMA marks the connection's state as touched, and the
  engine then opens a new stream for the next migration, as it reopens a local connection.
- ``create_function``, ``set_authorizer``, ``backup``, ``iterdump``, ``row_factory`` and the
  like do not exist: a migration that needs them must run on a local file.
- ``interrupt()`` does nothing (a statement on the server is bounded by the stream's timeout).
- The server refuses TEMP objects, ATTACH, VACUUM and ``PRAGMA journal_mode``; it takes the write
  lock from a transaction older than 5 s when another writer waits, and ends a stream idle for
  10 s. Such a transaction fails whole: nothing of it is applied.

Nothing here is imported unless a URL is used.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import history, sqltext, transactions
from . import hrana

if TYPE_CHECKING:
    from ..watching import Known, Watch

_HURRIED_SECONDS = 2.0  # a ROLLBACK after Ctrl-C
BEGINS = frozenset({"begin"})
ENDS = frozenset({"commit", "end", "rollback"})


class RemoteCursor:
    """The rows of one statement, read as a sqlite3 cursor reads them."""

    arraysize = 1

    def __init__(self, connection: RemoteConnection, result: hrana.Result | None = None) -> None:
        self.connection = connection
        self._load(result)

    def _load(self, result: hrana.Result | None) -> None:
        self._rows: list[tuple[Any, ...]] = list(result.rows) if result else []
        self._next = 0
        self.rowcount = result.affected_row_count if result and not result.columns else -1
        self.lastrowid = result.last_insert_rowid if result else None
        columns = result.columns if result else ()
        self.description = tuple((name, *(None,) * 6) for name in columns) if columns else None

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> RemoteCursor:
        """Run a statement on the connection; this cursor then holds its rows, as sqlite3's does."""
        done = self.connection.execute(sql, parameters)
        self._rows, self._next, self.rowcount = done._rows, 0, done.rowcount
        self.lastrowid, self.description = done.lastrowid, done.description
        return self

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> RemoteCursor:
        done = self.connection.executemany(sql, parameters)
        self._load(None)
        self.rowcount = done.rowcount
        return self

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows = self._rows[self._next : self._next + count]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        self._rows, self._next = [], 0


class RemoteConnection:
    """One stream to a libSQL server, with the attributes the engine's guard uses."""

    guarded = False
    fenced = False  # nothing to fence with: a server has no authorizer
    writable_schema = False
    refused: str | None = None
    touched_state = False
    rehearsing = False  # a server is never rehearsed on: dry runs and validate copy it into memory first
    unrehearsable: str | None = None
    foreign_keys: bool | None = None
    capture: list[str] | None = None
    on_statement: Callable[[str, float], None] | None = None
    in_step = False
    history_layout: int | None = None
    latest_applied_at: str | None = None
    remote = True
    known: Known | None = None  # never set: there is no authorizer to watch a step with

    def __init__(self, url: str, auth_token: str | None, timeout: float, longer: str | None = None) -> None:
        self.url = hrana.http_url(url)
        self._stream = hrana.Stream(url, auth_token, timeout, longer)
        self._in_transaction = False
        self._reading = False  # the transaction open is one of our read snapshots
        self.total_changes = 0

    def __repr__(self) -> str:
        return f"RemoteConnection({self.url!r})"

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    @property
    def writing(self) -> bool:
        """Whether a transaction that may write is open (not a read snapshot of ours): the server
        takes its write lock from it after 5 s for another writer, the lease's renewal too."""
        return self._in_transaction and not self._reading

    # -- statements ------------------------------------------------------------------------

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> RemoteCursor:
        statements = sqltext.split_statements(sql)
        if len(statements) > 1:
            raise sqlite3.ProgrammingError("You can only execute one statement at a time.")
        words = sqltext.first_words(statements[0], 3) if statements else []
        if self.guarded and _ends_or_begins(words):
            self.refused = f"run {words[0].upper()}"
            raise sqlite3.OperationalError("not authorized")
        if self.guarded and words[:1] in (["pragma"], ["attach"], ["detach"]):
            self.touched_state = True
        if self.in_step and statements and (tried := history.refusal(statements[0])) is not None:
            self._refuse(f"{tried}; {history.HANDS_OFF}")  # no authorizer here: read before it is sent
        if self.capture is not None:
            self.capture.append(sql)
        if self.on_statement is not None and self.in_step:  # -v
            started = time.perf_counter()
            try:
                return self._run(sql, parameters, words)
            finally:
                self.on_statement(sql, (time.perf_counter() - started) * 1000)
        return self._run(sql, parameters, words)

    def _run(self, sql: str, parameters: Sequence[Any], words: list[str]) -> RemoteCursor:
        if isinstance(parameters, dict):
            raise sqlite3.ProgrammingError("named parameters are not supported on a libSQL server: use ?")
        # Our ROLLBACK after Ctrl-C (it is handled meanwhile) waits a few seconds at most: the
        # interrupt may have landed in the migration's own code after the server stopped answering,
        # and closing or abandoning the stream rolls its transaction back anyway.
        hurried = _ends_or_begins(words) and words[0] == "rollback" and isinstance(sys.exc_info()[1], KeyboardInterrupt)
        # The server's word that it rolled back is about a transaction open when the request went;
        # after a COMMIT answered (the PRAGMA that follows it, say) there is none it could have.
        had_transaction = self._in_transaction
        try:
            result = self._stream.execute(sql, tuple(parameters), timeout=_HURRIED_SECONDS if hurried else None)
        except hrana.ServerUnreachable as exc:
            self._in_transaction = False  # the stream is gone, and its transaction with it
            said = str(exc).removeprefix(f"{self.url}: ")
            if had_transaction and not (_ends_or_begins(words) and words[0] in ENDS):
                # Whatever this statement did, no COMMIT was sent: the transaction cannot be applied.
                said = said.replace(hrana.UNKNOWN_EFFECT, _NOT_COMMITTED)
            raise ServerProblem(said) from exc
        except hrana.ServerError as exc:
            if "transaction timed out" in str(exc).lower():
                self._in_transaction = False
                raise ServerProblem(_STOLEN, rolled_back=had_transaction) from exc
            if self._stream.closed:  # the server ended the stream, rolling back its transaction
                self._in_transaction = False
                expired = exc.code == "STREAM_EXPIRED" or "expired" in str(exc).lower()
                if expired:  # the server's word; an HTTP error (a gateway's 502) leaves it unknown
                    raise ServerProblem(_EXPIRED, rolled_back=had_transaction) from exc
                raise ServerProblem(str(exc).removeprefix(f"{self.url}: ")) from exc
            if "no transaction is active" in str(exc):  # it ended earlier (INSERT OR ROLLBACK, RAISE(ROLLBACK))
                self._in_transaction = False
            raise
        self._track(sql, words)
        self.total_changes += result.affected_row_count if not result.columns else 0
        return RemoteCursor(self, result)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> RemoteCursor:
        cursor = RemoteCursor(self)
        count = 0
        capture, self.capture = self.capture, None  # recorded once, as sqlite3's own cursor does
        try:
            if capture is not None:
                capture.append(sql)
            for parameters in seq_of_parameters:
                count += max(self.execute(sql, parameters).rowcount, 0)
        finally:
            self.capture = capture
        cursor.rowcount = count
        return cursor

    def executescript(self, sql_script: str, /) -> RemoteCursor:
        """Run the script statement by statement, in the transaction that is open (no COMMIT first)."""
        cursor = RemoteCursor(self)
        for statement in sqltext.split_statements(sql_script):
            cursor = self.execute(statement)
        return cursor

    def cursor(self) -> RemoteCursor:
        return RemoteCursor(self)

    def _track(self, sql: str, words: list[str]) -> None:
        if words[:1] and words[0] in BEGINS:
            self._in_transaction = True
            self._reading = sql == transactions.READ
        elif _ends_or_begins(words) and words[0] in ENDS:
            self._in_transaction = False

    # -- what a migration must not do ------------------------------------------------------

    def _refuse(self, what: str) -> None:
        self.refused = what
        raise sqlite3.OperationalError(f"a migration must not {what}")

    def commit(self) -> None:
        if self.guarded:
            self._refuse("call commit()")
        if self._in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.guarded:
            self._refuse("call rollback()")
        if self._in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        if self.guarded:
            self._refuse("call close()")
        self._in_transaction = False
        self._stream.close()

    def interrupt(self) -> None:
        """Nothing to interrupt here: a statement on the server is bounded by the stream's timeout."""

    def reset_python_state(self) -> None:
        """Nothing of a migration's Python state lives on this connection."""

    def watch(self, guard: str | None) -> Watch | None:
        """No authorizer on a server: every check before a commit reads the whole schema."""
        return None


def _ends_or_begins(words: list[str]) -> bool:
    """BEGIN, COMMIT, END or ROLLBACK of the transaction (ROLLBACK TO a savepoint is not)."""
    if not words or words[0] not in BEGINS | ENDS:
        return False
    if words[0] == "rollback":
        rest = words[1:]
        if rest[:1] == ["transaction"]:
            rest = rest[1:]
        return rest[:1] != ["to"]
    return True


_NOT_COMMITTED = "its transaction was never committed, so nothing of it was applied"
_EXPIRED = (
    "the server ended this run's stream after 10 s without a request from it, and rolled back its"
    " transaction; a migration on a server must not pause that long between statements"
)


class ServerProblem(sqlite3.OperationalError):
    """The server or the stream failed, not the statement: the transaction is gone (rolled back,
    or its outcome unknown when the server stopped answering), so the run stops."""

    about_database = True  # for file_errors.is_file_problem: not the migration's fault

    def __init__(self, message: str, *, rolled_back: bool = False) -> None:
        super().__init__(message)
        if rolled_back:  # the server said so: whatever the history holds now, this transaction did not commit
            transactions.mark_rolled_back(self)


_STOLEN = (
    "the server took the write lock from this transaction, older than its 5 s limit, for another"
    " writer, and rolled it back; keep migrations on a server short (split a long data change), or run"
    " them when the application writes little"
)
