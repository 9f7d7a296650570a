"""The frame every changing command shares: the run lock and its session, loading the plan,
running it, and around the run the backup before and, after, what to keep.

What to keep is decided from the value the run returns (``Ran``), never from state another
function filled in: the backup is kept whenever something may have been committed, and
deleted only when nothing was.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from .. import history, sqlite, transactions
from ..errors import DatabaseError, Interrupted
from ..lock import RunLock, identify
from ..models import Backup, Direction, MigrationRun
from ..session import Session
from .context import Settings

if TYPE_CHECKING:  # loaded only once there is something to run: a run with nothing to do never needs them
    from pathlib import Path

    from ..execution import Runner
    from ..loading import LoadedMigration


class Ran(NamedTuple):
    """What a run did: the migrations committed, what stopped it (a failed migration, an
    interrupt, a database error), whether the migration that failed may have committed part of
    its work (it ran outside a transaction, or ended ours), and whether Python code ran before it
    stopped (``python``: it can reach past the guards, so only the backup can tell whether it
    changed the database)."""

    runs: tuple[MigrationRun, ...]
    stopped: BaseException | None = None
    partly: bool = False
    python: bool = False

    def result(self) -> list[MigrationRun]:
        """The runs, or raise what stopped the run."""
        if self.stopped is not None:
            raise self.stopped
        return list(self.runs)


@contextmanager
def writing(settings: Settings, *, create: bool, history_first: bool = False) -> Iterator[Session]:
    """Hold the run lock and a write connection; a database this run created empty is removed.

    ``history_first``: the caller reads the history first thing (``read_history``), and that read
    tells whether the file is a SQLite database, so the connection is opened without a read of its own.
    """
    if settings.server is not None:  # the lease on the server instead of a lock file
        from ..backends import server

        with server.writing(settings) as session:
            yield session
        return
    sqlite.check_path(settings.db_path, create=create)
    if _IN_RUN:  # code inside a run (a migration) calling vcp-migrate: on the same database, flock waits for itself
        _refuse_nested(settings)
    with RunLock(settings.db_path, settings.lock_timeout, create=create, on_wait=settings.observer.waiting) as lock:
        if lock.held.links > 1:
            settings.observer.warning(
                f"{settings.db_path}: the database file has {lock.held.links} hard links; runs through a name in"
                " another directory take another run lock and are not serialised with this one, and SQLite"
                " documents hard links to a database as a way to corrupt it (keep one name)"
            )
        _IN_RUN[lock.held.key] = threading.get_ident()
        try:
            try:  # opened by the path the lock resolved, named as given (as every other command names it)
                session = Session(lock.resolved, settings.lock_timeout, read_first=not history_first)
            except DatabaseError as exc:
                exc.where = str(settings.db_path)
                raise
            session.where = str(settings.db_path)
            session.existed = lock.held.size > 0
            session.before_commit = lock.verify
            if settings.observer.wants_statements:
                session.on_statement = settings.observer.statement
            try:
                if session.existed:
                    sqlite.require_writable(sqlite.local(session.connection), settings.db_path)
                yield session
            finally:
                session.close()
        finally:
            _IN_RUN.pop(lock.held.key, None)
            lock.remove_if_created_empty()
            if lock.created and os.path.lexists(settings.db_path):
                settings.observer.created(settings.db_path)


# The databases this process is running a command on, each with the thread running it.
_IN_RUN: dict[tuple[int, int], int] = {}


def _refuse_nested(settings: Settings) -> None:
    found = identify(settings.db_path)
    if found is not None and _IN_RUN.get(found[1].key) == threading.get_ident():
        raise DatabaseError(
            "a vcp-migrate run already holds this database's run lock, and this call comes from code running"
            " inside it (a migration)",
            where=str(settings.db_path),
            hint="a migration works only through the connection it is given; nothing more was changed",
        )


def runner(settings: Settings, session: Session) -> Runner:
    """A runner that keeps user_version as configured and warns through the observer."""
    from ..execution import Runner

    return Runner(session, user_version=settings.user_version, warn=settings.observer.warning)


def each(settings: Settings, session: Session, plan: list[LoadedMigration], direction: Direction) -> Ran:
    """Run each migration in its own transaction until one fails; never raises what stops it."""
    from . import stopping  # loaded only once there is something to run

    run = runner(settings, session)
    runs: list[MigrationRun] = []
    for index, migration in enumerate(plan, 1):
        try:  # an observer is the caller's code: what it raises stops the run as any failure does
            settings.observer.started(migration.file, direction, index, len(plan))
        except BaseException as exc:
            return Ran(tuple(runs), exc)
        started = time.perf_counter()
        try:
            outcome = run.one(migration, direction, earlier=len(runs))
        except BaseException as exc:  # an interrupt or a database error: what it did outside a transaction stays
            committed = stopping.committed(session, migration, direction, exc)
            if committed is None:
                return Ran(tuple(runs), stopping.in_doubt(exc, [migration]), partly=True)
            if not committed:
                outside = not migration.step(direction).transactional
                stopped = stopping.outside(exc, migration) if outside else stopping.reported(session, exc)
                return Ran(tuple(runs), stopped, partly=outside, python=_python(migration, direction))
            # Ctrl-C reached Python just after its COMMIT, or a server failed after it: it is done, and said so.
            from ..execution import ms_since  # loaded: the runner came from it

            done = MigrationRun(migration.file.version, migration.file.name, direction, ms_since(started))
            with contextlib.suppress(BaseException):
                settings.observer.finished(done)
            return Ran((*runs, done), stopping.after_commit(exc, [migration]))
        if outcome.error:
            stopped = stopping.reported(session, outcome.error, partly=outcome.partly)
            return Ran(tuple(runs), stopped, outcome.partly, _python(migration, direction))
        runs.append(outcome.run)
        try:
            settings.observer.finished(outcome.run)
        except BaseException as exc:
            return Ran(tuple(runs), exc)
    return Ran(tuple(runs))


def _python(migration: LoadedMigration, direction: Direction) -> bool:
    """Whether the migration's step is Python code."""
    from ..loading import PythonStep  # loaded: the plan came from it

    return isinstance(migration.step(direction), PythonStep)


def batch(settings: Settings, session: Session, plan: list[tuple[LoadedMigration, Direction]]) -> Ran:
    """Run the whole plan in one transaction: every run once it has committed, or what stopped it."""
    from . import stopping  # loaded only once there is something to run

    started = time.perf_counter()
    try:
        settings.observer.started(plan[0][0].file, plan[0][1], 1, len(plan))
        outcomes = runner(settings, session).batch(plan, commit=True)
    except BaseException as exc:
        # Ctrl-C just after the COMMIT: each migration's row says so (a redo's pair of one migration cannot tell).
        once = len({migration.file.version for migration, _ in plan}) == len(plan)
        states: list[bool | None] = []
        for migration, direction in plan:
            states.append(stopping.committed(session, migration, direction, exc))
            if states[-1] is None:  # a server's answer to the batch's COMMIT was lost, and it cannot be asked again
                break
        in_doubt = None in states or (not once and session.connection.remote and transactions.may_have_committed(exc))
        if in_doubt:  # (a redo's pair on a server: its history row reads the same whether it committed or not)
            return Ran((), stopping.in_doubt(exc, [migration for migration, _ in plan]), partly=True)
        if not (once and all(states)):
            python = any(_python(migration, direction) for migration, direction in plan)
            return Ran((), stopping.reported(session, exc), python=python)
        from ..execution import ms_since  # loaded: the runner came from it

        each_ms = ms_since(started) // len(plan)
        done = tuple(MigrationRun(m.file.version, m.file.name, direction, each_ms) for m, direction in plan)
        with contextlib.suppress(BaseException):
            for run in done:
                settings.observer.finished(run)
        return Ran(done, stopping.after_commit(exc, [migration for migration, _ in plan]))
    failed = next((outcome for outcome in outcomes if outcome.error), None)
    if failed is not None and failed.error is not None:
        python = any(_python(outcome.migration, outcome.direction) for outcome in outcomes)
        stopped = stopping.reported(session, failed.error, partly=failed.partly)
        return Ran((), stopped, failed.partly, python)
    runs = tuple(outcome.run for outcome in outcomes)
    try:
        for run in runs:
            settings.observer.finished(run)
    except BaseException as exc:  # the batch is committed whatever the observer raised
        return Ran(runs, exc)
    return Ran(runs)


def changing(settings: Settings, session: Session, run: Callable[[], Ran]) -> Ran:
    """Back up, run, then decide from what ran: after a commit, write the schema file; keep the
    backup or delete it again (``_keep_or_discard``). A schema file it must not write refuses
    the run before anything (``schema_target``)."""
    if settings.dump_schema:  # loaded only here: a run with nothing to do never needs it
        from .. import schema_target

        schema_target.check(settings.schema_file, settings.migrations_dir, _local(settings))
    created_folder = False
    if settings.backup:  # backups is loaded only when there are backups to take
        from .. import backups

        created_folder = not os.path.lexists(backups.folder(settings.db_path, settings.backup_dir))
    backup = take_backup(settings, session, folder_created=created_folder)
    ran = run()
    if ran.runs or (ran.partly and settings.server is None):  # what a failed migration left outside a transaction too
        dump(settings, session)
    if backup is not None:
        _keep_or_discard(settings, backup, ran, created_folder=created_folder)
    return ran


def _keep_or_discard(settings: Settings, backup: Backup, ran: Ran, *, created_folder: bool) -> None:
    """Keep the backup (and prune old ones) if anything may have changed; otherwise delete it, and
    its folder if this run created it."""
    from .. import backups

    changed = bool(ran.runs) or ran.partly
    if not ran.runs and settings.server is not None:  # not compared with its backup: what ran says it all
        if changed:
            settings.observer.warning(f"{backup.path}: kept: the run may have changed the database before it stopped")
    elif not ran.runs and (ran.partly or ran.python or not isinstance(ran.stopped, Exception)):
        # Interrupted, or it may have written past our transaction: outside one, or from Python code.
        changed = _differs(settings, backup)
        if changed:
            settings.observer.warning(
                f"{backup.path}: kept: a migration changed the database before the run failed, outside"
                " vcp-migrate's transaction; restore this backup to go back"
            )
    if changed:
        for said in backups.prune(settings.db_path, settings.keep_backups, settings.backup_dir):
            settings.observer.warning(said)
    else:
        discard(settings, backup, folder_created=created_folder)


def discard(settings: Settings, backup: Backup, *, folder_created: bool) -> None:
    """Delete the backup of a run that changed nothing. One that cannot be deleted is a warning
    that names it, never an error in place of the run's own."""
    from .. import backups

    said = backups.discard(backup, folder_created=folder_created)
    if said is None:
        settings.observer.discarded(backup)
    else:
        settings.observer.warning(said)


def _differs(settings: Settings, backup: Backup) -> bool:
    from .. import copying

    try:
        return copying.differs(settings.db_path, backup.path, settings.lock_timeout)
    except (OSError, sqlite3.Error):
        return True  # cannot tell: keep it


def take_backup(
    settings: Settings, session: Session, *, always: bool = False, folder_created: bool = False
) -> Backup | None:
    """Back up the database before a change, unless disabled or there is nothing to keep."""
    if not (settings.backup or always) or not session.existed:
        return None
    from .. import backups  # only when there is a backup to take

    try:
        if settings.server is not None:
            from ..backends import server

            backup = server.take_backup(settings, session)
        else:
            version = history.highest(session.connection)
            connection = sqlite.local(session.connection)
            backup = backups.take(connection, settings.db_path, version, settings.backup_dir, skippable=not always)
    except KeyboardInterrupt as exc:  # the copy stops within a step, its partial file removed
        if isinstance(exc, Interrupted):
            raise
        said = f"interrupted while backing up {settings.db_path}: nothing was changed, no backup kept"
        raise Interrupted(said) from None
    try:
        settings.observer.backed_up(backup)
    except BaseException:  # the caller's observer stops the run before it starts: no backup of nothing
        left = backups.discard(backup, folder_created=folder_created)
        if left is not None:
            with contextlib.suppress(Exception):  # what the observer raised is the error to report
                settings.observer.warning(left)
        raise
    return backup


def dump(settings: Settings, session: Session) -> None:
    """Write the schema file after a change; a failure to write it is a warning, not an error
    (the change itself is committed)."""
    if not settings.dump_schema:
        return
    from .. import schema, schema_target  # only when writing: with --no-dump the run never loads them

    if (why := schema_target.refusal(settings.schema_file, settings.migrations_dir, _local(settings))) is not None:
        settings.observer.warning(schema_target.skipped(settings.schema_file, why))
        return
    try:
        with transactions.latest(session.connection):  # through a replica's URL: the primary's, with our change
            schema.write_dump(settings.schema_file, session.connection, history.highest(session.connection))
    except (OSError, sqlite3.Error) as exc:
        settings.observer.warning(schema.not_written(settings.schema_file, exc))


def _local(settings: Settings) -> Path | None:
    """The database's file, None for a server's."""
    return None if settings.server is not None else settings.db_path
