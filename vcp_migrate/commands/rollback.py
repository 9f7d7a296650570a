"""rollback and redo: undo the migrations applied last, in the reverse of the order they were
applied in (planning.application_order), each committed with the removal of its history row;
redo undoes the one applied last and applies it again from its file.

Scan, lock, read the history, plan (files, or with --from-history the source kept in the
history, shown and confirmed first), load, back up, run, keep what ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import discovery, history, loading, planning
from ..database import Connection
from ..errors import Interrupted, MigrationFileError, PlanError, UsageError, VcpMigrateError
from ..loading import LoadedMigration
from ..models import AppliedMigration, Direction, Directory, MigrationFile, MigrationRun
from . import frame
from .context import Settings, read_history, scan, where, whole_number

Confirm = Callable[[str, str], bool]


def rollback(
    settings: Settings, steps: int | None, to: int | None, *, from_history: bool, confirm: Confirm | None
) -> list[MigrationRun]:
    """Roll back the ``steps`` migrations applied last (default 1), or all above ``to``."""
    check_arguments(steps, to)
    directory = discovery.usable(scan(settings))
    with frame.writing(settings, create=False) as session:
        plan = plan_rollback(settings, session.connection, directory, steps, to, from_history, confirm)
        if not plan:
            return []
        return frame.changing(settings, session, lambda: frame.each(settings, session, plan, "down")).result()


def redo(settings: Settings) -> list[MigrationRun]:
    """Roll back the migration applied last and apply it again, in one transaction when both allow it."""
    directory = discovery.usable(scan(settings))
    with frame.writing(settings, create=False) as session:
        applied = read_history(settings, session.connection, changing=True)
        (migration,) = planned(settings, session.connection, directory, applied, 1, None, False, None, again=True)
        apply_again = _apply_again(migration.file.version, applied)
        down, up = migration.step("down"), migration.step("up")
        if down.transactional and up.transactional:
            pair: list[tuple[LoadedMigration, Direction]] = [(migration, "down"), (migration, "up")]
            return frame.changing(settings, session, lambda: frame.batch(settings, session, pair)).result()

        def one_then_other() -> frame.Ran:
            undone = frame.each(settings, session, [migration], "down")
            if not undone.runs:
                return undone
            if undone.stopped is not None:  # Ctrl-C reached Python just after the down's COMMIT
                return frame.Ran(undone.runs, _half_done(undone.stopped, migration, apply_again), undone.partly)
            again = frame.each(settings, session, [migration], "up")
            stopped = (
                again.stopped
                if again.runs or again.stopped is None
                else _half_done(again.stopped, migration, apply_again)
            )
            return frame.Ran(undone.runs + again.runs, stopped, again.partly)

        return frame.changing(settings, session, one_then_other).result()


def _apply_again(version: int, applied: dict[int, AppliedMigration]) -> str:
    """How to apply again a migration that redo rolled back and did not apply again: below another
    applied version (it was applied out of order), migrate applies it only when allowed to."""
    highest = max((each for each in applied if each != version), default=0)
    if version < highest:
        return f"'vcp-migrate migrate --allow-out-of-order' (it is below applied version {highest})"
    return "'vcp-migrate migrate'"


def _half_done(stopped: BaseException, migration: LoadedMigration, apply_again: str) -> BaseException:
    """What stopped a redo between its down and its up, saying so (``apply_again``: how to apply
    it): redo again would roll back the migration applied before this one, and leave this one
    unapplied."""
    path = str(migration.file.path)

    def told(it: str) -> str:
        return (
            f"redo had rolled {it} back and did not apply it again: once the cause is fixed, apply it with"
            f" {apply_again}, not redo, which would roll back the migration before it"
        )

    if isinstance(stopped, Interrupted):
        return Interrupted(f"{stopped.said}; {told('it' if path in stopped.said else path)}")
    if isinstance(stopped, KeyboardInterrupt):
        return Interrupted(f"interrupted during redo; {told(path)}")
    if isinstance(stopped, VcpMigrateError):
        said = told("it" if stopped.where == path else path)
        stopped.hint = f"{stopped.hint}; {said}" if stopped.hint else said
        stopped.args = (str(stopped),)
    return stopped


def check_arguments(steps: int | None, to: int | None) -> None:
    """Refuse what the API would otherwise silently misread."""
    whole_number("steps", steps)
    whole_number("to", to)
    if steps is not None and to is not None:
        raise UsageError("give either steps or to, not both")
    if steps is not None and steps < 1:
        raise UsageError(f"steps must be 1 or more, not {steps}")
    if to is not None and to < 0:
        raise UsageError(f"to must be a version or 0, not {to}")


def plan_rollback(
    settings: Settings,
    connection: Connection,
    directory: Directory,
    steps: int | None,
    to: int | None,
    from_history: bool,
    confirm: Confirm | None,
) -> list[LoadedMigration]:
    """The loaded migrations a rollback runs, the last applied first (shared with its dry run)."""
    applied = read_history(settings, connection, changing=True)
    return planned(settings, connection, directory, applied, steps, to, from_history, confirm)


def planned(
    settings: Settings,
    connection: Connection,
    directory: Directory,
    applied: dict[int, AppliedMigration],
    steps: int | None,
    to: int | None,
    from_history: bool,
    confirm: Confirm | None,
    *,
    again: bool = False,
) -> list[LoadedMigration]:
    """``plan_rollback`` from the history ``applied``, read under the run lock (for a redo: ``again``)."""
    if not from_history:  # the history's own sources need no directory: a release may have none of them
        planning.require_some_applied_files(directory, applied, where(settings))
    if not applied and to is None:
        raise PlanError(
            "nothing to roll back: no migration is applied", where=where(settings), hint="nothing was changed"
        )
    plan = planning.plan_rollback(directory, applied, steps=steps, to=to, from_history=from_history, again=again)
    files = [_from_history(settings, connection, i, confirm) if isinstance(i, AppliedMigration) else i for i in plan]
    try:
        loaded = loading.load_plan(files, "down", settings.loaded)
    except MigrationFileError as exc:
        if _KEPT not in (exc.where or ""):
            raise
        hint = "restore the migration's file to roll it back with it; nothing was rolled back"  # none to fix
        raise MigrationFileError(exc.what, where=exc.where, hint=hint) from exc.__cause__
    for file in files:  # said only once the rollback is sure to run
        if file.checksum != applied[file.version].checksum:
            settings.observer.warning(f"{file.path}: changed since it was applied; rolling back with its current down")
    return loaded


_KEPT = ":history/"  # how a migration rebuilt from the history is named: <database>:history/<file>


def _from_history(
    settings: Settings, connection: Connection, row: AppliedMigration, confirm: Confirm | None
) -> MigrationFile:
    """The migration as it was applied, rebuilt from the history, once the user has seen it.

    This (rollback --from-history) is the only path on which code kept in a database runs.
    Loading a Python migration runs its whole module, so the whole source is shown, not only
    its down.
    """
    database = where(settings)
    source = history.applied_source(connection, row.version)
    if source is None or row.file is None:
        raise PlanError(
            f"version {row.version} ({row.name}) has no source in the history (applied before sources were kept)",
            where=database,
            hint="restore its file to roll it back; nothing was changed",
        )
    file = MigrationFile(row.version, row.name, Path(f"{database}{_KEPT}{row.file}"), row.checksum, source)
    title = f"source of {row.file}, as kept in the history of {database} (all of it runs)"
    try:  # the text that loading compiles, so what is shown is what runs
        code = loading.source_text(file)
    except MigrationFileError as exc:
        raise MigrationFileError(
            exc.what, where=exc.where, hint=f"{exc.hint}; nothing was rolled back"
        ) from exc.__cause__
    if confirm is None:
        settings.observer.showing(title, code)
    elif not confirm(title, code):
        raise PlanError(
            f"running version {row.version} ({row.file}) from the history was not confirmed",
            where=database,
            hint="nothing was rolled back",
        )
    return file
