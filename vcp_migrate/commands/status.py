"""status: every migration's state, from the files and the history; never runs migration code,
never creates the database, never takes the run lock."""

from __future__ import annotations

from contextlib import closing

from .. import discovery, planning
from ..history import unmanaged_tables
from ..models import AppliedMigration, StatusReport
from .context import Settings, applied, naming_the_database, open_existing, scan, where


def report(settings: Settings) -> StatusReport:
    """Every migration's state, in version order; unusable files last."""
    directory = discovery.without_duplicates(scan(settings))
    history = applied(settings)
    planning.require_some_applied_files(directory, history or {}, where(settings))
    rows = planning.status_rows(directory, history or {})
    database = settings.db_path if settings.server is None else settings.server.url
    return StatusReport(database, history is not None, tuple(rows), _unmanaged(settings, history))


def _unmanaged(settings: Settings, history: dict[int, AppliedMigration] | None) -> tuple[str, ...]:
    """The tables of an existing database with no history; () otherwise."""
    if history is None or history:
        return ()
    with closing(open_existing(settings)) as connection, naming_the_database(settings):
        return tuple(unmanaged_tables(connection))
