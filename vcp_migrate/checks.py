"""The checks behind ``validate`` that run migrations, always on a database in memory:
drift (replay the applied migrations, compare with the live schema), the schema file,
round trips (up, down, up on a copy holding real data) and hazards in pending migrations.
The live database is only ever read (and copied). Every session here rehearses: a migration that
would write another file (ATTACH, VACUUM INTO) is refused there and reported as one that cannot
be rehearsed, a warning, never as checked."""

from __future__ import annotations

import errno
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from . import hazards, schema, scratch, sqlite
from .execution import Runner
from .loading import LoadedMigration
from .models import Direction, Problem
from .schema_text import tokenise
from .session import Session


def in_memory(source: sqlite3.Connection | None = None) -> Session:
    """A throw-away session: on an empty database in memory, or on a scratch file copy of ``source``
    made with the backup API (never reopened, so never emptied: its path is ":memory:")."""
    connection = scratch.copy_of(source) if source is not None else sqlite.memory_database()
    return Session(Path(":memory:"), 0, connection, rehearsing=True)


def _throw_away(live: sqlite3.Connection | None, own: bool) -> Session:
    """A session to run migrations on: ``live`` itself when it is a copy given away (``own``),
    else a new copy of it (or an empty database)."""
    if own and isinstance(live, sqlite.MigrationConnection):
        return Session(Path(":memory:"), 0, live, rehearsing=True)  # never reopened
    return in_memory(live)


def replay(migrations: list[LoadedMigration], checking: str) -> tuple[str, Problem | None]:
    """Run the ups on an empty database in memory; the resulting schema, or the failure (which
    says that ``checking`` could not be done)."""
    with closing(in_memory()) as session:
        runner = Runner(session, user_version=False)
        for migration in migrations:
            outcome = runner.one(migration, "up", earlier=0)
            if outcome.unrehearsable and outcome.error:
                return "", unrehearsable(migration, outcome.error.what, f"{checking} stopped there")
            if outcome.error:
                return "", Problem(
                    "replay",
                    f"replaying it on an empty database fails: {outcome.error.what}, so {checking} could not be"
                    " done; make it run on what the migrations before it build",
                    migration.file.path,
                    migration.file.version,
                )
        return schema.snapshot(session.connection), None


def unrehearsable(migration: LoadedMigration, what: str, consequence: str) -> Problem:
    """The warning for a migration whose rehearsal was refused because it would write a file."""
    message = f"{what}; it was not rehearsed and {consequence} (review it by hand)"
    return Problem("unrehearsable", message, migration.file.path, migration.file.version, severity="warning")


def drift(actual: str, applied: list[LoadedMigration], database: Path | str, edited: list[int]) -> list[Problem]:
    """A problem (with the diff) if the live schema ``actual`` is not what the applied migrations
    produce. They are replayed from their files: code kept in the history is never run here, so
    the versions ``edited`` since they ran may be the cause, and the message says so."""
    expected, failure = replay(applied, "the check for drift")
    if failure:
        return [failure]
    if actual == expected:
        return []
    difference = schema.diff(expected, actual, "what the applied migrations produce", f"{database} now")
    message = "the schema differs from what the applied migrations produce (drift: changed outside migrations)"
    if edited:
        message = (
            f"the schema differs from what the applied migrations' files produce now that {_versions(edited)}"
            f" changed since {_it(edited)} ran: that edit, or a change outside migrations (see the diff); repair"
            " only an edit that matches the database"
        )
    return [Problem("drift", message, database, diff=difference)]


def _it(versions: list[int]) -> str:
    return "it" if len(versions) == 1 else "they"


def _versions(versions: list[int]) -> str:
    return f"version {versions[0]}" if len(versions) == 1 else f"versions {', '.join(map(str, versions))}"


def dump_file(path: Path, files: list[LoadedMigration], edited: list[int], missing: list[int]) -> list[Problem]:
    """A problem if the schema file is not what the migrations up to its version produce
    (``missing``: applied versions whose file is gone, which no replay can stand in for). None
    when there is no schema file; one that cannot be read is a problem, never an exception."""
    try:
        dumped = schema.read_dump(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem("schema-file", _unreadable(exc), path)]
    if dumped is None:
        return [Problem("schema-file", "has no '-- version: N' header; it was not written by vcp-migrate", path)]
    version, text = dumped
    if gone := [v for v in missing if v <= version]:
        said = f"cannot be checked: the file of applied version(s) {', '.join(map(str, gone))} is missing"
        return [Problem("schema-file", said, path, severity="warning")]
    expected, failure = replay([m for m in files if m.file.version <= version], "the check of the schema file")
    if failure:
        return [failure]
    if expected == text:
        return []
    difference = schema.diff(expected, text, f"what migrations up to {version} produce", str(path))
    if _code(expected) == _code(text):  # the layout of comments changed in 2026-12: one written before
        said = (
            "differs from what the migrations produce only in where comments are; the next change writes it"
            f" again, or now: vcp-migrate baseline {version}"
        )
        return [Problem("schema-file", said, path, severity="warning", diff=difference)]
    if _code(expected) == _code(_without_shadow_tables(text)):  # listed them until 2026-12-07
        said = (
            "differs from what the migrations produce only in listing the tables of virtual tables (FTS5's"
            " docs_data...), which their CREATE VIRTUAL TABLE makes; the next change writes it again, or now:"
            f" vcp-migrate baseline {version}"
        )
        return [Problem("schema-file", said, path, severity="warning", diff=difference)]
    message = f"disagrees with the migrations up to version {version}"
    if changed := [v for v in edited if v <= version]:
        message += f" ({_versions(changed)} changed since {_it(changed)} ran: that edit may be the difference)"
    message += (
        ": restore what was edited (this file or a migration) from version control, or write the file again"
        f" from a database at version {version} that shows no drift: vcp-migrate baseline {version}"
    )
    return [Problem("schema-file", message, path, diff=difference)]


def _without_shadow_tables(text: str) -> str:
    """Schema text without the CREATE TABLE of a virtual table's own tables (``<name>_<suffix>``
    for a CREATE VIRTUAL TABLE in the text), as releases before 2026-12-07 wrote them."""
    virtual = re.findall(r"(?m)^CREATE VIRTUAL TABLE ['\"`\[]?([^'\"`\]\s(]+)", text)
    if not virtual:
        return text
    statements = re.split(r"(?m)^(?=CREATE )", text)
    owned = tuple(f"{name}_" for name in virtual)
    shadow = re.compile(r"CREATE TABLE ['\"`\[]?([^'\"`\]\s(]+)")
    return "".join(s for s in statements if not ((m := shadow.match(s)) and m.group(1).startswith(owned)))


def _code(text: str) -> list[str]:
    """The SQL of schema text without its comments and white space, token by token."""
    return [token for token in tokenise(text) if not token.isspace() and not token.startswith(("--", "/*"))]


def _unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """Why the schema file could not be checked, and what to do (as migrate says it)."""
    if isinstance(exc, UnicodeDecodeError):
        line = exc.object[: exc.start].count(b"\n") + 1
        return (
            f"line {line} is not UTF-8 text, which vcp-migrate always writes, so it was not checked: restore it"
            " from version control, or delete it (the next change writes it again)"
        )
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a schema file, so it was not checked: move it away, or name another schema file"
    if exc.errno == errno.EINVAL:
        return "is not a regular file, so it was not checked: move it away, or name another schema file"
    return (
        f"cannot be read ({exc.strerror or exc}), so whether vcp-migrate wrote it cannot be told and it was not"
        " checked: make it readable (its permissions and its folder's), or name another schema file"
    )


def lint(
    live: sqlite3.Connection | None, pending: list[LoadedMigration], *, server: bool = False, own: bool = False
) -> list[Problem]:
    """Hazards in the statements each pending migration executes, on a copy of the database.

    A pending migration that fails on the copy is an error: it would fail on the database; so is
    one that executes what a libSQL server refuses, when the database is on one (``server``).
    With ``own``, ``live`` is a throw-away copy given away: the migrations run on it, no new copy.
    """
    problems: list[Problem] = []
    if not pending:
        return problems
    with closing(_throw_away(live, own)) as session:
        runner = Runner(session, user_version=False)
        for migration in pending:
            context = hazards.SchemaContext.read(session.connection)
            outcome = runner.one(migration, "up", earlier=0, capture=True)
            for hazard in hazards.find(outcome.statements, transactional=migration.up.transactional, context=context):
                problems.append(_hazard_problem(migration, hazard))
            for index, statement in enumerate(outcome.statements if server else (), 1):
                refused = hazards.refused_by_server(statement)
                if refused:
                    message = (
                        f"statement {index} ({hazards.short(statement)!r}): a libSQL server refuses {refused};"
                        " it would fail there: leave it out of migrations for a server"
                    )
                    problems.append(Problem("server", message, migration.file.path, migration.file.version))
            if outcome.unrehearsable and outcome.error:
                problems.append(unrehearsable(migration, outcome.error.what, "the migrations after it were not linted"))
                break
            if outcome.error:
                message = f"would fail on the database as it is: {outcome.error.what}"
                problems.append(Problem("fails", message, migration.file.path, migration.file.version))
                break
    return problems


def _hazard_problem(migration: LoadedMigration, hazard: hazards.Hazard) -> Problem:
    """A warning, or (when the file acknowledges its kind) an acknowledged hazard, never a failure."""
    file = migration.file
    if hazard.kind in migration.allowed_hazards:
        return Problem(
            "hazard", f"{hazard.kind}: {hazard}", file.path, file.version, "acknowledged", hazard=hazard.kind
        )
    how = f"'-- vcp:allow {hazard.kind}'" if file.kind == "sql" else f"allow_hazards = {{{hazard.kind!r}}}"
    message = f"{hazard.kind}: {hazard} (if reviewed and safe, acknowledge it in the file: {how})"
    return Problem("hazard", message, file.path, file.version, "warning", hazard=hazard.kind)


def roundtrip(
    live: sqlite3.Connection | None,
    applied: list[LoadedMigration],
    pending: list[LoadedMigration],
    *,
    own: bool = False,
) -> list[Problem]:
    """Prove each migration reversible on a copy of the database, real data included.

    Pending migrations, oldest first, from the database as it is: up, down (schema and rows of
    the tables that existed before are back), up again (same as after the first up). Then every
    migration, the last applied first (``applied`` is in the order of application, then ``pending``):
    down, up (back as it was), down again (same as after the first down).
    The first migration that fails stops the check: what follows would start from a wrong state.
    """
    with closing(_throw_away(live, own)) as session:
        trip = _Trip(Runner(session, user_version=False), session)
        for migration in pending:
            if not trip.there_and_back(migration, ("up", "down", "up")):
                return trip.problems
        for migration in reversed(applied + pending):
            if not trip.there_and_back(migration, ("down", "up", "down")):
                return trip.problems
        return trip.problems


class _State:
    """The schema and the rows of every table, to compare before and after."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.schema = schema.snapshot(connection)
        self.rows = schema.table_digests(connection)


class _Trip:
    def __init__(self, runner: Runner, session: Session) -> None:
        self.runner = runner
        self.session = session
        self.problems: list[Problem] = []

    def there_and_back(self, migration: LoadedMigration, directions: tuple[Direction, Direction, Direction]) -> bool:
        """Run three steps and compare: the second must undo the first, the third redo it.

        Rows are compared for the tables that exist both before and after the first step: a
        down that drops the migration's own table destroys its rows by design.
        """
        first, back, again = directions
        if migration.down is None:
            self._fail(migration, "has no down, so it cannot be rolled back")
            return False
        before = _State(sqlite.local(self.session.connection))
        after_first = self._step(migration, first)
        if after_first is None:
            return False
        kept = before.rows.keys() & after_first.rows.keys()
        after_back = self._step(migration, back)
        if after_back is None or not self._same(migration, before, after_back, kept, f"{back} does not undo {first}"):
            return False
        after_again = self._step(migration, again)
        return after_again is not None and self._same(
            migration, after_first, after_again, kept, f"{again} after {back} differs from the first {first}"
        )

    def _step(self, migration: LoadedMigration, direction: Direction) -> _State | None:
        outcome = self.runner.one(migration, direction, earlier=0)
        if outcome.unrehearsable and outcome.error:
            self.problems.append(unrehearsable(migration, outcome.error.what, "the round trips stopped there"))
            return None
        if outcome.error:
            self._fail(migration, f"{direction} fails on the copy of the database: {outcome.error.what}")
            return None
        return _State(sqlite.local(self.session.connection))

    def _same(self, migration: LoadedMigration, expected: _State, actual: _State, tables: set[str], what: str) -> bool:
        if expected.schema != actual.schema:
            difference = schema.diff(expected.schema, actual.schema, "expected", "after the round trip")
            self._fail(migration, f"{what}: the schema is not back as it was", difference)
            return False
        changed = sorted(t for t in tables if expected.rows.get(t) != actual.rows.get(t))
        if changed:
            self._fail(migration, f"{what}: the rows of {', '.join(changed)} are not back as they were")
            return False
        return True

    def _fail(self, migration: LoadedMigration, message: str, difference: str | None = None) -> None:
        file = migration.file
        self.problems.append(Problem("roundtrip", message, file.path, file.version, diff=difference))
