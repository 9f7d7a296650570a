"""status: every migration's state, from the files and the history; never runs migration code,
never creates the database, never takes the run lock."""

from __future__ import annotations

from contextlib import closing

from .. import planning
from ..history import unmanaged_tables
from ..models import AppliedMigration, Directory, StatusReport, StatusRow
from .context import Settings, applied, naming_the_database, open_existing, scan, where


def report(settings: Settings) -> StatusReport:
    """Every migration's state, in version order; unusable files last."""
    directory = scan(settings)
    history = applied(settings)
    planning.require_some_applied_files(directory, history or {}, where(settings))
    rows = _readable(directory, planning.status_rows(directory, history or {}))
    database = settings.db_path if settings.server is None else settings.server.url
    return StatusReport(database, history is not None, tuple(rows), _unmanaged(settings, history))


def _readable(directory: Directory, rows: list[StatusRow]) -> list[StatusRow]:
    """The rows, a pending SQL file that migrate would refuse to read (a section marker it does
    not know, a hazard name that is none) marked invalid. SQL is only read; a Python file is never
    loaded here (that would run its code)."""
    pending = {row.path for row in rows if row.state in ("pending", "out-of-order") and row.path}
    files = {file.path: file for file in directory.migrations if file.path in pending and file.kind == "sql"}
    if not files:
        return rows
    from ..errors import MigrationFileError
    from ..loading import load

    unreadable = set()
    for path, file in files.items():
        try:
            load(file)
        except MigrationFileError:
            unreadable.add(path)
    return [row._replace(state="invalid") if row.path in unreadable else row for row in rows]


def _unmanaged(settings: Settings, history: dict[int, AppliedMigration] | None) -> tuple[str, ...]:
    """The tables of an existing database with no history; () otherwise."""
    if history is None or history:
        return ()
    with closing(open_existing(settings)) as connection, naming_the_database(settings):
        return tuple(unmanaged_tables(connection))
