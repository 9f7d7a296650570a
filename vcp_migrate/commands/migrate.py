"""migrate: apply the pending migrations, each committed with its history row.

Scan the directory, take the run lock, read the history, plan, load every migration of the
plan, back up, run, and decide what to keep from what ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import discovery, history, planning
from ..database import Connection
from ..errors import DatabaseError, PlanError, setting
from ..models import Direction, Directory, MigrationRun
from . import frame
from .context import Settings, exists, naming_the_database, read_history, scan, where, whole_number

if TYPE_CHECKING:
    from ..loading import LoadedMigration


def migrate(settings: Settings, target: int | None, *, allow_out_of_order: bool, atomic: bool) -> list[MigrationRun]:
    """Apply pending migrations in version order, up to ``target``; every one is loaded first."""
    whole_number("target", target)
    directory = discovery.usable(scan(settings))
    if not settings.create and not exists(settings):
        raise DatabaseError(
            f"does not exist, and {setting('create', False)} forbids creating it",
            where=where(settings),
            hint="check the database path; nothing was created",
        )
    with frame.writing(settings, create=settings.create, history_first=True) as session:
        loaded = plan(settings, session.connection, directory, target, allow_out_of_order)
        if atomic:
            for migration in loaded:
                if not migration.up.transactional:
                    raise PlanError(
                        "is not transactional, so it cannot run in an atomic batch",
                        where=str(migration.file.path),
                        hint=f"run without {setting('atomic', True)}; nothing was applied",
                    )
        if not loaded:
            return []
        if atomic:
            pairs: list[tuple[LoadedMigration, Direction]] = [(migration, "up") for migration in loaded]
            return frame.changing(settings, session, lambda: frame.batch(settings, session, pairs)).result()
        return frame.changing(settings, session, lambda: frame.each(settings, session, loaded, "up")).result()


def plan(
    settings: Settings,
    connection: Connection,
    directory: Directory,
    target: int | None,
    allow_out_of_order: bool,
) -> list[LoadedMigration]:
    """The loaded migrations ``migrate`` runs, in order (shared with its dry run)."""
    applied = read_history(settings, connection, changing=True)
    if not applied and not settings.allow_existing:
        refuse_unmanaged(settings, connection)
    planning.require_some_applied_files(directory, applied, where(settings))
    if not {migration.version for migration in directory.migrations}.issuperset(applied):  # a file is missing
        for row in planning.status_rows(directory, applied):
            if row.state == "missing":
                settings.observer.warning(
                    f"version {row.version} ({row.name}) is applied but its file is missing from {directory.path}"
                )
    files = planning.plan_migrate(directory, applied, target=target, allow_out_of_order=allow_out_of_order)
    if target is not None and target < max(applied, default=0):  # --to names where to stop, never goes down
        settings.observer.warning(
            f"{where(settings)} is at version {max(applied)}, above --to {target}: migrate only applies, and"
            f" leaves it there; to go down to {target}, run 'vcp-migrate rollback --to {target}'"
        )
    if not files:
        return []  # nothing to load: a run with nothing to do never imports the loader
    from .. import loading

    return loading.load_plan(files, "up", settings.loaded)


def refuse_unmanaged(settings: Settings, connection: Connection) -> None:
    """Refuse a database made without vcp-migrate (tables, no history): its first migrations would
    be recorded as applied whether or not they did anything (CREATE TABLE IF NOT EXISTS)."""
    with naming_the_database(settings):
        tables = history.unmanaged_tables(connection)
    if tables:
        raise PlanError(
            f"has {len(tables)} table(s) ({planning.short_list(tables)}) and no migration history:"
            " it was not made by vcp-migrate",
            where=where(settings),
            hint="record the migrations its schema already has with 'vcp-migrate baseline VERSION', or apply"
            f" every migration to it with {setting('allow_existing', True)}; nothing was changed",
        )
