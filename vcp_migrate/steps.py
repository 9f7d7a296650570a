"""Running one step of a migration, its SQL statements or its Python function, on a connection
guarded against ending our transaction; every way it can fail becomes one StepFailed."""

from __future__ import annotations

import inspect
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from . import interrupts, left_threads, loading
from .database import Connection, Rows
from .loading import PythonStep, SqlStep, Step
from .sqltext import first_words
from .watching import attached_files, self_attached

if TYPE_CHECKING:
    from .watching import Watch


class StepFailed(Exception):
    """A step failed: what to say, which statement, and what it had executed."""

    def __init__(
        self,
        what: str,
        index: int | None = None,
        statement: str | None = None,
        statements: tuple[str, ...] = (),
        *,
        unrehearsable: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint  # what stays and what to do, when the usual words for its kind of step are not true
        self.index = index
        self.statement = statement
        self.statements = statements
        self.unrehearsable = unrehearsable
        self.ended_transaction = False  # the migration ended our transaction behind our back
        # Rows it had changed by then: committed, or undone by a ROLLBACK of its own, or in a
        # transaction of its own it left open (``left_open``), which is rolled back.
        self.changes = 0
        self.left_open = False


class Ran(NamedTuple):
    """A step that succeeded: what it executed (when captured), and what the authorizer saw it do
    (``watch``; None when its connection cannot watch)."""

    statements: tuple[str, ...]
    watch: Watch | None


def run_step(connection: Connection, step: Step, *, guarded: bool, capture: bool = False) -> Ran:
    """Run a step's statements or function; return what it executed when ``capture`` is set.

    Raises StepFailed naming what failed; errors about the database file itself pass through.
    """
    connection.refused = None
    connection.unrehearsable = None
    connection.capture = [] if capture else None
    changes_before = connection.total_changes
    # A savepoint of our own, released after the step: if the step ended our transaction (even
    # if it began another), the savepoint is gone and releasing it fails.
    guard = f"vcp_migrate_guard_{os.urandom(6).hex()}"  # what secrets.token_hex does, without importing it
    # Outside a transaction too: there the authorizer fences the history tables off (``fenced``).
    watch = connection.watch(guard if guarded else None)
    if guarded:
        _quietly(connection, f"SAVEPOINT {guard}")
    connection.guarded = guarded
    connection.fenced = not guarded
    connection.in_step = True
    try:
        # Ctrl-C stops a long statement at once, rather than after it (then rolled back all the same).
        with _failing(connection, guard=guard if guarded else None, changes_before=changes_before):
            with interrupts.interruptible(connection):
                _run(connection, step)
            if connection.rehearsing:
                _check_attached(connection)
        if guarded and watch is not None and not watch.released:
            connection.touched_state = True  # its authorizer was swapped out: replace the connection after it
        ran = Ran(tuple(connection.capture or ()), watch)
    except StepFailed as failed:
        if not guarded and watch is not None and (left := _left_outside(connection, watch)) is not None:
            failed.what, failed.hint = f"{failed.what}; and {left}", _UNDO_OUTSIDE
        raise
    finally:
        connection.guarded = connection.fenced = False
        connection.in_step = False
        connection.capture = None
        if isinstance(step, PythonStep):
            connection.reset_python_state()
    if not guarded and watch is not None and (left := _left_outside(connection, watch)) is not None:
        raise StepFailed(left, hint=_UNDO_OUTSIDE)
    return ran


def _run(connection: Connection, step: Step) -> None:
    if isinstance(step, SqlStep):
        _run_statements(connection, step.statements)
    else:
        _run_function(connection, step)


@contextmanager
def _failing(connection: Connection, *, guard: str | None, changes_before: int) -> Iterator[None]:
    """Attach the statements captured so far to a failure, and fail a step that ended our
    transaction itself (by calling the base class's methods past our guards): what it did up to
    then is committed, and nothing may be recorded on top of it."""
    try:
        yield
    except StepFailed as failed:
        failed.statements = tuple(connection.capture or ())
        if guard is not None and not _still_ours(connection, guard):
            failed.what = f"{failed.what}, after it had ended vcp-migrate's transaction itself"
            _ended(failed, connection, changes_before)
        raise
    if guard is not None and not _still_ours(connection, guard):
        ended = StepFailed("it ended vcp-migrate's transaction itself (a COMMIT or ROLLBACK past its guards)")
        ended.statements = tuple(connection.capture or ())
        _ended(ended, connection, changes_before)
        raise ended


_UNDO_OUTSIDE = (
    "it runs outside a transaction, so what it did stays: undo what is named by hand, or restore the backup taken"
    " before this run if one was ('vcp-migrate restore')"
)


def _left_outside(connection: Connection, watch: Watch) -> str | None:
    """What a step outside a transaction did to the history that the fence could not stop (a
    trigger that writes it, created past the check of statements), read once it ended: it stays."""
    connection.fenced = False  # our own reading
    return watch.history_refusal()


def _still_ours(connection: Connection, guard: str) -> bool:
    """Whether the transaction the step ran in is still ours: the guard savepoint is there."""
    if not connection.in_transaction:
        return False
    try:
        _quietly(connection, f"RELEASE {guard}")
    except sqlite3.OperationalError as exc:
        from . import file_errors  # loaded only on an error

        if file_errors.is_file_problem(exc):  # the server lost the transaction, not the step: say so
            raise
        return False  # "no such savepoint": a transaction of the step's own
    return True


def _quietly(connection: Connection, sql: str) -> Rows:
    """Run our own statement on the step's connection without capturing it as the step's."""
    # Not by calling the base class's execute(): on Python 3.10 that calls our cursor(), which records.
    capture, connection.capture = connection.capture, None
    report, connection.on_statement = connection.on_statement, None
    try:
        return connection.execute(sql)
    finally:
        connection.capture = capture
        connection.on_statement = report


def _check_attached(connection: Connection) -> None:
    """While rehearsing, fail a step that attached a file past the authorizer (it swapped it out)."""
    listed = _attached(connection)
    main = listed[0][1]
    for name, file in listed:
        if name not in ("main", "temp") and file and file != main:
            connection.unrehearsable = f"it attached the file {file!r} past vcp-migrate's guards"
            raise StepFailed(f"it cannot be rehearsed: {connection.unrehearsable}", unrehearsable=True)


def _self_attached(connection: Connection) -> str | None:
    """The name under which the step attached the main database's own file, if it did: a second
    connection to it, which waits for the lock our transaction holds."""
    return self_attached(_attached(connection))


def _attached(connection: Connection) -> list[tuple[str, str]]:
    """``attached_files`` of the step's connection, asked quietly."""
    return attached_files(connection, lambda sql: _quietly(connection, sql))


def _ended(failed: StepFailed, connection: Connection, changes_before: int) -> None:
    failed.ended_transaction = True
    failed.changes = connection.total_changes - changes_before
    failed.left_open = connection.in_transaction


def _run_statements(connection: Connection, statements: tuple[str, ...]) -> None:
    for index, statement in enumerate(statements, 1):
        try:
            for _ in connection.execute(statement):
                pass
        except sqlite3.Error as exc:
            from . import file_errors  # loaded only on an error

            if file_errors.is_file_problem(exc):
                raise
            if connection.unrehearsable:
                what = f"statement {index} cannot be rehearsed: {connection.unrehearsable}"
                raise StepFailed(what, index, statement, unrehearsable=True) from exc
            # SQLite quotes a CHECK's expression or a RAISE's text as written: on one line, as the statement is.
            said = " ".join(str(exc).split())
            what = _refused(connection, f"statement {index}") or f"statement {index} failed: {said}"
            raise StepFailed(what, index, statement) from exc
        # The database's own file attached again (named by an expression, which the authorizer cannot
        # read): said at once, before a write to it waits for our own lock.
        if not connection.remote and first_words(statement, 1) == ["attach"] and (again := _self_attached(connection)):
            what = f"statement {index} attached the database's own file (as {again}); use the database as main instead"
            raise StepFailed(what, index, statement)


def _run_function(connection: Connection, step: PythonStep) -> None:
    name = step.name
    threads_before = left_threads.now()
    returned: object = None
    try:
        try:
            with loading.keeping_cwd(step.folder):
                returned = step.function(connection)
        finally:
            _stop_left_threads(connection, threads_before, f"{name}()")
    except KeyboardInterrupt:
        raise
    except StepFailed:
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit and the like are the migration's failure too
        if connection.unrehearsable:
            raise StepFailed(f"{name}() cannot be rehearsed: {connection.unrehearsable}", unrehearsable=True) from exc
        from . import file_errors  # loaded only on an error

        if file_errors.is_file_problem(exc) and connection.refused is None:
            if file_errors.is_locked(exc):
                # We hold the write lock: a lock met inside the migration is one it waits for itself,
                # most often through a second connection of its own.
                raise StepFailed(
                    f"{name}() failed: {exc}; a migration that opens its own connection to the database waits"
                    " for vcp-migrate's transaction: use the connection it is given"
                ) from exc
            raise
        where = loading.at_line(exc.__traceback__, step.where)
        raise StepFailed(
            _refused(connection, f"{name}()") or f"{name}() failed{where}: {loading.describe(exc)}"
        ) from exc
    _check_returned(returned, name)
    if connection.unrehearsable:
        raise StepFailed(f"{name}() cannot be rehearsed: {connection.unrehearsable}", unrehearsable=True)
    refused = _refused(connection, f"{name}()")
    if refused:
        raise StepFailed(refused)


def _stop_left_threads(connection: Connection, before: left_threads.Threads, who: str) -> None:
    """Fail a migration that returned with a thread of its own still running (``left_threads``)."""
    left = left_threads.stop_left(connection, before)
    if left is not None:
        raise StepFailed(
            f"{who} returned with thread(s) still running ({left}); a migration must finish its work"
            " (join its threads) before it returns"
        )


def _check_returned(returned: object, name: str) -> None:
    """Fail a step whose call made a coroutine or a generator (the loader refuses async and
    generator functions, but not every callable that returns one): its work never ran."""
    if inspect.isawaitable(returned):
        what, use = "an awaitable", "await"
    elif inspect.isgenerator(returned) or inspect.isasyncgen(returned):
        what, use = "a generator", "iterate"
    else:
        return
    if inspect.iscoroutine(returned) or inspect.isgenerator(returned):
        returned.close()  # never started: closing runs none of its code, and Python warns of no coroutine never awaited
    raise StepFailed(
        f"{name}() returned {what}, which vcp-migrate does not {use}, so its work never ran;"
        f" make {name} a plain function that does the work when called"
    )


def _refused(connection: Connection, who: str) -> str | None:
    if connection.refused is None:
        return None
    if ";" in connection.refused:  # it says what to do itself
        return f"{who} tried to {connection.refused}"
    return (
        f"{who} tried to {connection.refused}; vcp-migrate commits each migration together with its"
        " history row, so remove that"
    )
