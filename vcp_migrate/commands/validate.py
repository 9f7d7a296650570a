"""validate: every problem with the files, the history against them, the database (integrity,
drift), the schema file, and hazards in pending migrations; and schema, the normalised schema.

Load every file; in one read transaction read the history, check the database and copy it into
memory; then replay, lint and round-trip on databases in memory only. The database is only read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import NamedTuple

from .. import checks, history_guard, loading, planning, references, schema, scratch, sqlite, transactions
from ..database import Connection, quoted
from ..errors import MigrationFileError
from ..loading import LoadedMigration
from ..models import AppliedMigration, Directory, Problem
from .context import Settings, copy_for_checks, exists, open_existing, read_history, scan, where
from .context import applied as applied_history
from .repair import source_diff


def validate(settings: Settings, *, roundtrip: bool) -> list[Problem]:
    """Every problem found; warnings (hazards) have severity "warning".

    Each check that replays migrations runs whenever the files it replays can be loaded; one that
    cannot says so ("drift not checked: ..."), naming the file that stops it.
    """
    directory = scan(settings)
    problems = [Problem(p.kind, p.reason, p.path, p.version) for p in directory.problems]
    # The versions whose file cannot be replayed, with the file and why: the check needing one stops there.
    unusable = {
        p.version: Stop(p.path, p.version, _UNUSABLE[p.kind])
        for p in directory.problems
        if p.kind in _UNUSABLE and p.version is not None
    }
    loaded: dict[int, LoadedMigration] = {}
    warnings: list[Problem] = []
    for file in directory.migrations:
        try:
            loaded[file.version] = migration = loading.load(file)
        except MigrationFileError as exc:
            said = exc.what if exc.hint is None else f"{exc.what} ({exc.hint})"  # what to do, as migrate says it
            problems.append(Problem("load", said, file.path, file.version))
            unusable.setdefault(file.version, Stop(file.path, file.version, "it cannot be loaded (see its error)"))
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
    problems += warnings
    applied: dict[int, AppliedMigration] = {}
    live_schema: str | None = None
    copy: sqlite.MigrationConnection | None = None
    no_down = {v: Stop(m.file.path, v, "it has no down") for v, m in loaded.items() if m.down is None}
    if exists(settings):
        # One read transaction: history, schema and copy agree even while others migrate.
        with closing(open_existing(settings)) as connection, transactions.read_transaction(connection):
            applied = read_history(settings, connection)
            pending, lint_stop, trip_stop = _plan(loaded, unusable, no_down, applied, roundtrip=roundtrip)
            with sqlite.translated(where(settings)):
                problems += _history_problems(settings, connection, directory, applied)
                foreign = history_guard.triggers(connection)  # (a snapshot leaves them out: drift cannot see them)
                problems += _trigger_problems(settings, foreign)
                problems += _database_problems(settings, connection)
                problems += _user_version_problems(settings, connection, applied, directory)
                live_schema = schema.snapshot(connection)
                # A copy only for what runs migrations on one: lint (something pending) and round trips.
                needed = bool(pending) or (roundtrip and trip_stop is None)
                copy = copy_for_checks(settings, connection) if needed else None
            if copy is not None:  # checked as they will run once the triggers are dropped, as the problem says
                for name in foreign:
                    copy.execute(f"DROP TRIGGER IF EXISTS {quoted(name)}")
    else:
        pending, lint_stop, trip_stop = _plan(loaded, unusable, no_down, applied, roundtrip=roundtrip)
    # Files edited after they ran are not what ran: what replaying them finds may be that edit.
    edited = [p.version for p in problems if p.kind == "modified" and p.version is not None]
    with closing(copy) if copy else contextlib.nullcontext():
        if live_schema is not None:
            if (stop := _first(applied, unusable)) is not None:
                problems.append(_not_checked("drift", stop, "the check replays the up of every applied migration"))
            else:
                problems += _drift(settings, live_schema, loaded, applied, edited)
        problems += _schema_file(settings, loaded, unusable, applied, edited)  # none when there is no file
        tripping = roundtrip and trip_stop is None
        trip = scratch.copy_of(copy) if tripping and copy is not None else None  # lint changes its copy
        with closing(trip) if trip else contextlib.nullcontext():
            problems += checks.lint(copy, pending, server=settings.server is not None, own=True)
            if lint_stop is not None:
                problems.append(_not_checked("hazards", lint_stop, _LINTED))
            if trip_stop is not None:
                problems.append(_not_checked("round trips", trip_stop, "they run every migration up and down"))
            # a pending migration that fails on the data is reported once, not again as a round trip
            if tripping and not any(p.kind == "fails" for p in problems):
                done = [loaded[v] for v in planning.application_order(applied) if v in loaded]
                problems += checks.roundtrip(trip, done, pending, own=True)
    return problems


# Why a file the directory scan could not use cannot be replayed either.
_UNUSABLE = {
    "duplicate": "its version has another file",
    "unreadable": "it cannot be read",
    "name": "its name is not valid UTF-8",  # the only name problem with a version
}
_LINTED = "each pending migration is linted on what the ones before it leave, so none from it on was"


class Stop(NamedTuple):
    """The file that stops a check replaying migrations, and why."""

    path: Path
    version: int
    why: str


def _first(versions: Iterable[int], stops: dict[int, Stop]) -> Stop | None:
    """The stop of the lowest of ``versions`` that has one, if any."""
    return next((stops[v] for v in sorted(versions) if v in stops), None)


def _plan(
    loaded: dict[int, LoadedMigration],
    unusable: dict[int, Stop],
    no_down: dict[int, Stop],
    applied: dict[int, AppliedMigration],
    *,
    roundtrip: bool,
) -> tuple[list[LoadedMigration], Stop | None, Stop | None]:
    """The pending migrations to lint, in order, up to the first that cannot be replayed (each
    runs on what the ones before it leave), and that one's stop; then the round trips' stop (every
    migration, each with its down), None when they run or are not asked for."""
    versions = sorted((set(loaded) | set(unusable)) - set(applied))
    lint_stop = _first(versions, unusable)
    pending = [loaded[v] for v in versions if lint_stop is None or v < lint_stop.version]
    trip_stop = _first(set(loaded) | set(unusable), no_down | unusable) if roundtrip else None
    return pending, lint_stop, trip_stop


def _not_checked(check: str, stop: Stop, because: str) -> Problem:
    """The warning for a check that could not run: which, the file that stops it, why, what to do."""
    message = f"{check} not checked: {stop.why}, and {because}; fix the file, then validate again"
    return Problem("not-checked", message, stop.path, stop.version, severity="warning")


def _schema_file(
    settings: Settings,
    loaded: dict[int, LoadedMigration],
    unusable: dict[int, Stop],
    applied: dict[int, AppliedMigration],
    edited: list[int],
) -> list[Problem]:
    """The schema file against the migrations up to its version, unless one of them cannot be replayed."""
    try:
        dumped = schema.read_dump(settings.schema_file)
    except (OSError, UnicodeDecodeError):  # none there, or unreadable: dump_file says which, if anything
        dumped = None
    stop = _first([v for v in unusable if v <= dumped[0]], unusable) if dumped else None
    if dumped and stop is not None:
        return [_not_checked("the schema file", stop, f"the check replays every migration up to {dumped[0]}")]
    found = _against_history(settings, loaded, applied, edited)
    if not any(problem.diff is not None for problem in found):
        return found
    # A run between the read of the history and the read of the file wrote the file from a history
    # this validate did not read (a rollback of a migration applied out of order, whose version is
    # still the highest, leaves a file the history read cannot tell): it agrees with the history
    # read again. A file that disagrees with both is reported against the one the checks read.
    again = applied_history(settings)
    if again is None or again == applied:
        return found
    return found if _against_history(settings, loaded, again, edited) else []


def _against_history(
    settings: Settings,
    loaded: dict[int, LoadedMigration],
    applied: dict[int, AppliedMigration],
    edited: list[int],
) -> list[Problem]:
    """The schema file against what the database with history ``applied`` holds up to its version."""
    missing = sorted(v for v in applied if v not in loaded)
    # Written from a database, the file holds what its history applied, in that order (it differs
    # from version order only after an out-of-order migrate), then, in version order, the pending
    # ones above the highest applied: with no history, every migration; and a run that applied
    # more since the history was read wrote the file for them too (it is read after the history).
    # One pending below the highest (merged, or rolled back after an out-of-order migrate) is in
    # the file only once a migrate allowed out of order applies it.
    in_order = [v for v in planning.application_order(applied) if v in loaded]
    highest = max(applied, default=0)
    replayed = in_order + sorted(v for v in loaded if v not in applied and v > highest)
    return checks.dump_file(settings.schema_file, [loaded[v] for v in replayed], edited, missing)


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
    moved = planning.renumbered(directory, applied)  # migrate refuses them: each would run what ran once again
    for file in (m for m in directory.migrations if m.version in moved):
        problems.append(Problem("renumbered", f"{moved[file.version]}; {planning.RENUMBERED}", file.path, file.version))
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
    # in the order they were applied: two that add columns to one table leave them in that order
    in_order = [loaded[v] for v in planning.application_order(applied)]
    return checks.drift(live_schema, in_order, where(settings), edited)


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


def _user_version_problems(
    settings: Settings, connection: Connection, applied: dict[int, AppliedMigration], directory: Directory
) -> list[Problem]:
    """PRAGMA user_version against the highest applied version, which every change sets it to:
    one set by hand (or by a migration outside a run) tells an application that reads it another
    schema than the one it has. Not when it is someone else's (user_version = false), the
    database has no history, or the version does not fit in it."""
    from .. import history

    highest = max(applied, default=0)
    if not settings.user_version or highest > history.USER_VERSION_MAX or history.layout(connection) == 0:
        return []
    found = connection.execute("PRAGMA user_version").fetchone()[0]
    if found == highest:
        return []
    # baseline at the database's own version records nothing and sets it; it needs that version's file
    files = {migration.version for migration in directory.migrations}
    fix = f"'vcp-migrate baseline {highest}' (which records nothing)" if highest in files else None
    message = (
        f"PRAGMA user_version is {found}, but the highest applied version is {highest}: an application"
        f" that reads it sees another schema; set it with {fix or f'PRAGMA user_version = {highest}'}, or set"
        " user_version = false in [tool.vcp-migrate] if it belongs to someone else"
    )
    if found > highest and found in files:  # rows deleted by hand: their tables are still there
        message += (
            f"; if the history lost the rows up to {found} (drift then shows what they made), record them"
            f" with 'vcp-migrate baseline {found}'"
        )
    return [Problem("user-version", message, where(settings), severity="warning")]


def _does(step: loading.Step) -> bool:
    return not isinstance(step, loading.SqlStep) or bool(step.statements)
