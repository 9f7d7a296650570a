"""Running migrations: one in its own transaction, or several in one (atomic batches, redo,
dry runs), each with its history row written in the same transaction as its changes."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import history, loading, sqlite
from .errors import MigrationFailed
from .loading import LoadedMigration, PythonStep, SqlStep, Step
from .models import Direction, MigrationFile, MigrationRun

_SAVEPOINT = "vcp_migrate_step"


def _no_check() -> None:
    return None


class Session:
    """The write connection of one run. It is replaced after any migration that may have changed
    its state (Python code, a PRAGMA, ATTACH, TEMP objects), so no state leaks into the next one.

    ``rehearsing`` marks a database that only rehearses (validate, dry runs): nothing run on it may
    write another file. ``before_commit`` is called inside each migration's transaction right
    before its COMMIT (the run lock checks there that it is still held).
    """

    def __init__(
        self,
        path: Path,
        timeout: float,
        connection: sqlite.MigrationConnection | None = None,
        *,
        rehearsing: bool = False,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.history_ready = False
        self.existed = False  # the database had content before this run (so it is backed up)
        self.rehearsing = rehearsing
        self.before_commit: Callable[[], None] = _no_check
        self.connection = connection or sqlite.open_database(path, create=True, timeout=timeout)
        self.connection.rehearsing = rehearsing

    def renew(self) -> None:
        if str(self.path) == ":memory:":  # a throw-away database: renewing would empty it
            return
        self.connection.close()
        self.connection = sqlite.open_database(self.path, create=False, timeout=self.timeout)
        self.connection.rehearsing = self.rehearsing

    def close(self) -> None:
        self.connection.close()


@dataclass(frozen=True)
class Outcome:
    """A migration that ran (or failed): its time, the statements captured, the error if any."""

    migration: LoadedMigration
    direction: Direction
    duration_ms: int
    statements: tuple[str, ...] = ()
    error: MigrationFailed | None = None
    unrehearsable: bool = False  # failed only because rehearsing forbids what it does

    @property
    def run(self) -> MigrationRun:
        file = self.migration.file
        return MigrationRun(file.version, file.name, self.direction, self.duration_ms)


@dataclass
class Runner:
    """Runs migrations on a session and keeps their history (and PRAGMA user_version) in step."""

    session: Session
    user_version: bool = True
    warn: Callable[[str], None] = lambda message: None
    _warned: bool = field(default=False, init=False)

    def one(self, migration: LoadedMigration, direction: Direction, *, earlier: int, capture: bool = False) -> Outcome:
        """Run one migration in its own transaction (or none, if it opted out)."""
        step = migration.step(direction)
        connection = self.session.connection
        started = time.perf_counter()
        try:
            if step.transactional:
                with sqlite.foreign_keys_off(connection), sqlite.transaction(connection):
                    statements = run_step(connection, step, guarded=True, capture=capture)
                    _check_foreign_keys(connection)
                    self._record(connection, migration.file, direction, started)
                    self.session.before_commit()
            else:
                statements = run_step(connection, step, guarded=False, capture=capture)
                with sqlite.transaction(connection):
                    self._record(connection, migration.file, direction, started)
                    self.session.before_commit()
            self.session.history_ready = True
        except _StepFailed as failed:
            error = _failure(failed, migration.file, direction, transactional=step.transactional, earlier=earlier)
            return Outcome(migration, direction, _ms(started), failed.statements, error, failed.unrehearsable)
        except sqlite3.Error as exc:
            done = f"{earlier} migration(s) of this run completed before it" if earlier else "nothing was changed"
            raise sqlite.database_error(exc, self.session.path, done) from exc
        finally:
            if isinstance(step, PythonStep) or not step.transactional or connection.touched_state:
                self.session.renew()
        return Outcome(migration, direction, _ms(started), statements)

    def batch(
        self,
        plan: list[tuple[LoadedMigration, Direction]],
        *,
        commit: bool,
        capture: bool = False,
        inspect: Callable[[sqlite.MigrationConnection], None] | None = None,
    ) -> list[Outcome]:
        """Run every migration of ``plan`` in one transaction, committed only if all succeed and
        ``commit`` is set. The first failure stops the batch; its outcome carries the error.
        ``inspect`` sees the database after the migrations that succeeded, before the end."""
        connection = self.session.connection
        outcomes: list[Outcome] = []
        try:
            with sqlite.foreign_keys_off(connection), sqlite.transaction(connection, commit=commit):
                for migration, direction in plan:
                    outcome = self._in_savepoint(connection, migration, direction, capture, len(outcomes))
                    outcomes.append(outcome)
                    if outcome.error:
                        break
                if inspect:
                    inspect(connection)
                if outcomes and outcomes[-1].error:
                    raise _Abandon
                if commit:
                    self.session.before_commit()
        except _Abandon:
            pass
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self.session.path) from exc
        finally:
            if connection.touched_state or any(isinstance(m.step(d), PythonStep) for m, d in plan):
                self.session.renew()
        if commit and not (outcomes and outcomes[-1].error):
            self.session.history_ready = True
        return outcomes

    def _in_savepoint(
        self,
        connection: sqlite.MigrationConnection,
        migration: LoadedMigration,
        direction: Direction,
        capture: bool,
        earlier: int,
    ) -> Outcome:
        step = migration.step(direction)
        started = time.perf_counter()
        connection.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            statements = run_step(connection, step, guarded=True, capture=capture)
            _check_foreign_keys(connection)
            self._record(connection, migration.file, direction, started)
        except _StepFailed as failed:
            if not failed.ended_transaction:
                connection.execute(f"ROLLBACK TO {_SAVEPOINT}")
                connection.execute(f"RELEASE {_SAVEPOINT}")
            error = _failure(failed, migration.file, direction, transactional=True, earlier=earlier, batch=True)
            return Outcome(migration, direction, _ms(started), failed.statements, error, failed.unrehearsable)
        connection.execute(f"RELEASE {_SAVEPOINT}")
        return Outcome(migration, direction, _ms(started), statements)

    def _record(
        self, connection: sqlite.MigrationConnection, file: MigrationFile, direction: Direction, started: float
    ) -> None:
        if not self.session.history_ready:
            history.prepare(connection)
        if direction == "up":
            history.record(connection, file, _ms(started))
        else:
            history.remove(connection, file.version)
        # A migration may have left a TEMP trigger on the history table that undoes our row: the
        # history must say exactly what is committed, so check before the COMMIT.
        if not history.is_recorded(connection, file, applied=direction == "up"):
            raise _StepFailed(
                "its history row did not stay as written (a trigger left by the migration on the history"
                " table?), so it cannot be recorded"
            )
        if self.user_version and not history.sync_user_version(connection) and not self._warned:
            self._warned = True
            self.warn(
                f"versions above {history.USER_VERSION_MAX} do not fit PRAGMA user_version, which was left"
                " unchanged; set user_version = false in [tool.vcp-migrate] to silence this"
            )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class _Abandon(Exception):
    """Ends a batch's transaction with a rollback after a migration failed."""


class _StepFailed(Exception):
    """A step failed: what to say, which statement, and what it had executed."""

    def __init__(
        self,
        what: str,
        index: int | None = None,
        statement: str | None = None,
        statements: tuple[str, ...] = (),
        *,
        unrehearsable: bool = False,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.index = index
        self.statement = statement
        self.statements = statements
        self.unrehearsable = unrehearsable
        self.ended_transaction = False  # the migration ended our transaction behind our back
        self.changes = 0  # rows it had changed by then


def run_step(
    connection: sqlite.MigrationConnection, step: Step, *, guarded: bool, capture: bool = False
) -> tuple[str, ...]:
    """Run a step's statements or function; return what it executed when ``capture`` is set.

    Raises _StepFailed naming what failed; errors about the database file itself pass through.
    """
    connection.refused = None
    connection.unrehearsable = None
    connection.touched_state = False
    connection.guarded = guarded
    connection.capture = [] if capture else None
    changes_before = connection.total_changes
    try:
        with _failing(connection, guarded=guarded, changes_before=changes_before):
            if isinstance(step, SqlStep):
                _run_statements(connection, step.statements)
            else:
                _run_function(connection, step)
        return tuple(connection.capture or ())
    finally:
        connection.guarded = False
        connection.capture = None
        if isinstance(step, PythonStep):
            connection.reset_python_state()


@contextmanager
def _failing(connection: sqlite.MigrationConnection, *, guarded: bool, changes_before: int) -> Iterator[None]:
    """Attach the statements captured so far to a failure, and fail a step that ended our
    transaction itself (by calling the base class's methods past our guards): what it did up to
    then is committed, and nothing may be recorded on top of it."""
    try:
        yield
    except _StepFailed as failed:
        failed.statements = tuple(connection.capture or ())
        if guarded and not connection.in_transaction:
            _ended(failed, connection, changes_before)
        raise
    if guarded and not connection.in_transaction:
        ended = _StepFailed("it ended vcp-migrate's transaction itself (a COMMIT or ROLLBACK past its guards)")
        ended.statements = tuple(connection.capture or ())
        _ended(ended, connection, changes_before)
        raise ended


def _ended(failed: _StepFailed, connection: sqlite.MigrationConnection, changes_before: int) -> None:
    failed.ended_transaction = True
    failed.changes = connection.total_changes - changes_before
    if not failed.what.startswith("it ended"):
        failed.what = f"{failed.what}, after it had ended vcp-migrate's transaction itself"


def _run_statements(connection: sqlite.MigrationConnection, statements: tuple[str, ...]) -> None:
    for index, statement in enumerate(statements, 1):
        try:
            for _ in connection.execute(statement):
                pass
        except sqlite3.Error as exc:
            if sqlite.is_file_problem(exc):
                raise
            if connection.unrehearsable:
                what = f"statement {index} cannot be rehearsed: {connection.unrehearsable}"
                raise _StepFailed(what, index, statement, unrehearsable=True) from exc
            what = _refused(connection, f"statement {index}") or f"statement {index} failed: {exc}"
            raise _StepFailed(what, index, statement) from exc


def _run_function(connection: sqlite.MigrationConnection, step: PythonStep) -> None:
    name = step.function.__name__
    threads_before = set(threading.enumerate())
    try:
        try:
            step.function(connection)
        finally:
            _stop_left_threads(connection, threads_before, f"{name}()")
    except KeyboardInterrupt:
        raise
    except _StepFailed:
        raise
    except BaseException as exc:  # SystemExit, GeneratorExit and the like are the migration's failure too
        if connection.unrehearsable:
            raise _StepFailed(f"{name}() cannot be rehearsed: {connection.unrehearsable}", unrehearsable=True) from exc
        if sqlite.is_file_problem(exc) and connection.refused is None:
            if sqlite.is_locked(exc):
                # We hold the write lock: a lock met inside the migration is one it waits for itself,
                # most often through a second connection of its own.
                raise _StepFailed(
                    f"{name}() failed: {exc}; a migration that opens its own connection to the database waits"
                    " for vcp-migrate's transaction: use the connection it is given"
                ) from exc
            raise
        where = loading.at_line(exc.__traceback__, step.function.__code__.co_filename)
        raise _StepFailed(
            _refused(connection, f"{name}()") or f"{name}() failed{where}: {loading.describe(exc)}"
        ) from exc
    if connection.unrehearsable:
        raise _StepFailed(f"{name}() cannot be rehearsed: {connection.unrehearsable}", unrehearsable=True)
    refused = _refused(connection, f"{name}()")
    if refused:
        raise _StepFailed(refused)


_THREAD_GRACE_SECONDS = 2.0


def _stop_left_threads(connection: sqlite.MigrationConnection, before: set[threading.Thread], who: str) -> None:
    """Fail a migration that returned with a thread of its own still running.

    Such a thread may go on using the connection after the migration's COMMIT (or hold it while we
    wait to roll back): interrupt what it runs on the connection and wait briefly, so the
    rollback and the release of the locks cannot hang on it.
    """
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    if not left:
        return
    connection.interrupt()
    deadline = time.monotonic() + _THREAD_GRACE_SECONDS
    for thread in left:
        thread.join(max(0.0, deadline - time.monotonic()))
    names = ", ".join(thread.name for thread in left)
    raise _StepFailed(
        f"{who} returned with thread(s) still running ({names}); a migration must finish its work"
        " (join its threads) before it returns"
    )


def _check_foreign_keys(connection: sqlite.MigrationConnection) -> None:
    violations = sqlite.foreign_key_violations(connection)
    if violations:
        raise _StepFailed(f"foreign key check failed: {'; '.join(violations)}; fix the data or the migration")


def _refused(connection: sqlite.MigrationConnection, who: str) -> str | None:
    if connection.refused is None:
        return None
    return (
        f"{who} tried to {connection.refused}; vcp-migrate commits each migration together with its"
        " history row, so remove that"
    )


def _failure(
    failed: _StepFailed,
    file: MigrationFile,
    direction: Direction,
    *,
    transactional: bool,
    earlier: int,
    batch: bool = False,
) -> MigrationFailed:
    if failed.ended_transaction:
        return MigrationFailed(
            failed.what,
            where=str(file.path),
            version=file.version,
            hint=(
                f"what it did up to then ({failed.changes} row change(s), and any schema change) is committed"
                " without a history row"
                + ("; so are the migrations before it in the batch" if batch and earlier else "")
                + "; 'vcp-migrate validate' shows the drift: undo it by hand or restore the backup"
            ),
            statement_index=failed.index,
            statement=failed.statement,
        )
    if failed.unrehearsable:
        hint = "run it for real after a backup; nothing was changed"
    elif batch:
        hint = "the whole batch was rolled back; nothing was changed"
    elif not transactional:
        hint = "it runs outside a transaction, so what it did before failing stays; make it idempotent and run again"
    elif direction == "up":
        hint = "nothing was applied" if not earlier else "it was rolled back"
    else:
        hint = "it was rolled back and is still applied"
    if earlier and not batch:
        stay = "applied" if direction == "up" else "rolled back"
        hint += f"; the {earlier} migration(s) before it in this run stay {stay}"
    return MigrationFailed(
        failed.what,
        where=str(file.path),
        version=file.version,
        hint=hint,
        statement_index=failed.index,
        statement=failed.statement,
    )
