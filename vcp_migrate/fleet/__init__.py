"""Fleets: one command over many databases (one per customer, per book, per shard), in parallel.

The migrations are scanned, loaded and checked once, before any database is touched; then
worker processes run the command on database after database, each exactly as the single
command would, and the results come back one per database, with a summary.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing, suppress
from pathlib import Path
from typing import NamedTuple

from .. import closed_output, discovery, history, loading, schema_target, sqlite
from ..commands import context
from ..errors import DatabaseError, PlanError, UsageError, VcpMigrateError, setting
from ..models import Directory
from ..observer import Observer
from ..planning import short_list
from . import pool, targets
from .pool import Policy, Report
from .results import MIGRATED, ROLLED_BACK, DatabaseResult, Summary, file_key, mark_drifted, summarize, write_report
from .worker import Job

__all__ = [
    "DatabaseResult",
    "Fleet",
    "FleetCallbackFailed",
    "FleetInterrupted",
    "FleetRun",
    "Policy",
    "Summary",
    "write_report",
]


class FleetRun(NamedTuple):
    """One result per database, in the order given, and their summary."""

    results: list[DatabaseResult]
    summary: Summary


class FleetInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run: those in flight finished (unless ``stopped_in_flight``: Ctrl-C again
    stopped them, and they are "failed", interrupted), the others are "not-started" in ``run``."""

    def __init__(self, run: FleetRun, stopped_in_flight: bool = False) -> None:
        super().__init__()
        self.run = run
        self.stopped_in_flight = stopped_in_flight


class FleetCallbackFailed(VcpMigrateError):
    """``on_result`` raised (the exception is the ``__cause__``): the run stopped as after a
    failure, those in flight finished (not shown to it), the schema file was written for what
    committed; ``run`` has every database's result."""

    def __init__(self, run: FleetRun, error: Exception, path: str) -> None:
        super().__init__(
            f"on_result raised {type(error).__name__}: {error}, given this database's result; no database was"
            " started after it, those in flight finished",
            where=path,
            hint="this error's run has every database's result, and the schema file was written for what committed;"
            " fix on_result and run again",
        )
        self.run = run


class Fleet:
    """Runs migrate, rollback, status or validate on many databases with one migrations directory.

    Settings are those of MigrationManager, but backups are off unless asked for (``backup`` or
    ``backup_dir``: one folder for all, each database's backups named after it), a database is
    never created, and the schema file is written once for the fleet, from one database.
    ``jobs`` is the number of worker processes (default: the number of cores; 1 runs here).
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        migrations_dir: str | os.PathLike[str] = "migrations",
        *,
        lock_timeout: float = 30.0,
        backup: bool = False,
        keep_backups: int = 5,
        backup_dir: str | os.PathLike[str] | None = None,
        user_version: bool = True,
        schema_file: str | os.PathLike[str] | None = None,
        dump_schema: bool = True,
        allow_existing: bool = False,
        observer: Observer | None = None,
    ) -> None:
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise UsageError(
                f"paths must be a list of database paths, not one {type(paths).__name__} ({paths!r})",
                hint="give [path] for one database",
            )
        self.paths = targets.files_only(context.path_text("a database path", path) for path in paths)
        self.observer = observer or Observer()
        context.flags(backup=backup, dump_schema=dump_schema)  # the others are checked with the settings
        directory = context.path_argument("migrations_dir", migrations_dir)
        self.schema_file = (
            context.file_argument("schema_file", schema_file) if schema_file is not None else directory / "schema.sql"
        )
        self.dump_schema = dump_schema
        self.settings = context.checked(
            context.Settings(
                Path("."), directory, lock_timeout, backup or backup_dir is not None, keep_backups, user_version,
                self.schema_file, False, Observer(), create=False, allow_existing=allow_existing,
                backup_dir=context.path_argument("backup_dir", backup_dir) if backup_dir is not None else None,
            )
        )  # fmt: skip

    def migrate(
        self,
        target: int | None = None,
        *,
        jobs: int | None = None,
        allow_out_of_order: bool = False,
        atomic: bool = False,
        dry_run: bool = False,
        keep_going: bool = False,
        max_failures: int | None = None,
        canary: int = 0,
        on_result: Report | None = None,
    ) -> FleetRun:
        """Apply pending migrations to every database. By default no database is started after
        the first failure (those in flight finish); ``keep_going`` runs them all, ``max_failures``
        stops after that many, ``canary`` runs that many first and stops if any of them fails.
        ``on_result`` sees each database's result as it comes."""
        policy = _policy(keep_going, max_failures, canary)
        context.flags(allow_out_of_order=allow_out_of_order, atomic=atomic, dry_run=dry_run)
        context.whole_number("target", target)
        job = Job("migrate", self.settings, (), target, allow_out_of_order=allow_out_of_order, atomic=atomic,
                  dry_run=dry_run)  # fmt: skip
        return self._run(job, jobs, policy, on_result, load=True, dump=not dry_run)

    def rollback(
        self,
        steps: int | None = None,
        *,
        to: int | None = None,
        jobs: int | None = None,
        keep_going: bool = False,
        max_failures: int | None = None,
        canary: int = 0,
        on_result: Report | None = None,
    ) -> FleetRun:
        """Roll back the ``steps`` migrations applied last (default 1), or all above ``to``, on
        every database, as ``MigrationManager.rollback`` does; when to stop as for ``migrate``."""
        policy = _policy(keep_going, max_failures, canary)
        from ..commands.rollback import check_arguments

        check_arguments(steps, to)
        job = Job("rollback", self.settings, (), steps=steps, to=to)
        return self._run(job, jobs, policy, on_result, load=True, dump=True)

    def status(self, *, jobs: int | None = None, on_result: Report | None = None) -> FleetRun:
        """Every database's version, pending count and problems; "drifted" marks a database whose
        schema differs from most databases at its version. Never changes a database."""
        job = Job("status", self.settings, ())
        try:
            run = self._run(job, jobs, Policy(max_failures=None), on_result, load=False, dump=False)
        except (FleetInterrupted, FleetCallbackFailed) as stopped:  # among those read before it stopped
            stopped.run = FleetRun(mark_drifted(stopped.run.results), stopped.run.summary)
            raise
        return FleetRun(mark_drifted(run.results), run.summary)

    def validate(
        self, *, roundtrip: bool = False, jobs: int | None = None, on_result: Report | None = None
    ) -> FleetRun:
        """Validate every database (see MigrationManager.validate); a database with errors fails."""
        context.flags(roundtrip=roundtrip)
        job = Job("validate", self.settings, (), roundtrip=roundtrip)
        return self._run(job, jobs, Policy(max_failures=None), on_result, load=False, dump=False)

    def _run(
        self, job: Job, jobs: int | None, policy: Policy, on_result: Report | None, *, load: bool, dump: bool
    ) -> FleetRun:
        started = time.perf_counter()
        context.whole_number("jobs", jobs)
        if jobs is not None and jobs < 1:
            raise UsageError(f"{setting('jobs')} must be 1 or more, not {jobs}")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = jobs if jobs is not None else cores
        if workers > (most := _JOBS_A_CORE * cores):  # before anything is loaded (a Python migration's code)
            raise UsageError(
                f"{setting('jobs')} {workers} is more worker processes than {_JOBS_A_CORE} a core",
                hint=f"give at most {most} on this machine; nothing was changed",
            )
        changing = job.command in ("migrate", "rollback") and not job.dry_run
        if self.settings.backup and self.settings.backup_dir is not None and changing:
            _check_backup_dir(self.settings.backup_dir)
        paths = targets.once(self.paths)
        if dump and self.dump_schema:  # a target, its journal or a migration is never overwritten by it
            schema_target.check(self.schema_file, self.settings.migrations_dir, _journaled(self.schema_file, paths))
        aside = closed_output.guarded()  # the command line's: from Python, prints stay where they go
        directory = context.scan(self.settings)
        if job.command != "status":  # status shows a file it cannot use as invalid, as the single command does
            directory = discovery.usable(directory)
        _require_known(job, directory)
        loaded: dict[tuple[Path, str], loading.LoadedMigration] = {}
        if load:  # a bad migration file stops the fleet before any database is touched
            with closed_output.printing_aside(aside):  # what a module prints as it loads: not among the results
                loading.load_plan(list(directory.migrations), "up", loaded)
        checksums = tuple((migration.version, migration.checksum) for migration in directory.migrations)
        job = job._replace(settings=self.settings._replace(directory=directory), checksums=checksums, aside=aside)
        raised: pool.ReportRaised | None = None
        try:
            results = pool.run(job, paths, workers, policy, on_result or _ignore, loaded)
        except pool.ReportRaised as stopped:  # the run stopped: what it did is kept, then said
            results, raised = stopped.results, stopped
        except pool.Interrupted as stopped:
            seconds = time.perf_counter() - started
            run = FleetRun(stopped.results, summarize(stopped.results, seconds))
            if dump and self.dump_schema:  # what finished is committed, and a rerun may have nothing to do
                with suppress(KeyboardInterrupt):  # Ctrl-C again: the run stopped is what is said
                    self._write_schema(stopped.results)
            raise FleetInterrupted(run, stopped.stopped_in_flight) from None
        summary = summarize(results, time.perf_counter() - started)
        for shared, sharing in summary.shared_ids.items():
            listed = short_list(sharing, most=5)
            self.observer.warning(
                f"{len(sharing)} databases share the database id {shared} (cloned from one template?): {listed};"
                " their backups are told apart by file, never by id"
            )
        if dump and self.dump_schema:
            self._write_schema(results)
        if raised is not None:
            raise FleetCallbackFailed(FleetRun(results, summary), raised.error, raised.path) from raised.error
        return FleetRun(results, summary)

    def _write_schema(self, results: list[DatabaseResult]) -> None:
        """Write the schema file once, from the first database changed to the highest version; a
        database that failed after committing migrations changed too, as the single command says."""
        changed = [
            r for r in results if (r.state in (MIGRATED, ROLLED_BACK) or r.applied) and r.version_after is not None
        ]
        if not changed:
            return
        highest = max(r.version_after or 0 for r in changed)
        source = next(r for r in changed if r.version_after == highest)
        if (why := schema_target.refusal(self.schema_file, self.settings.migrations_dir, None)) is not None:
            self.observer.warning(schema_target.skipped(self.schema_file, why))
            return
        from .. import schema

        try:
            with closing(
                sqlite.open_database(Path(source.path), create=False, timeout=self.settings.lock_timeout)
            ) as c:
                schema.write_dump(self.schema_file, c, history.highest(c))
        except (OSError, sqlite3.Error, DatabaseError) as exc:
            self.observer.warning(schema.not_written(self.schema_file, exc))


def _journaled(schema_file: Path, paths: list[str]) -> Path | None:
    """The database of the fleet whose journal, write-ahead log or shared memory the schema file
    would be (SQLite would delete it, or read it as one), for schema_target to refuse; None if
    none. Only a file so named is compared with the databases."""
    base, _, kind = schema_file.name.rpartition("-")
    if kind not in ("journal", "wal", "shm") or not base:
        return None
    key = file_key(str(schema_file.with_name(base)))
    return next((Path(path) for path in paths if file_key(path) == key), None)


def _require_known(job: Job, directory: Directory) -> None:
    """A version to migrate or roll back to that no migration file has is refused once, before
    any database is touched, as the single command refuses it (exit 1), not by each database in
    turn. Rollback's 0 (every migration) is no migration's, and a version below the newest file
    may be in a database's history with its file gone (squashed into a baseline): the fleet reads
    no database first, so each one decides, as the single command does."""
    version = job.target if job.command == "migrate" else job.to if job.command == "rollback" else None
    known = [migration.version for migration in directory.migrations]
    if version is None or version in known or (job.command == "rollback" and version < max(known, default=1)):
        return
    raise PlanError(
        f"{setting('target' if job.command == 'migrate' else 'to', version)} is not a migration in {directory.path}",
        hint=f"known versions: {short_list(known) or 'none'}; no database was touched",
    )


_JOBS_A_CORE = 4  # more would only compete for the cores (and 10,000 would start 10,000 processes)


def _check_backup_dir(folder: Path) -> None:
    """A shared backups folder that cannot be one fails the run before it starts, not each
    database in turn: a link or something other than a folder, or a new folder whose parent
    does not exist (only the folder itself is made)."""
    if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
        why = "is a link or not a folder, which backups never go through"
    elif not os.path.lexists(folder) and not folder.absolute().parent.is_dir():
        why = "cannot be made: the folder it would go in does not exist"
    else:
        return
    raise UsageError(
        f"{setting('backup_dir')} {why}",
        where=str(folder),
        hint="name a folder (or create its parent); nothing was changed",
    )


def _policy(keep_going: bool, max_failures: int | None, canary: int) -> Policy:
    context.flags(keep_going=keep_going)
    context.whole_number("max_failures", max_failures)
    context.whole_number("canary", canary)
    if max_failures is not None and max_failures < 1:
        raise UsageError(f"max_failures must be 1 or more, not {max_failures}", hint="nothing was changed")
    if canary < 0:
        raise UsageError(f"canary must be 0 or more, not {canary}", hint="nothing was changed")
    return Policy(None if keep_going and max_failures is None else max_failures or 1, canary)


def _ignore(result: DatabaseResult) -> None:
    return None
