"""validate: every problem with the files, the history against them, the database (integrity,
drift), the schema file, and hazards in pending migrations; and schema, the normalised schema.

Load every file; in one read transaction read the history, check the database and copy it into
memory; then replay, lint and round-trip on databases in memory only. The database is only read.
"""

from __future__ import annotations

import contextlib
from contextlib import closing

from .. import checks, history_guard, loading, planning, references, schema, scratch, sqlite, transactions
from ..database import Connection, quoted
from ..errors import MigrationFileError
from ..loading import LoadedMigration
from ..models import AppliedMigration, Directory, Problem
from .context import Settings, copy_for_checks, exists, open_existing, read_history, scan, where
from .repair import source_diff


def validate(settings: Settings, *, roundtrip: bool) -> list[Problem]:
    """Every problem found; warnings (hazards) have severity "warning"."""
    directory = scan(settings)
    problems = [Problem(p.kind, p.reason, p.path, p.version) for p in directory.problems]
    loaded: dict[int, LoadedMigration] = {}
    warnings: list[Problem] = []
    for file in directory.migrations:
        try:
            loaded[file.version] = migration = loading.load(file)
        except MigrationFileError as exc:
            said = exc.what if exc.hint is None else f"{exc.what} ({exc.hint})"  # what to do, as migrate says it
            problems.append(Problem("load", said, file.path, file.version))
            continue
        if migration.down is None:
            problems.append(
                Problem("no-down", "has no down, so it cannot be rolled back; add one", file.path, file.version)
            )
        elif isinstance(migration.down, loading.SqlStep) and not migration.down.statements and _does(migration.up):
            empty = "its down section is empty: a rollback would record it undone and change nothing"
            if "empty-down" in migration.allowed_hazards:  # reviewed: an up that a rerun repeats harmlessly
                warnings.append(Problem("empty-down", empty, file.path, file.version, severity="acknowledged"))
            else:
                empty += "; write its down (if nothing needs undoing, acknowledge it: '-- vcp:allow empty-down')"
                warnings.append(Problem("empty-down", empty, file.path, file.version, severity="warning"))
    runnable = not problems  # replays need every file to load, and one file per version
    problems += warnings
    applied: dict[int, AppliedMigration] = {}
    live_schema: str | None = None
    copy: sqlite.MigrationConnection | None = None
    if exists(settings):
        # One read transaction: history, schema and copy agree even while others migrate.
        with closing(open_existing(settings)) as connection, transactions.read_transaction(connection):
            applied = read_history(settings, connection)
            with sqlite.translated(where(settings)):
                problems += _history_problems(settings, connection, directory, applied)
                foreign = history_guard.triggers(connection)  # (a snapshot leaves them out: drift cannot see them)
                problems += _trigger_problems(settings, foreign)
                problems += _database_problems(settings, connection)
                live_schema = schema.snapshot(connection)
                # A copy only for what runs migrations on one: lint (something pending) and round trips.
                needed = runnable and (roundtrip or not set(loaded) <= set(applied))
                copy = copy_for_checks(settings, connection) if needed else None
            if copy is not None:  # checked as they will run once the triggers are dropped, as the problem says
                for name in foreign:
                    copy.execute(f"DROP TRIGGER IF EXISTS {quoted(name)}")
    # Files edited after they ran are not what ran: what replaying them finds may be that edit.
    edited = [p.version for p in problems if p.kind == "modified" and p.version is not None]
    with closing(copy) if copy else contextlib.nullcontext():
        if runnable and live_schema is not None:
            problems += _drift(settings, live_schema, loaded, applied, edited)
        if runnable:  # nothing when there is no schema file, a problem when it cannot be read
            missing = sorted(v for v in applied if v not in loaded)
            problems += checks.dump_file(settings.schema_file, [loaded[v] for v in sorted(loaded)], edited, missing)
        if runnable:
            pending = [loaded[v] for v in sorted(loaded) if v not in applied]
            trip = scratch.copy_of(copy) if roundtrip and copy is not None else None  # lint changes its copy
            with closing(trip) if trip else contextlib.nullcontext():
                problems += checks.lint(copy, pending, server=settings.server is not None, own=True)
                # a pending migration that fails on the data is reported once, not again as a round trip
                if roundtrip and not any(p.kind == "fails" for p in problems):
                    done = [loaded[v] for v in sorted(loaded) if v in applied]
                    problems += checks.roundtrip(trip, done, pending, own=True)
    return problems


def schema_text(settings: Settings) -> str:
    """The database's normalised schema (tables, indexes, views, triggers)."""
    with closing(open_existing(settings)) as connection, sqlite.translated(where(settings)):
        return schema.snapshot(connection)


def _history_problems(
    settings: Settings,
    connection: Connection,
    directory: Directory,
    applied: dict[int, AppliedMigration],
) -> list[Problem]:
    from .. import history

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
            problems.append(Problem("modified", message, row.path, row.version, diff=source_diff(before, current)))
        elif row.state == "missing":
            message = f"version {row.version} ({row.name}) is applied but its file is missing"
            problems.append(Problem("missing", message, settings.migrations_dir, row.version))
        elif row.state == "out-of-order":
            message = (
                f"pending below the highest applied version {highest};"
                " migrate refuses it unless out-of-order migrations are allowed"
            )
            problems.append(Problem("out-of-order", message, row.path, row.version))
    return problems


def _drift(
    settings: Settings,
    live_schema: str,
    loaded: dict[int, LoadedMigration],
    applied: dict[int, AppliedMigration],
    edited: list[int],
) -> list[Problem]:
    """Replay the files of the applied migrations and compare with the live schema."""
    missing = sorted(v for v in applied if v not in loaded)
    if missing:
        message = f"cannot check for drift: the file of applied version(s) {', '.join(map(str, missing))} is missing"
        return [Problem("drift", message, settings.migrations_dir, severity="warning")]
    return checks.drift(live_schema, [loaded[v] for v in sorted(applied)], where(settings), edited)


def _trigger_problems(settings: Settings, foreign: list[str]) -> list[Problem]:
    """Triggers on the history tables, which no run leaves there: every command that writes the history refuses them."""
    if not foreign:
        return []
    message = (
        f"trigger(s) on the history tables that are not vcp-migrate's ({', '.join(foreign)}) could rewrite the"
        " history, and migrate, rollback, redo, baseline and repair refuse to run while they are there;"
        f" {history_guard.drop_them(foreign)}"
    )
    return [Problem("history-trigger", message, where(settings))]


def _database_problems(settings: Settings, connection: Connection) -> list[Problem]:
    database = where(settings)
    problems = [
        Problem("integrity", f"integrity_check: {line}", database) for line in sqlite.integrity_problems(connection)
    ]
    violations = references.violations(connection)
    return problems + [Problem("foreign-key", f"foreign_key_check: {v}", database) for v in violations]


def _does(step: loading.Step) -> bool:
    return not isinstance(step, loading.SqlStep) or bool(step.statements)
