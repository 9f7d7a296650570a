"""Dry runs of migrate and rollback: run the plan for real, report what it did, throw it away.

Transactional SQL migrations run on the database inside one transaction that is rolled back. If
any migration is Python or not transactional, everything runs on a throw-away copy made with the
backup API (or, for a database that does not exist yet, on an empty one in memory). Every session here
rehearses: nothing it runs may write another file.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from .. import copying, discovery, schema, sqlite
from ..database import Connection
from ..execution import Outcome
from ..loading import LoadedMigration, SqlStep
from ..models import Direction, DryRun, Rehearsal
from ..session import Session
from . import frame, migrate, rollback
from .context import Settings, copy_for_checks, exists, scan, whole_number

Plan = list[tuple[LoadedMigration, Direction]]


def dry_run_migrate(settings: Settings, target: int | None, *, allow_out_of_order: bool) -> DryRun:
    """Rehearse ``migrate``."""
    whole_number("target", target)
    directory = discovery.usable(scan(settings))
    return _rehearse(
        settings,
        lambda connection: [
            (m, "up") for m in migrate.plan(settings, connection, directory, target, allow_out_of_order)
        ],
    )


def dry_run_rollback(
    settings: Settings, steps: int | None, to: int | None, *, from_history: bool, confirm: rollback.Confirm | None
) -> DryRun:
    """Rehearse ``rollback``."""
    rollback.check_arguments(steps, to)
    directory = discovery.usable(scan(settings))
    if settings.server is None:
        sqlite.check_path(settings.db_path, create=False)
    return _rehearse(
        settings,
        lambda connection: [
            (m, "down")
            for m in rollback.plan_rollback(settings, connection, directory, steps, to, from_history, confirm)
        ],
    )


def _rehearse(settings: Settings, make_plan: Callable[[Connection], Plan]) -> DryRun:
    database = settings.db_path
    if not exists(settings):
        sqlite.check_path(database, create=True)
        with closing(Session(Path(":memory:"), settings.lock_timeout, sqlite.memory_database(), rehearsing=True)) as s:
            ran_in = f"an empty database in memory ({database} does not exist yet)"
            return _each(settings, s, make_plan(s.connection), ran_in)
    with frame.writing(settings, create=False) as session:
        plan = make_plan(session.connection)
        session.rehearsing = session.connection.rehearsing = True
        # In place only SQL that is transactional: Python code could reach past the guards and
        # commit onto the live file, so a plan with any runs on a throw-away copy.
        if all(isinstance(m.step(d), SqlStep) and m.step(d).transactional for m, d in plan):
            return _in_place(settings, session, plan)
        if settings.server is not None:  # a scratch copy of the server's schema and rows
            with closing(Session(Path(":memory:"), settings.lock_timeout, rehearsing=True,
                                 connection=copy_for_checks(settings, session.connection))) as copied:  # fmt: skip
                return _each(settings, copied, plan, "a throw-away copy of the server's database")
        _remove_stale_scratch(database)
        with tempfile.TemporaryDirectory(dir=database.absolute().parent, prefix=_scratch_prefix(database)) as scratch:
            copy = Path(scratch) / database.name
            with closing(sqlite3.connect(copy)) as target:
                copying.copy(sqlite.local(session.connection), target)
            with closing(Session(copy, settings.lock_timeout, rehearsing=True)) as copied:
                return _each(settings, copied, plan, "a throw-away copy made with the backup API")


def _in_place(settings: Settings, session: Session, plan: Plan) -> DryRun:
    before = schema.snapshot(session.connection)
    after: list[str] = []
    outcomes = frame.runner(settings, session).batch(
        plan, commit=False, capture=True, inspect=lambda connection: after.append(schema.snapshot(connection))
    )
    ran_in = "a transaction that was rolled back"
    return DryRun(tuple(map(_rehearsal, outcomes)), before, after[0] if after else before, ran_in)


def _each(settings: Settings, session: Session, plan: Plan, ran_in: str) -> DryRun:
    before = schema.snapshot(session.connection)
    runner = frame.runner(settings, session)
    outcomes: list[Outcome] = []
    for migration, direction in plan:
        outcomes.append(runner.one(migration, direction, earlier=len(outcomes), capture=True))
        if outcomes[-1].error:
            break
    return DryRun(tuple(map(_rehearsal, outcomes)), before, schema.snapshot(session.connection), ran_in)


def _rehearsal(outcome: Outcome) -> Rehearsal:
    file, error = outcome.migration.file, outcome.error
    return Rehearsal(
        file.version,
        file.name,
        file.path,
        outcome.direction,
        outcome.statements,
        outcome.duration_ms,
        error.what if error else None,
    )


def _scratch_prefix(database: Path) -> str:
    """The name a dry run's scratch folder starts with; tempfile adds 8 characters of [a-z0-9_]."""
    return f".vcp-dry-run.{database.name}."


def _remove_stale_scratch(database: Path) -> None:
    """Remove scratch folders a killed dry run of this database left; the caller holds its run lock.

    Matched by the exact name tempfile makes, so the scratch of ``staging-app.db`` (or of
    ``app.db.x``) is never taken for the scratch of ``app.db``. Links are never followed.
    """
    pattern = re.compile(re.escape(_scratch_prefix(database)) + r"[a-z0-9_]{8}")
    with os.scandir(database.absolute().parent) as entries:
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
