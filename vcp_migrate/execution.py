"""Running migrations: one in its own transaction, or several in one (atomic batches, redo,
dry runs), each with its history row written in the same transaction as its changes."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import NamedTuple

from . import commit_checks, failures, history, history_guard, sqlite, transactions
from .database import Connection
from .errors import MigrationFailed
from .loading import LoadedMigration
from .models import Direction, MigrationFile, MigrationRun
from .session import Session
from .steps import StepFailed, run_step
from .watching import Known

_SAVEPOINT = "vcp_migrate_step"


class Outcome(NamedTuple):
    """A migration that ran (or failed): its time, the statements captured, the error if any.

    ``partly``: it failed, but what it did before failing may be committed (it ran outside a
    transaction, or ended ours itself). ``unrehearsable``: it failed only because rehearsing
    forbids what it does.
    """

    migration: LoadedMigration
    direction: Direction
    duration_ms: int
    statements: tuple[str, ...] = ()
    error: MigrationFailed | None = None
    unrehearsable: bool = False
    partly: bool = False

    @property
    def run(self) -> MigrationRun:
        file = self.migration.file
        return MigrationRun(file.version, file.name, self.direction, self.duration_ms)


def _ignore(message: str) -> None:
    return None


class Runner:
    """Runs migrations on a session and keeps their history (and PRAGMA user_version) in step."""

    def __init__(self, session: Session, *, user_version: bool = True, warn: Callable[[str], None] = _ignore) -> None:
        self.session = session
        self.user_version = user_version
        self.warn = warn
        self._warned = False
        # The latest applied_at of the history (its rows are in the order of application): as the
        # history read before the run found it, then as this run writes it (None: read it first).
        self._latest = session.connection.latest_applied_at

    def one(self, migration: LoadedMigration, direction: Direction, *, earlier: int, capture: bool = False) -> Outcome:
        """Run one migration in its own transaction (or none, if it opted out)."""
        step = migration.step(direction)
        connection = self.session.connection
        connection.touched_state = False
        started = time.perf_counter()
        done = f"{earlier} migration(s) of this run completed before it" if earlier else "nothing was changed"
        if not step.transactional:
            done = f"{migration.file.path} runs outside a transaction, so what it did stays; {done}"
        try:
            with sqlite.translated(self.session.where, done):
                if step.transactional:
                    with transactions.foreign_keys_off(connection), transactions.transaction(connection):
                        ran = run_step(connection, step, guarded=True, capture=capture)
                        commit_checks.leave_history_alone(ran.watch)
                        checked = commit_checks.foreign_keys(connection, ran.watch, connection.known)
                        self.session.before_commit()  # still ours, before its history row (and its COMMIT)
                        self._record(connection, migration.file, direction, started, whole=checked.whole_history)
                    connection.known = checked.known  # true now that it is committed
                else:
                    self.session.before_commit()  # nothing undoes this step: run it only holding the lock
                    before = history.read(connection)  # what no authorizer sees may write it (another connection)
                    ran = run_step(connection, step, guarded=False, capture=capture)
                    if history.read(connection) != before:
                        raise StepFailed(_HISTORY_CHANGED, statements=ran.statements)
                    if _rolled_back_left_open(connection):
                        raise StepFailed(
                            "it left a transaction open (a BEGIN without its COMMIT); a migration that runs"
                            " outside a transaction must end the transactions it begins",
                            statements=ran.statements,
                            hint=_LEFT_OPEN,
                        )
                    try:
                        with transactions.transaction(connection):
                            self.session.before_commit()
                            self._record(connection, migration.file, direction, started, whole=True)
                    except sqlite3.Error:
                        _fail_if_query_only(connection)
                        raise
            self.session.history_ready = True
        except StepFailed as failed:
            if not step.transactional and connection.in_transaction:  # it failed in a transaction of its own
                with contextlib.suppress(sqlite3.Error):  # what to report is its failure (closing rolls back too)
                    _rolled_back_left_open(connection)
                failed.hint = _LEFT_OPEN
            error = failures.migration_failed(
                failed, migration.file, direction, transactional=step.transactional, earlier=earlier
            )
            partly = not step.transactional or failed.ended_transaction
            ms = ms_since(started)
            return Outcome(migration, direction, ms, failed.statements, error, failed.unrehearsable, partly)
        finally:
            if not step.transactional or connection.touched_state:
                self.session.renew()
        return Outcome(migration, direction, ms_since(started), ran.statements)

    def batch(
        self,
        plan: list[tuple[LoadedMigration, Direction]],
        *,
        commit: bool,
        capture: bool = False,
        inspect: Callable[[Connection], None] | None = None,
    ) -> list[Outcome]:
        """Run every migration of ``plan`` in one transaction, committed only if all succeed and
        ``commit`` is set. The first failure stops the batch; its outcome carries the error.
        ``inspect`` sees the database after the migrations that succeeded, before the end."""
        connection = self.session.connection
        outcomes: list[Outcome] = []
        connection.touched_state = False  # set by any migration of the batch, kept to its end
        known = connection.known  # then what each migration's checks leave known inside the batch
        try:
            with (
                sqlite.translated(self.session.where),
                transactions.foreign_keys_off(connection, commit=commit),
                transactions.transaction(connection, commit=commit),
            ):
                for migration, direction in plan:
                    outcome, known = self._in_savepoint(connection, migration, direction, capture, len(outcomes), known)
                    outcomes.append(outcome)
                    if outcome.error:
                        break
                if inspect:
                    inspect(connection)
                if outcomes and outcomes[-1].error:
                    raise _Abandon
                if commit:
                    self.session.before_commit()
            if commit:
                connection.known = known
        except _Abandon:
            pass
        finally:
            if connection.touched_state:
                self.session.renew()
        if commit and not (outcomes and outcomes[-1].error):
            self.session.history_ready = True
        return outcomes

    def _in_savepoint(
        self,
        connection: Connection,
        migration: LoadedMigration,
        direction: Direction,
        capture: bool,
        earlier: int,
        known: Known | None,
    ) -> tuple[Outcome, Known | None]:
        """Run one migration of a batch in a savepoint; its outcome, and what is known after it."""
        step = migration.step(direction)
        started = time.perf_counter()
        connection.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            ran = run_step(connection, step, guarded=True, capture=capture)
            commit_checks.leave_history_alone(ran.watch)
            checked = commit_checks.foreign_keys(connection, ran.watch, known)
            self._record(connection, migration.file, direction, started, whole=checked.whole_history)
        except StepFailed as failed:
            if not failed.ended_transaction:
                connection.execute(f"ROLLBACK TO {_SAVEPOINT}")
                connection.execute(f"RELEASE {_SAVEPOINT}")
            error = failures.migration_failed(
                failed, migration.file, direction, transactional=True, earlier=earlier, batch=True
            )
            ms, ended = ms_since(started), failed.ended_transaction
            return Outcome(migration, direction, ms, failed.statements, error, failed.unrehearsable, ended), None
        connection.execute(f"RELEASE {_SAVEPOINT}")
        return Outcome(migration, direction, ms_since(started), ran.statements), checked.known

    def _record(
        self, connection: Connection, file: MigrationFile, direction: Direction, started: float, *, whole: bool
    ) -> None:
        try:
            # The run lock keeps other runs out since the history was read: tables found at the
            # current layout then need no second look inside this transaction.
            if not self.session.history_ready and connection.history_layout != history.LAYOUT:
                history.prepare(connection)
            self._latest = _write_row(connection, file, direction, started, self._latest)
        except sqlite3.Error:
            _fail_if_query_only(connection)
            raise
        written = history_guard.written(connection, file.version, whole=whole)
        if written.tables != len(history.TABLES):
            raise _history_dropped()
        if written.triggers:
            raise StepFailed(
                f"it left trigger(s) on the history table ({', '.join(history_guard.triggers(connection))}), which"
                " could rewrite the history; drop them in the migration"
            )
        # A migration may have left a TEMP trigger on the history table that undoes our row: the
        # history must say exactly what is committed, so check before the COMMIT.
        expected = file.checksum if direction == "up" else None
        if written.checksum != expected:
            raise StepFailed(
                "its history row did not stay as written (a trigger left by the migration on the history"
                " table?), so it cannot be recorded"
            )
        if self.user_version and not history.sync_user_version(connection, written.highest) and not self._warned:
            self._warned = True
            self.warn(
                f"versions above {history.USER_VERSION_MAX} do not fit PRAGMA user_version, which was left"
                " unchanged; set user_version = false in [tool.vcp-migrate] to silence this"
            )


def _write_row(
    connection: Connection, file: MigrationFile, direction: Direction, started: float, latest: str | None
) -> str | None:
    """Write (up) or delete (down) the history row of ``file``, and return the latest applied_at
    (``latest``: as known before); StepFailed when the row or a history table is not where it was left."""
    try:
        if direction == "up":
            return history.record(connection, file, ms_since(started), latest)
        if not history.remove(connection, file.version):
            raise StepFailed(
                "its history row was already gone: another run rolled it back first (one reaching the"
                " database through another name, such as a hard link in another folder?)"
            )
    except sqlite3.Error:
        if history_guard.intact(connection):
            raise
        raise _history_dropped() from None
    return latest


_LEFT_OPEN = (
    "it runs outside a transaction: the transaction it began and did not end was rolled back, what it had"
    " committed before stays; make it idempotent and run again"
)


def _rolled_back_left_open(connection: Connection) -> bool:
    """Roll back a transaction that a step run outside ours left open, and say if there was one:
    our history row can be neither written beside it nor committed with it."""
    if not connection.in_transaction:
        return False
    connection.execute(transactions.ROLLBACK)
    return True


def _fail_if_query_only(connection: Connection) -> None:
    """After our write failed: raise StepFailed if the migration left PRAGMA query_only on, which
    refuses every write after it, ours too. (Its PRAGMA marked the connection, which is replaced
    after it.)"""
    try:
        query_only = connection.execute("PRAGMA query_only").fetchone()
    except sqlite3.Error:
        return  # what to report is our write's error
    if query_only and query_only[0] == 1:
        raise StepFailed(
            "it made the connection read-only (PRAGMA query_only = ON), so its history row could not be"
            " written; leave query_only as it was, or set it back to OFF at the end"
        ) from None


_HISTORY_CHANGED = (
    "the history tables' rows changed while it ran (through another connection, backup() or the like), and"
    f" stay so; restore the backup taken before this run if one was ('vcp-migrate restore'); {history.HANDS_OFF}"
)


def _history_dropped() -> StepFailed:
    return StepFailed(
        f"it dropped or renamed a history table ({' or '.join(history.TABLES)}), so it cannot be recorded;"
        f" {history.HANDS_OFF}"
    )


def ms_since(started: float) -> int:
    """Milliseconds since ``started`` (a perf_counter reading), rounded."""
    return round((time.perf_counter() - started) * 1000)


class _Abandon(Exception):
    """Ends a batch's transaction with a rollback after a migration failed."""
