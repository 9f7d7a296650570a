"""status: every migration's state, from the files and the history; never runs migration code,
never creates the database, never takes the run lock."""

from __future__ import annotations

import math
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
    rows = [_as_text(row) for row in _readable(directory, planning.status_rows(directory, history or {}))]
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


def _as_text(row: StatusRow) -> StatusRow:
    """The row with its history values as the types status shows: a value edited by hand into
    another type is shown for what it is (a BLOB as ``x'ff00'``), where printing it or writing
    it as JSON failed. The state was decided from the values as stored."""
    applied = row.applied
    if applied is None or (
        type(applied.name) is str
        and type(applied.checksum) is str
        and type(applied.applied_at) is str
        and type(applied.execution_ms) is int
        and (applied.file is None or type(applied.file) is str)
    ):
        return row
    name = _text(applied.name)
    shown = applied._replace(
        name=name,
        checksum=_text(applied.checksum),
        applied_at=_text(applied.applied_at),
        execution_ms=_whole(applied.execution_ms),
        file=None if applied.file is None else _text(applied.file),
    )
    return row._replace(name=row.name if row.path else name, applied=shown)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"  # as SQL writes a BLOB
    return "" if value is None else str(value)


def _whole(value: object) -> int | None:
    """A number of milliseconds, or None for a value that is none (text, a BLOB, infinity)."""
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    return None


def _unmanaged(settings: Settings, history: dict[int, AppliedMigration] | None) -> tuple[str, ...]:
    """The tables of an existing database with no history; () otherwise."""
    if history is None or history:
        return ()
    with closing(open_existing(settings)) as connection, naming_the_database(settings):
        return tuple(unmanaged_tables(connection))
