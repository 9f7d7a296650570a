"""MigrationManager, the engine: every command reads the directory, plans, then runs the plan.

Commands that change the database hold the run lock (one writer at a time), read the history,
plan, load every migration they will run, take a backup, and only then run them. Running is
``execution``'s job: each migration commits together with its history row, or not at all.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

# Only what `status` needs is imported with the engine: status runs as a fresh process in CI,
# thousands of times. Loading and running migrations, backups and the checks are imported by the
# methods that use them.
from . import discovery, history, planning, sqlite
from .errors import DatabaseError, MigrationFileError, PlanError, UsageError, VcpMigrateError
from .models import (
    AppliedMigration,
    Backup,
    Direction,
    Directory,
    DryRun,
    MigrationFile,
    MigrationRun,
    Problem,
    Rehearsal,
    StatusReport,
)
from .observer import Observer

if TYPE_CHECKING:
    from .execution import Outcome, Runner, Session
    from .loading import LoadedMigration


class Repair(NamedTuple):
    """An applied migration whose file changed: what was applied, what is there now."""

    current: MigrationFile
    applied: AppliedMigration
    diff: str


class MigrationManager:
    """Applies, rolls back, reports and checks the migrations of one directory on one database.

    ``lock_timeout`` bounds how long a command waits for another run or connection to release
    the database. ``backup`` and ``keep_backups`` govern the copy taken before a change;
    ``user_version`` keeps PRAGMA user_version equal to the highest applied version;
    ``schema_file`` (default ``<migrations_dir>/schema.sql``) receives the normalised schema
    after every change unless ``dump_schema`` is False.
    Every failure raises a VcpMigrateError.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = "vcp_trading.db",
        migrations_dir: str | os.PathLike[str] = "migrations",
        *,
        lock_timeout: float = 30.0,
        backup: bool = True,
        keep_backups: int = 5,
        user_version: bool = True,
        schema_file: str | os.PathLike[str] | None = None,
        dump_schema: bool = True,
        observer: Observer | None = None,
    ) -> None:
        if not 0 <= lock_timeout < float("inf"):  # also false for nan
            raise UsageError(f"lock timeout must be a finite number of seconds, 0 or more, not {lock_timeout}")
        if keep_backups < 1:
            raise UsageError(f"keep_backups must be 1 or more, not {keep_backups}", hint="use backup=False instead")
        self.db_path = Path(db_path)
        self.migrations_dir = Path(migrations_dir)
        self.lock_timeout = lock_timeout
        self.backup = backup
        self.keep_backups = keep_backups
        self.user_version = user_version
        self.schema_file = Path(schema_file) if schema_file is not None else self.migrations_dir / "schema.sql"
        self.dump_schema = dump_schema
        self.observer = observer or Observer()

    # -- reading --------------------------------------------------------------------------

    def status(self) -> list[dict[str, object]]:
        """Every migration as a dict: version, name, state, applied, applied_at, checksum, ..."""
        return [row.as_dict() for row in self.report().rows]

    def report(self) -> StatusReport:
        """Every migration's state; never runs migration code and never creates the database."""
        directory = discovery.without_duplicates(self._scan())
        applied = self._applied()
        rows = planning.status_rows(directory, applied or {})
        return StatusReport(self.db_path, applied is not None, tuple(rows))

    def validate(self, *, roundtrip: bool = False) -> list[Problem]:
        """Every problem with the files, the history against them, the database's integrity and
        schema (drift), the schema file, and hazards in pending migrations (warnings).

        Runs migrations, but only on databases in memory; ``roundtrip`` also proves each one
        reversible on a copy of the database. The database itself is only read.
        """
        from . import checks, loading, schema

        directory = self._scan()
        problems = [Problem(p.kind, p.reason, p.path, p.version) for p in directory.problems]
        loaded: dict[int, LoadedMigration] = {}
        for file in directory.migrations:
            try:
                loaded[file.version] = migration = loading.load(file)
            except MigrationFileError as exc:
                problems.append(Problem("load", exc.what, file.path, file.version))
                continue
            if migration.down is None:
                problems.append(
                    Problem("no-down", "has no down, so it cannot be rolled back; add one", file.path, file.version)
                )
        runnable = not problems  # replays need every file to load, and one file per version
        applied: dict[int, AppliedMigration] = {}
        live_schema: str | None = None
        copy: sqlite.MigrationConnection | None = None
        if self.db_path.exists():
            # One read transaction: history, schema and copy agree even while others migrate.
            with closing(self._open(create=False)) as connection, sqlite.read_transaction(connection):
                applied = self._read_history(connection)
                try:
                    problems += self._history_problems(connection, directory, applied)
                    problems += self._database_problems(connection)
                    live_schema = schema.snapshot(connection)
                    copy = checks.copy_of(connection) if runnable else None
                except sqlite3.Error as exc:
                    raise sqlite.database_error(exc, self.db_path) from exc
        with closing(copy) if copy else contextlib.nullcontext():
            if runnable and live_schema is not None:
                problems += self._drift(live_schema, loaded, applied)
            if runnable and self.schema_file.is_file():
                problems += checks.dump_file(self.schema_file, [loaded[v] for v in sorted(loaded)])
            if runnable:
                pending = [loaded[v] for v in sorted(loaded) if v not in applied]
                problems += checks.lint(copy, pending)
                # a pending migration that fails on the data is reported once, not again as a round trip
                if roundtrip and not any(p.kind == "fails" for p in problems):
                    done = [loaded[v] for v in sorted(loaded) if v in applied]
                    problems += checks.roundtrip(copy, done, pending)
        return problems

    def schema_text(self) -> str:
        """The database's normalised schema (tables, indexes, views, triggers)."""
        from . import schema

        with closing(self._open(create=False)) as connection:
            try:
                return schema.snapshot(connection)
            except sqlite3.Error as exc:
                raise sqlite.database_error(exc, self.db_path) from exc

    def backups(self) -> list[Backup]:
        """The backups of this database, newest first."""
        from . import backups

        return backups.listing(self.db_path)

    # -- changing ---------------------------------------------------------------------------

    def migrate(
        self, target: int | None = None, *, allow_out_of_order: bool = False, atomic: bool = False
    ) -> list[MigrationRun]:
        """Apply pending migrations in version order, up to ``target`` if given; return what ran.

        Every migration to run is loaded before the first one starts. Creates the database.
        With ``atomic``, all of them run in one transaction: all are applied or none.
        """
        directory = discovery.usable(self._scan())
        with self._writing(create=True) as session:
            plan = self._migrate_plan(session.connection, directory, target, allow_out_of_order)
            if atomic:
                for migration in plan:
                    if not migration.up.transactional:
                        raise PlanError(
                            "is not transactional, so it cannot run in an atomic batch",
                            where=str(migration.file.path),
                            hint="run without --atomic; nothing was applied",
                        )
            done: list[MigrationRun] = []
            if plan:
                with self._changing(session, done):
                    if atomic:
                        self._run_batch(session, [(m, "up") for m in plan], done)
                    else:
                        self._run_each(session, plan, "up", done)
            return done

    def rollback(
        self,
        steps: int | None = None,
        *,
        to: int | None = None,
        from_history: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> list[MigrationRun]:
        """Roll back the newest ``steps`` migrations (default 1), or all above version ``to``.

        Newest first; if one fails, those rolled back before it stay rolled back. With
        ``from_history``, a migration whose file is missing runs the source kept in the history:
        ``confirm`` sees what will run (a title and the whole source as stored, top-level code
        included) before anything runs, and refusing stops the rollback with PlanError.
        """
        _check_rollback_arguments(steps, to)
        directory = discovery.usable(self._scan())
        with self._writing(create=False) as session:
            plan = self._rollback_plan(session.connection, directory, steps, to, from_history, confirm)
            done: list[MigrationRun] = []
            if plan:
                with self._changing(session, done):
                    self._run_each(session, plan, "down", done)
            return done

    def redo(self) -> list[MigrationRun]:
        """Roll back the newest migration and apply it again, from its file as it is now.

        When it is transactional both happen in one transaction: if the up fails, it stays applied.
        """
        directory = discovery.usable(self._scan())
        with self._writing(create=False) as session:
            (migration,) = self._rollback_plan(session.connection, directory, 1, None, False)
            assert migration.down is not None
            done: list[MigrationRun] = []
            with self._changing(session, done):
                if migration.up.transactional and migration.down.transactional:
                    self._run_batch(session, [(migration, "down"), (migration, "up")], done)
                else:
                    self._run_each(session, [migration], "down", done)
                    self._run_each(session, [migration], "up", done)
            return done

    def dry_run_migrate(self, target: int | None = None, *, allow_out_of_order: bool = False) -> DryRun:
        """Rehearse ``migrate``: really run it, then undo it; the database file is left as it was."""
        directory = discovery.usable(self._scan())

        def plan(connection: sqlite.MigrationConnection) -> list[tuple[LoadedMigration, Direction]]:
            return [(m, "up") for m in self._migrate_plan(connection, directory, target, allow_out_of_order)]

        return self._dry_run(plan)

    def dry_run_rollback(
        self,
        steps: int | None = None,
        *,
        to: int | None = None,
        from_history: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> DryRun:
        """Rehearse ``rollback``: really run it, then undo it; the database file is left as it was."""
        _check_rollback_arguments(steps, to)
        directory = discovery.usable(self._scan())
        sqlite.check_path(self.db_path, create=False)

        def plan(connection: sqlite.MigrationConnection) -> list[tuple[LoadedMigration, Direction]]:
            plan = self._rollback_plan(connection, directory, steps, to, from_history, confirm)
            return [(m, "down") for m in plan]

        return self._dry_run(plan)

    def baseline(self, version: int) -> list[int]:
        """Record the migrations up to ``version`` as applied, without running them.

        For a database that existed before vcp-migrate. Refuses when the history already goes
        beyond ``version``. Returns the versions recorded.
        """
        directory = discovery.usable(self._scan())
        with self._writing(create=False) as session:
            connection = session.connection
            applied = self._read_history(connection)
            if version not in {m.version for m in directory.migrations}:
                raise PlanError(f"version {version} is not a migration in {directory.path}", hint="nothing was changed")
            beyond = sorted(v for v in applied if v > version)
            if beyond:
                raise PlanError(
                    f"the history already has version(s) above {version}: {', '.join(map(str, beyond))}",
                    where=str(self.db_path),
                    hint="baseline only adopts a database up to its current point; nothing was changed",
                )
            files = [m for m in directory.migrations if m.version <= version and m.version not in applied]
            try:
                with sqlite.transaction(connection):
                    history.prepare(connection)
                    for file in files:
                        history.record(connection, file, 0)
                    if self.user_version:
                        history.sync_user_version(connection)
            except sqlite3.Error as exc:
                raise sqlite.database_error(exc, self.db_path) from exc
            self._dump(session)
            return [file.version for file in files]

    def repair(
        self, versions: list[int] | None = None, *, confirm: Callable[[Repair], bool] | None = None
    ) -> list[int]:
        """Record the current checksum and source of modified applied migrations.

        ``confirm`` sees each one with its diff and says whether to record it. Returns the
        versions recorded; the database is not otherwise changed.
        """
        directory = discovery.usable(self._scan())
        with self._writing(create=False) as session:
            connection = session.connection
            chosen = [r for r in self._repairs(connection, directory, versions) if confirm is None or confirm(r)]
            try:
                with sqlite.transaction(connection):
                    history.prepare(connection)
                    for repair in chosen:
                        history.update(connection, repair.current)
            except sqlite3.Error as exc:
                raise sqlite.database_error(exc, self.db_path) from exc
            return [repair.current.version for repair in chosen]

    def restore(
        self, backup: str | os.PathLike[str] | None = None, *, confirm: Callable[[Backup], bool] | None = None
    ) -> tuple[Backup, Backup | None]:
        """Replace the database with a backup (the newest by default), under the run lock, with the
        backup's page size and journal mode.

        ``confirm`` sees the backup chosen (when it was taken, its version: every change since is
        lost) and says whether to go on (if not: VcpMigrateError, nothing changed); None goes on.
        Then a backup of the current state is taken, so a restore can itself be undone (it is
        deleted again if the restore fails). Refuses a file that is not a backup of this database.
        Returns (restored, safety copy or None).
        """
        from . import backups

        with self._writing(create=True) as session:
            # Chosen under the run lock: a run that held it may have pruned the newest backup.
            chosen = self._choose_backup(backup, session.connection)
            if confirm is not None and not confirm(chosen):
                raise VcpMigrateError(
                    "the restore was not confirmed", where=str(self.db_path), hint="nothing was changed"
                )
            created_folder = not os.path.lexists(backups.folder(self.db_path))
            safety = self._take_backup(session, always=True)
            try:
                note = backups.copy_into(chosen.path, session.connection, self.db_path)
            except BaseException as exc:
                if safety:  # the copy is one transaction: a failed one changed nothing to undo
                    backups.discard(safety, folder_created=created_folder)
                if isinstance(exc, sqlite3.Error):
                    raise sqlite.database_error(exc, self.db_path) from exc
                if isinstance(exc, OSError):
                    what = f"restore failed: {exc}"
                    raise DatabaseError(what, where=str(self.db_path), hint="nothing was changed") from None
                raise
            if note:
                self.observer.warning(note)
            self._dump(session)
            return chosen, safety

    def new(self, name: str, *, sql: bool = False) -> Path:
        """Create the next migration file with empty up and down; return its path. Never overwrites."""
        from . import scaffold

        snake = scaffold.normalise_name(name)
        files: tuple[MigrationFile, ...] = ()
        if self.migrations_dir.exists():
            files = discovery.without_duplicates(self._scan()).migrations
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
        try:
            self.migrations_dir.mkdir(exist_ok=True)
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(scaffold.template(snake, sql=sql))
        except FileExistsError:
            raise MigrationFileError("already exists", where=str(path), hint="nothing was overwritten") from None
        except OSError as exc:  # a read-only directory, or a file system with shorter names
            raise MigrationFileError(
                f"cannot be created: {exc.strerror}", where=str(path), hint="check the directory and the name"
            ) from None
        return path

    # -- planning -----------------------------------------------------------------------------

    def _migrate_plan(
        self,
        connection: sqlite.MigrationConnection,
        directory: Directory,
        target: int | None,
        allow_out_of_order: bool,
    ) -> list[LoadedMigration]:
        applied = self._read_history(connection)
        for row in planning.status_rows(directory, applied):
            if row.state == "missing":
                self.observer.warning(
                    f"version {row.version} ({row.name}) is applied but its file is missing from {directory.path}"
                )
        files = planning.plan_migrate(directory, applied, target=target, allow_out_of_order=allow_out_of_order)
        return self._load(files, "up")

    def _rollback_plan(
        self,
        connection: sqlite.MigrationConnection,
        directory: Directory,
        steps: int | None,
        to: int | None,
        from_history: bool,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> list[LoadedMigration]:
        applied = self._read_history(connection)
        plan = planning.plan_rollback(directory, applied, steps=steps, to=to, from_history=from_history)
        files = [self._from_history(connection, i, confirm) if isinstance(i, AppliedMigration) else i for i in plan]
        loaded = self._load(files, "down")
        for file in files:  # said only once the rollback is sure to run
            if file.checksum != applied[file.version].checksum:
                self.observer.warning(f"{file.path}: changed since it was applied; rolling back with its current down")
        return loaded

    def _from_history(
        self, connection: sqlite.MigrationConnection, row: AppliedMigration, confirm: Callable[[str, str], bool] | None
    ) -> MigrationFile:
        """The migration as it was applied, rebuilt from the history, once the user has seen it.

        This (rollback --from-history) is the only path on which code kept in a database runs.
        Loading a Python migration runs its whole module, so the whole source is shown, not only
        its down.
        """
        source = history.applied_source(connection, row.version)
        if source is None or row.file is None:
            raise PlanError(
                f"version {row.version} ({row.name}) has no source in the history (applied before sources were kept)",
                where=str(self.db_path),
                hint="restore its file to roll it back; nothing was changed",
            )
        file = MigrationFile(row.version, row.name, Path(f"{self.db_path}:history/{row.file}"), row.checksum, source)
        title = f"source of {row.file}, as kept in the history of {self.db_path} (all of it runs)"
        code = source.decode("utf-8", errors="replace")
        if confirm is None:
            self.observer.showing(title, code)
        elif not confirm(title, code):
            raise PlanError(
                f"running version {row.version} ({row.file}) from the history was not confirmed",
                where=str(self.db_path),
                hint="nothing was rolled back",
            )
        return file

    def _load(self, plan: list[MigrationFile], direction: Direction) -> list[LoadedMigration]:
        from . import loading

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

    def _repairs(
        self, connection: sqlite.MigrationConnection, directory: Directory, versions: list[int] | None
    ) -> list[Repair]:
        applied = self._read_history(connection)
        modified = {
            row.version: row
            for row in planning.status_rows(directory, applied)
            if row.state == "modified" and row.version is not None
        }
        for version in versions or []:
            if version not in modified:
                raise PlanError(
                    f"version {version} is not an applied migration whose file changed", hint="nothing was changed"
                )
        repairs = []
        for version in versions or sorted(modified):
            row = modified[version]
            current = next(m for m in directory.migrations if m.version == version)
            assert row.applied is not None
            before = history.applied_source(connection, version)
            repairs.append(Repair(current, row.applied, _source_diff(before, current)))
        return repairs

    def _choose_backup(self, backup: str | os.PathLike[str] | None, live: sqlite.MigrationConnection) -> Backup:
        from datetime import datetime, timezone

        from . import backups

        found = backups.listing(self.db_path)
        if backup is None:
            if not found:
                raise DatabaseError(
                    f"has no backups in {backups.folder(self.db_path)}",
                    where=str(self.db_path),
                    hint="nothing was changed",
                )
            chosen = found[0].path
        else:
            chosen = Path(backup)
            if not chosen.exists() and (backups.folder(self.db_path) / chosen).exists():
                chosen = backups.folder(self.db_path) / chosen
        version = self._check_backup_of_this_database(chosen, live)
        listed = next((b for b in found if b.path.resolve() == chosen.resolve()), None)
        if listed:
            return listed
        # A file named otherwise: its own time stands for when it was taken.
        info = chosen.stat()
        taken_at = datetime.fromtimestamp(info.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return Backup(chosen, taken_at, version, info.st_size)

    def _check_backup_of_this_database(self, path: Path, live: sqlite.MigrationConnection) -> int:
        """Raise DatabaseError unless ``path`` is a sound backup of this database; return its version."""
        from . import backups

        where = str(path)
        if not path.is_file():
            raise DatabaseError("is not a file", where=where, hint="pick one from 'vcp-migrate backups'")
        try:
            with closing(sqlite.open_database(path, create=False, timeout=self.lock_timeout)) as connection:
                if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise DatabaseError("is corrupt", where=where, hint="pick another backup; nothing was changed")
                backup_id = history.database_id(connection)
                version = history.highest(connection)
        except DatabaseError as exc:
            raise DatabaseError(exc.what, where=where, hint="pick another backup; nothing was changed") from None
        try:
            live_id = history.database_id(live)
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self.db_path) from exc
        if backup_id and live_id:
            if backup_id != live_id:
                raise DatabaseError(
                    f"is a backup of another database, not of {self.db_path}", where=where, hint="nothing was changed"
                )
            return version
        in_folder = path.resolve().parent == backups.folder(self.db_path).resolve() and backups.is_backup_name(path)
        if not in_folder:
            raise DatabaseError(
                f"is not a backup of {self.db_path}: it is not in {backups.folder(self.db_path)}"
                " and carries no matching database id",
                where=where,
                hint="nothing was changed",
            )
        return version

    # -- running --------------------------------------------------------------------------

    def _runner(self, session: Session) -> Runner:
        from .execution import Runner

        return Runner(session, user_version=self.user_version, warn=self.observer.warning)

    def _run_each(
        self, session: Session, plan: list[LoadedMigration], direction: Direction, done: list[MigrationRun]
    ) -> None:
        """Run each migration in its own transaction; ``done`` grows as each one commits."""
        runner = self._runner(session)
        for index, migration in enumerate(plan, 1):
            self.observer.started(migration.file, direction, index, len(plan))
            outcome = runner.one(migration, direction, earlier=len(done))
            if outcome.error:
                raise outcome.error
            done.append(outcome.run)
            self.observer.finished(outcome.run)

    def _run_batch(
        self, session: Session, plan: list[tuple[LoadedMigration, Direction]], done: list[MigrationRun]
    ) -> None:
        """Run the whole plan in one transaction; ``done`` gets every run once it has committed."""
        self.observer.started(plan[0][0].file, plan[0][1], 1, len(plan))
        outcomes = self._runner(session).batch(plan, commit=True)
        for outcome in outcomes:
            if outcome.error:
                raise outcome.error
        for outcome in outcomes:
            done.append(outcome.run)
            self.observer.finished(outcome.run)

    @contextmanager
    def _changing(self, session: Session, done: list[MigrationRun]) -> Iterator[None]:
        """Back up before a change. Afterwards, if anything may have changed, keep the backup and
        prune old ones, and write the schema file if a migration was committed; if nothing can have
        changed, leave the disk as it was."""
        from . import backups

        created_folder = not os.path.lexists(backups.folder(self.db_path))
        backup = self._take_backup(session)
        connection = session.connection
        try:
            yield
        finally:
            if done:
                self._dump(session)
            # The session replaces its connection after a step that ran outside our transaction,
            # or ran Python code (which can end it): what such a step did before failing stays.
            # Nothing else was committed if none was done, so the backup says whether it changed.
            changed = bool(done) or (backup is not None and session.connection is not connection)
            if changed and backup and not done:
                try:
                    changed = backups.differs(self.db_path, backup.path, self.lock_timeout)
                except (OSError, sqlite3.Error):
                    changed = True  # cannot tell: keep it
                if changed:
                    self.observer.warning(
                        f"{backup.path}: kept: a migration changed the database before the run failed,"
                        " outside a transaction; restore this backup to go back"
                    )
            if backup and changed:
                backups.prune(self.db_path, self.keep_backups)
            elif backup:
                backups.discard(backup, folder_created=created_folder)

    def _dry_run(
        self, make_plan: Callable[[sqlite.MigrationConnection], list[tuple[LoadedMigration, Direction]]]
    ) -> DryRun:
        """Run a plan for real, then throw the result away.

        Transactional migrations run on the database inside one transaction that is rolled back.
        If any is not transactional, everything runs on a throw-away copy made with the backup API
        (or, for a database that does not exist yet, on an empty one in memory).
        """
        from .execution import Session

        if not self.db_path.exists():
            sqlite.check_path(self.db_path, create=True)
            session = Session(Path(":memory:"), self.lock_timeout, sqlite.memory_database(), rehearsing=True)
            with closing(session):
                ran_in = f"an empty database in memory ({self.db_path} does not exist yet)"
                return self._rehearse_each(session, make_plan(session.connection), ran_in)
        with self._writing(create=False) as session:
            plan = make_plan(session.connection)
            session.rehearsing = session.connection.rehearsing = True
            if all(m.step(d).transactional for m, d in plan):
                return self._rehearse_in_place(session, plan)
            import tempfile

            _remove_stale_scratch(self.db_path)
            with tempfile.TemporaryDirectory(
                dir=self.db_path.absolute().parent, prefix=_scratch_prefix(self.db_path)
            ) as scratch:
                copy = Path(scratch) / self.db_path.name
                with closing(sqlite3.connect(copy)) as target:
                    session.connection.backup(target)
                copied = Session(copy, self.lock_timeout, rehearsing=True)
                with closing(copied):
                    return self._rehearse_each(copied, plan, "a throw-away copy made with the backup API")

    def _rehearse_in_place(self, session: Session, plan: list[tuple[LoadedMigration, Direction]]) -> DryRun:
        from . import schema

        before = schema.snapshot(session.connection)
        after: list[str] = []
        outcomes = self._runner(session).batch(
            plan, commit=False, capture=True, inspect=lambda connection: after.append(schema.snapshot(connection))
        )
        ran_in = "a transaction that was rolled back"
        return DryRun(tuple(map(_rehearsal, outcomes)), before, after[0] if after else before, ran_in)

    def _rehearse_each(self, session: Session, plan: list[tuple[LoadedMigration, Direction]], ran_in: str) -> DryRun:
        from . import schema

        before = schema.snapshot(session.connection)
        runner = self._runner(session)
        outcomes: list[Outcome] = []
        for migration, direction in plan:
            outcomes.append(runner.one(migration, direction, earlier=len(outcomes), capture=True))
            if outcomes[-1].error:
                break
        after = schema.snapshot(session.connection)
        return DryRun(tuple(map(_rehearsal, outcomes)), before, after, ran_in)

    # -- the database -----------------------------------------------------------------------

    def _open(self, *, create: bool) -> sqlite.MigrationConnection:
        return sqlite.open_database(self.db_path, create=create, timeout=self.lock_timeout)

    def _applied(self) -> dict[int, AppliedMigration] | None:
        """The history, or None when the database does not exist (it is never created here)."""
        if not self.db_path.exists() and not self.db_path.is_symlink():
            return None
        with closing(self._open(create=False)) as connection:
            return self._read_history(connection)

    def _read_history(self, connection: sqlite3.Connection) -> dict[int, AppliedMigration]:
        try:
            return history.read(connection)
        except sqlite3.Error as exc:
            raise sqlite.database_error(exc, self.db_path) from exc
        except DatabaseError as exc:
            exc.where = exc.where or str(self.db_path)
            raise

    def _history_problems(
        self, connection: sqlite.MigrationConnection, directory: Directory, applied: dict[int, AppliedMigration]
    ) -> list[Problem]:
        problems = []
        highest = max(applied, default=0)
        for row in planning.status_rows(directory, applied):
            if row.state == "modified" and row.applied and row.path:
                message = (
                    f"changed since it was applied on {row.applied.applied_at};"
                    " restore it and put the change in a new migration, or accept a reviewed edit with repair"
                )
                current = next(m for m in directory.migrations if m.version == row.version)
                before = history.applied_source(connection, current.version)
                problems.append(Problem("modified", message, row.path, row.version, diff=_source_diff(before, current)))
            elif row.state == "missing":
                message = f"version {row.version} ({row.name}) is applied but its file is missing"
                problems.append(Problem("missing", message, self.migrations_dir, row.version))
            elif row.state == "out-of-order":
                message = f"pending below the highest applied version {highest}; migrate needs --allow-out-of-order"
                problems.append(Problem("out-of-order", message, row.path, row.version))
        return problems

    def _drift(
        self, live_schema: str, loaded: dict[int, LoadedMigration], applied: dict[int, AppliedMigration]
    ) -> list[Problem]:
        """Replay the files of the applied migrations and compare with the live schema."""
        from . import checks

        missing = sorted(v for v in applied if v not in loaded)
        if missing:
            message = (
                f"cannot check for drift: the file of applied version(s) {', '.join(map(str, missing))} is missing"
            )
            return [Problem("drift", message, self.migrations_dir, severity="warning")]
        return checks.drift(live_schema, [loaded[v] for v in sorted(applied)], self.db_path)

    def _database_problems(self, connection: sqlite.MigrationConnection) -> list[Problem]:
        integrity = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        violations = sqlite.foreign_key_violations(connection)
        problems = [
            Problem("integrity", f"integrity_check: {line}", self.db_path) for line in integrity if line != "ok"
        ]
        return problems + [Problem("foreign-key", f"foreign_key_check: {v}", self.db_path) for v in violations]

    def _scan(self) -> Directory:
        """The migrations directory; the schema file is not a migration even when it lives there."""
        inside = self.schema_file.absolute().parent == self.migrations_dir.absolute()
        return discovery.scan(self.migrations_dir, ignore=[self.schema_file.name] if inside else [])

    def _dump(self, session: Session) -> None:
        """Write the schema file after a change; a failure to write it is a warning, not an error
        (the change itself is committed)."""
        from . import schema

        if not self.dump_schema:
            return
        try:
            text = schema.dump_text(session.connection, history.highest(session.connection))
            if self.schema_file.is_file() and self.schema_file.read_text(encoding="utf-8") == text:
                return
            partial = self.schema_file.with_name(f".{self.schema_file.name}.partial")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, self.schema_file)
        except (OSError, sqlite3.Error) as exc:
            self.observer.warning(f"{self.schema_file}: the schema file could not be written: {exc}")

    def _take_backup(self, session: Session, *, always: bool = False) -> Backup | None:
        """Back up the database before a change, unless disabled or there is nothing to keep."""
        from . import backups

        if not (self.backup or always) or not session.existed:
            return None
        backup = backups.take(session.connection, self.db_path, history.highest(session.connection))
        self.observer.backed_up(backup)
        return backup

    @contextmanager
    def _writing(self, *, create: bool) -> Iterator[Session]:
        """Hold the run lock and a write connection; remove a database this run created empty."""
        from .execution import Session
        from .lock import RunLock

        sqlite.check_path(self.db_path, create=create)
        with RunLock(self.db_path, self.lock_timeout, create=create) as lock:
            assert lock.identity is not None
            if lock.identity.links > 1:
                self.observer.warning(
                    f"{self.db_path}: the database file has {lock.identity.links} hard links; runs through"
                    " a name in another directory take another run lock and are not serialised with this"
                    " one, and SQLite documents hard links to a database as a way to corrupt it"
                    " (keep one name)"
                )
            try:
                session = Session(self.db_path, self.lock_timeout)
                session.existed = lock.identity.size > 0
                session.before_commit = lock.verify
                try:
                    if session.existed:
                        sqlite.require_writable(session.connection, self.db_path)
                    yield session
                finally:
                    session.close()
            finally:
                lock.remove_if_created_empty()


def _check_rollback_arguments(steps: int | None, to: int | None) -> None:
    if steps is not None and to is not None:
        raise UsageError("give either steps or to, not both")
    if steps is not None and steps < 1:
        raise UsageError(f"steps must be 1 or more, not {steps}")
    if to is not None and to < 0:
        raise UsageError(f"to must be a version or 0, not {to}")


def _scratch_prefix(database: Path) -> str:
    """The name a dry run's scratch folder starts with; tempfile adds 8 characters of [a-z0-9_]."""
    return f".vcp-dry-run.{database.name}."


def _remove_stale_scratch(database: Path) -> None:
    """Remove scratch folders a killed dry run of this database left; the caller holds its run lock.

    Matched by the exact name tempfile makes, so the scratch of ``staging-app.db`` (or of
    ``app.db.x``) is never taken for the scratch of ``app.db``. Links are never followed.
    """
    import re
    import shutil

    pattern = re.compile(re.escape(_scratch_prefix(database)) + r"[a-z0-9_]{8}")
    with os.scandir(database.absolute().parent) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _rehearsal(outcome: Outcome) -> Rehearsal:
    file = outcome.migration.file
    error = outcome.error
    return Rehearsal(
        file.version,
        file.name,
        file.path,
        outcome.direction,
        outcome.statements,
        outcome.duration_ms,
        error.what if error else None,
    )


def _source_diff(before: bytes | None, current: MigrationFile) -> str:
    import difflib

    if before is None:
        return "(the applied source was not kept: it was applied before vcp-migrate kept sources)"
    lines = difflib.unified_diff(
        before.decode("utf-8", errors="replace").splitlines(),
        current.source.decode("utf-8", errors="replace").splitlines(),
        fromfile=f"applied {current.path.name}",
        tofile=str(current.path),
        lineterm="",
    )
    return "\n".join(lines)
