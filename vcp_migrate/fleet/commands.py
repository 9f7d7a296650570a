"""What each command does on one database of a fleet run: the single command's code, with what
it found and committed kept by a silent observer; its result, and the kind of a failure."""

from __future__ import annotations

import hashlib
from contextlib import closing
from typing import TYPE_CHECKING

from ..commands import context
from ..errors import (
    DatabaseError,
    LockTimeout,
    MigrationFailed,
    MigrationFileError,
    PlanError,
    VcpMigrateError,
    setting,
)
from ..observer import Observer
from .results import MIGRATED, NOTHING_TO_ROLL_BACK, ROLLED_BACK, UP_TO_DATE, DatabaseResult

if TYPE_CHECKING:
    from ..models import MigrationRun
    from .worker import Job


class Collector(Observer):
    """Keeps the version and id one database's run found, what it committed, and its warnings;
    says nothing."""

    wants_history = True

    def __init__(self) -> None:
        self.runs: list[MigrationRun] = []
        self.warnings: list[str] = []
        self.version: int | None = None
        self.database_id: str | None = None

    def found(self, version: int, database_id: str | None) -> None:
        self.version, self.database_id = version, database_id

    def finished(self, run: MigrationRun) -> None:
        self.runs.append(run)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def reached(before: int | None, runs: list[MigrationRun]) -> int | None:
    """The version a database is at after ``runs``, from the version ``before`` them."""
    ups = [run.version for run in runs if run.direction == "up"]
    return max([before or 0, *ups]) if ups else before


def _migrate(job: Job, settings: context.Settings, seen: Collector, result: DatabaseResult) -> DatabaseResult:
    from ..commands import migrate

    if not job.dry_run:
        runs = migrate.migrate(settings, job.target, allow_out_of_order=job.allow_out_of_order, atomic=job.atomic)
        return result._replace(state=MIGRATED if runs else UP_TO_DATE, version_after=reached(seen.version, runs))
    from ..commands import dry_run

    report = dry_run.dry_run_migrate(settings, job.target, allow_out_of_order=job.allow_out_of_order)
    failed = report.failed
    if failed is not None:
        raise MigrationFailed(
            f"version {failed.version} ({failed.name}) would fail: {failed.error}",
            where=str(settings.db_path),
            version=failed.version,
            hint="dry run: nothing was changed",
        )
    versions = [rehearsal.version for rehearsal in report.rehearsals]
    after = max([seen.version or 0, *versions]) if versions else seen.version
    return result._replace(state=MIGRATED if versions else UP_TO_DATE, version_after=after)


def _rollback(job: Job, settings: context.Settings, seen: Collector, result: DatabaseResult) -> DatabaseResult:
    from ..commands import current, rollback

    # Nothing applied fails as the single command fails ("nothing to roll back"), but --to with
    # nothing above it is nothing to do, as there.
    try:
        runs = rollback.rollback(settings, job.steps, job.to, from_history=False, confirm=None)
    except PlanError as exc:
        if exc.hint is None or setting("from_history", True) not in exc.hint:
            raise
        # A fleet has no from_history: it never runs code kept in its databases, which the single
        # command shows before it runs it.
        raise PlanError(
            exc.what,
            where=exc.where,
            hint=f"restore the file, or roll this database back on its own, not in a fleet, with"
            f" {setting('from_history', True)}, which shows the down kept in it before running it; its history"
            " row was kept and nothing was changed",
        ) from None
    if not runs:
        return result._replace(state=NOTHING_TO_ROLL_BACK, version_after=seen.version)
    return result._replace(state=ROLLED_BACK, version_after=current.version(settings))


def _status(job: Job, settings: context.Settings, seen: Collector, result: DatabaseResult) -> DatabaseResult:
    from .. import schema
    from ..commands import status

    report = status.report(settings)
    problems: list[str] = sorted({row.state for row in report.rows if row.state not in ("applied", "pending")})
    if report.unmanaged:
        problems.append("no-history")
    with closing(context.open_existing(settings)) as connection, context.naming_the_database(settings):
        fingerprint = hashlib.sha256(schema.snapshot(connection).encode()).hexdigest()[:16]
    return result._replace(
        version_after=seen.version, pending=len(report.pending), problems=tuple(problems), fingerprint=fingerprint
    )


def _validate(job: Job, settings: context.Settings, seen: Collector, result: DatabaseResult) -> DatabaseResult:
    from ..commands import validate

    problems = validate.validate(settings, roundtrip=job.roundtrip)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        raise _ValidateFailed("; ".join(str(p) for p in errors[:3]) + more)
    warnings = tuple(f"{p.severity}: {p}" for p in problems if p.severity != "error")
    return result._replace(version_after=seen.version, problems=warnings)


class _ValidateFailed(VcpMigrateError):
    """Validate found errors in this database."""


# What each command does on one database, from the fleet job's arguments.
COMMANDS = {"migrate": _migrate, "rollback": _rollback, "status": _status, "validate": _validate}


def failure_kind(exc: BaseException) -> str:
    """The kind of a database's failure, as the fleet's results and report name it."""
    if isinstance(exc, LockTimeout) or (isinstance(exc, MigrationFailed) and "database is locked" in str(exc)):
        return "locked"  # a name or a table called "locked" is no lock
    if isinstance(exc, MigrationFailed):
        return "migration"
    if isinstance(exc, MigrationFileError):
        return "files"
    if isinstance(exc, PlanError):
        return "plan"
    if isinstance(exc, _ValidateFailed):
        return "invalid"
    if isinstance(exc, DatabaseError):
        text = str(exc)
        return (
            "missing"
            if "does not exist" in text
            else "not-a-database"
            if "not a SQLite database" in text
            else "database"
        )
    return "error"
