"""migrate: apply the pending migrations, each committed with its history row.

Scan the directory, take the run lock, read the history, plan, load every migration of the
plan, back up, run, and decide what to keep from what ran.
"""

from __future__ import annotations

from .. import discovery, loading, planning, sqlite
from ..errors import PlanError
from ..loading import LoadedMigration
from ..models import Direction, Directory, MigrationRun
from . import frame
from .context import Settings, read_history, scan


def migrate(settings: Settings, target: int | None, *, allow_out_of_order: bool, atomic: bool) -> list[MigrationRun]:
    """Apply pending migrations in version order, up to ``target``; every one is loaded first."""
    directory = discovery.usable(scan(settings))
    with frame.writing(settings, create=True) as session:
        loaded = plan(settings, session.connection, directory, target, allow_out_of_order)
        if atomic:
            for migration in loaded:
                if not migration.up.transactional:
                    raise PlanError(
                        "is not transactional, so it cannot run in an atomic batch",
                        where=str(migration.file.path),
                        hint="run without --atomic; nothing was applied",
                    )
        if not loaded:
            return []
        if atomic:
            pairs: list[tuple[LoadedMigration, Direction]] = [(migration, "up") for migration in loaded]
            return frame.changing(settings, session, lambda: frame.batch(settings, session, pairs)).result()
        return frame.changing(settings, session, lambda: frame.each(settings, session, loaded, "up")).result()


def plan(
    settings: Settings,
    connection: sqlite.MigrationConnection,
    directory: Directory,
    target: int | None,
    allow_out_of_order: bool,
) -> list[LoadedMigration]:
    """The loaded migrations ``migrate`` runs, in order (shared with its dry run)."""
    applied = read_history(settings, connection)
    for row in planning.status_rows(directory, applied):
        if row.state == "missing":
            settings.observer.warning(
                f"version {row.version} ({row.name}) is applied but its file is missing from {directory.path}"
            )
    files = planning.plan_migrate(directory, applied, target=target, allow_out_of_order=allow_out_of_order)
    return loading.load_plan(files, "up")
