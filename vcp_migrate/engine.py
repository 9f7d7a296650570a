"""MigrationManager, the engine: every command reads the directory, plans, then runs the plan.

Transactions: each transactional migration runs between our own BEGIN IMMEDIATE and COMMIT,
with its history row written before the COMMIT, so both land or neither does. Foreign keys
follow SQLite's procedure for schema changes: enforcement off outside the transaction,
PRAGMA foreign_key_check before the commit, the setting restored after.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from . import discovery, history, loading, planning, scaffold, sqlite
from .errors import DatabaseError, MigrationFailed, MigrationFileError, UsageError
from .loading import LoadedMigration, PythonStep, SqlStep, Step
from .lock import RunLock
from .models import (
    AppliedMigration,
    Direction,
    MigrationFile,
    MigrationRun,
    Problem,
    StatusReport,
)


class Observer:
    """Receives progress from the engine (the CLI renders it); the default ignores it."""

    def started(self, migration: MigrationFile, direction: Direction, index: int, total: int) -> None:
        """A migration is about to run; ``index`` counts from 1 to ``total``."""

    def finished(self, run: MigrationRun) -> None:
        """A migration ran and was committed with its history row."""

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the command."""


class MigrationManager:
    """Applies, rolls back, reports and checks the migrations of one directory on one database.

    ``lock_timeout`` bounds how long a command waits for another run or connection to release
    the database. Every failure raises a VcpMigrateError.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = "vcp_trading.db",
        migrations_dir: str | os.PathLike[str] = "migrations",
        *,
        lock_timeout: float = 30.0,
        observer: Observer | None = None,
    ) -> None:
        if lock_timeout < 0:
            raise UsageError(f"lock timeout must be 0 or more seconds, not {lock_timeout}")
        self.db_path = Path(db_path)
        self.migrations_dir = Path(migrations_dir)
        self.lock_timeout = lock_timeout
        self.observer = observer or Observer()

    # -- reading --------------------------------------------------------------------------

    def status(self) -> list[dict[str, object]]:
        """Every migration as a dict: version, name, state, applied, applied_at, checksum, ..."""
        return [row.as_dict() for row in self.report().rows]

    def report(self) -> StatusReport:
        """Every migration's state; never runs migration code and never creates the database."""
        directory = discovery.without_duplicates(discovery.scan(self.migrations_dir))
        applied = self._applied()
        rows = planning.status_rows(directory, applied or {})
        return StatusReport(self.db_path, applied is not None, tuple(rows))

    def validate(self) -> list[Problem]:
        """Every problem with the files, the history against them, and the database's integrity."""
        directory = discovery.scan(self.migrations_dir)
        problems = [Problem(p.kind, p.reason, p.path, p.version) for p in directory.problems]
        for file in directory.migrations:
            try:
                migration = loading.load(file)
            except MigrationFileError as exc:
                problems.append(Problem("load", exc.what, file.path, file.version))
                continue
            if migration.down is None:
                problems.append(
                    Problem("no-down", "has no down, so it cannot be rolled back; add one", file.path, file.version)
                )
        applied = self._applied()
        if applied is None:
            return problems
        highest = max(applied, default=0)
        for row in planning.status_rows(directory, applied):
            if row.state == "modified" and row.applied:
                message = (
                    f"changed since it was applied on {row.applied.applied_at};"
                    " restore it and put the change in a new migration"
                )
                problems.append(Problem("modified", message, row.path, row.version))
            elif row.state == "missing":
                message = f"version {row.version} ({row.name}) is applied but its file is missing"
                problems.append(Problem("missing", message, self.migrations_dir, row.version))
            elif row.state == "out-of-order":
                message = f"pending below the highest applied version {highest}; migrate needs --allow-out-of-order"
                problems.append(Problem("out-of-order", message, row.path, row.version))
        return problems + self._database_problems()

    # -- changing ---------------------------------------------------------------------------

    def migrate(self, target: int | None = None, *, allow_out_of_order: bool = False) -> list[MigrationRun]:
        """Apply pending migrations in version order, up to ``target`` if given; return what ran.

        Every migration to run is loaded before the first one starts. Creates the database.
        """
        directory = discovery.usable(discovery.scan(self.migrations_dir))
        with self._writing(create=True) as session:
            applied = self._read_history(session.connection)
            for row in planning.status_rows(directory, applied):
                if row.state == "missing":
                    self.observer.warning(
                        f"version {row.version} ({row.name}) is applied but its file is missing from {directory.path}"
                    )
            plan = planning.plan_migrate(directory, applied, target=target, allow_out_of_order=allow_out_of_order)
            return self._run_all(session, self._load(plan, "up"), "up")

    def rollback(self, steps: int | None = None, *, to: int | None = None) -> list[MigrationRun]:
        """Roll back the newest ``steps`` migrations (default 1), or all above version ``to``.

        Newest first; if one fails, those rolled back before it stay rolled back.
        """
        if steps is not None and to is not None:
            raise UsageError("give either steps or to, not both")
        if steps is not None and steps < 1:
            raise UsageError(f"steps must be 1 or more, not {steps}")
        if to is not None and to < 0:
            raise UsageError(f"to must be a version or 0, not {to}")
        directory = discovery.usable(discovery.scan(self.migrations_dir))
        with self._writing(create=False) as session:
            applied = self._read_history(session.connection)
            plan = planning.plan_rollback(directory, applied, steps=steps, to=to)
            for file in plan:
                if file.checksum != applied[file.version].checksum:
                    self.observer.warning(
                        f"{file.path}: changed since it was applied; rolling back with its current down"
                    )
            return self._run_all(session, self._load(plan, "down"), "down")

    def new(self, name: str, *, sql: bool = False) -> Path:
        """Create the next migration file with empty up and down; return its path. Never overwrites."""
        snake = scaffold.normalise_name(name)
        files: tuple[MigrationFile, ...] = ()
        if self.migrations_dir.exists():
            files = discovery.without_duplicates(discovery.scan(self.migrations_dir)).migrations
        elif not self.migrations_dir.absolute().parent.is_dir():
            raise MigrationFileError(
                f"directory {self.migrations_dir.parent} does not exist",
                where=str(self.migrations_dir),
                hint="check --dir",
            )
        applied = self._applied() or {}
        version = scaffold.next_version([*(f.version for f in files), *applied])
        width = scaffold.prefix_width(f.path.name.partition("_")[0] for f in files)
        path = self.migrations_dir / scaffold.file_name(version, snake, width=width, sql=sql)
        self.migrations_dir.mkdir(exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(scaffold.template(snake, sql=sql))
        except FileExistsError:
            raise MigrationFileError("already exists", where=str(path), hint="nothing was overwritten") from None
        return path

    # -- internals ------------------------------------------------------------------------

    def _applied(self) -> dict[int, AppliedMigration] | None:
        """The history, or None when the database does not exist (it is never created here)."""
        if not self.db_path.exists() and not self.db_path.is_symlink():
            return None
        with closing(sqlite.open_database(self.db_path, create=False, timeout=self.lock_timeout)) as connection:
            return self._read_history(connection)

    def _read_history(self, connection: sqlite3.Connection) -> dict[int, AppliedMigration]:
        try:
            return history.read(connection)
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self.db_path) from exc
        except DatabaseError as exc:
            exc.where = exc.where or str(self.db_path)
            raise

    def _database_problems(self) -> list[Problem]:
        with closing(sqlite.open_database(self.db_path, create=False, timeout=self.lock_timeout)) as connection:
            try:
                integrity = [row[0] for row in connection.execute("PRAGMA integrity_check")]
                violations = sqlite.foreign_key_violations(connection)
            except sqlite3.Error as exc:
                raise sqlite.database_error(exc, self.db_path) from exc
        problems = [
            Problem("integrity", f"integrity_check: {line}", self.db_path) for line in integrity if line != "ok"
        ]
        return problems + [Problem("foreign-key", f"foreign_key_check: {v}", self.db_path) for v in violations]

    @contextmanager
    def _writing(self, *, create: bool) -> Iterator[_Session]:
        """Hold the run lock and a write connection; remove a database this run created empty."""
        existed = self.db_path.exists()
        sqlite.check_path(self.db_path, create=create)
        try:
            with RunLock(self.db_path, self.lock_timeout):
                session = _Session(self.db_path, self.lock_timeout)
                try:
                    yield session
                finally:
                    session.close()
        finally:
            if not existed and self.db_path.exists() and self.db_path.stat().st_size == 0:
                self.db_path.unlink()

    def _load(self, plan: list[MigrationFile], direction: Direction) -> list[LoadedMigration]:
        done = "applied" if direction == "up" else "rolled back"
        loaded = []
        for file in plan:
            try:
                migration = loading.load(file)
            except MigrationFileError as exc:
                raise MigrationFileError(exc.what, where=exc.where, hint=f"{exc.hint}; nothing was {done}") from None
            if direction == "down" and migration.down is None:
                raise MigrationFileError(
                    "has no down, so it cannot be rolled back",
                    where=str(file.path),
                    hint=f"add one; nothing was {done}",
                )
            loaded.append(migration)
        return loaded

    def _run_all(self, session: _Session, plan: list[LoadedMigration], direction: Direction) -> list[MigrationRun]:
        runs: list[MigrationRun] = []
        for index, migration in enumerate(plan, 1):
            self.observer.started(migration.file, direction, index, len(plan))
            run = self._run(session, migration, direction, earlier=len(runs))
            runs.append(run)
            self.observer.finished(run)
        return runs

    def _run(self, session: _Session, migration: LoadedMigration, direction: Direction, earlier: int) -> MigrationRun:
        """Run one migration and write (or delete) its history row in the same transaction."""
        file = migration.file
        step = migration.up if direction == "up" else migration.down
        assert step is not None  # _load refuses a rollback without down
        connection = session.connection
        started = time.perf_counter()

        def write_history(connection: sqlite.MigrationConnection) -> None:
            if direction == "down":
                history.remove(connection, file.version)
                return
            if not session.history_ready:
                history.prepare(connection)
            history.record(connection, file, round((time.perf_counter() - started) * 1000))

        try:
            if step.transactional:
                _in_transaction(connection, step, write_history)
            else:
                _run_step(connection, step, guarded=False)
                with sqlite.transaction(connection):
                    write_history(connection)
            session.history_ready = True
        except _StepFailed as failed:
            raise _failure(failed, file, direction, step.transactional, earlier) from failed.__cause__
        except sqlite3.Error as exc:
            done = f"{earlier} migration(s) of this run completed before it" if earlier else "nothing was changed"
            raise sqlite.database_error(exc, self.db_path, done) from exc
        finally:
            if isinstance(step, PythonStep) or not step.transactional or connection.touched_state:
                session.renew()
        return MigrationRun(file.version, file.name, direction, round((time.perf_counter() - started) * 1000))


class _Session:
    """The write connection of one run, replaced after any migration that may have changed its
    state (Python code, a PRAGMA, ATTACH, TEMP objects), so no state leaks into the next one."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.history_ready = False
        self.connection = sqlite.open_database(path, create=True, timeout=timeout)

    def renew(self) -> None:
        self.connection.close()
        self.connection = sqlite.open_database(self.path, create=False, timeout=self.timeout)

    def close(self) -> None:
        self.connection.close()


class _StepFailed(Exception):
    """A step failed; carries what to say and which statement."""

    def __init__(self, what: str, index: int | None = None, statement: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.index = index
        self.statement = statement


def _in_transaction(
    connection: sqlite.MigrationConnection,
    step: Step,
    write_history: Callable[[sqlite.MigrationConnection], None],
) -> None:
    enforced = connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    if enforced:
        connection.execute("PRAGMA foreign_keys = OFF")
    try:
        with sqlite.transaction(connection):
            _run_step(connection, step, guarded=True)
            violations = sqlite.foreign_key_violations(connection)
            if violations:
                raise _StepFailed(f"foreign key check failed: {'; '.join(violations)}; fix the data or the migration")
            write_history(connection)
    finally:
        if enforced:
            connection.execute("PRAGMA foreign_keys = ON")


def _run_step(connection: sqlite.MigrationConnection, step: Step, *, guarded: bool) -> None:
    """Run a step's statements or function; raise _StepFailed naming what failed."""
    connection.refused = None
    connection.touched_state = False
    connection.guarded = guarded
    try:
        if isinstance(step, SqlStep):
            for index, statement in enumerate(step.statements, 1):
                try:
                    for _ in connection.execute(statement):
                        pass
                except sqlite3.Error as exc:
                    if sqlite.is_file_problem(exc):
                        raise
                    raise _StepFailed(
                        _refused(connection, f"statement {index}") or f"statement {index} failed: {exc}",
                        index,
                        statement,
                    ) from exc
        else:
            name = step.function.__name__
            try:
                step.function(connection)
            except (Exception, SystemExit) as exc:
                if sqlite.is_file_problem(exc) and connection.refused is None:
                    raise
                where = loading.at_line(exc.__traceback__, step.function.__code__.co_filename)
                raise _StepFailed(
                    _refused(connection, f"{name}()") or f"{name}() failed{where}: {loading.describe(exc)}"
                ) from exc
            refused = _refused(connection, f"{name}()")
            if refused:
                raise _StepFailed(refused)
    finally:
        connection.guarded = False


def _refused(connection: sqlite.MigrationConnection, who: str) -> str | None:
    if connection.refused is None:
        return None
    return (
        f"{who} tried to {connection.refused}; vcp-migrate commits each migration together with its"
        " history row, so remove that"
    )


def _failure(
    failed: _StepFailed, file: MigrationFile, direction: Direction, transactional: bool, earlier: int
) -> MigrationFailed:
    if not transactional:
        hint = "it runs outside a transaction, so what it did before failing stays; make it idempotent and run again"
    elif direction == "up":
        hint = "nothing was applied" if not earlier else "it was rolled back"
    else:
        hint = "it was rolled back and is still applied"
    if earlier:
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
