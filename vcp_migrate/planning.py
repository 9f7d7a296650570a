"""Pure planning: from the files and the history, decide each migration's state and what a
command will run. Nothing here touches the database or the file system."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import applied_times
from .errors import Parameter, PlanError, setting
from .models import AppliedMigration, Directory, MigrationFile, State, StatusRow


def status_rows(directory: Directory, applied: Mapping[int, AppliedMigration]) -> list[StatusRow]:
    """Every migration known to the files or the history, in version order; unusable files last."""
    files = {migration.version: migration for migration in directory.migrations}
    highest = max(applied, default=0)
    unreadable = {p.version: p for p in directory.problems if p.kind == "unreadable" and p.version is not None}
    duplicated = {p.version for p in directory.problems if p.kind == "duplicate"}
    rows = []
    for version in sorted(files.keys() | applied.keys() | unreadable.keys()):
        file, row = files.get(version), applied.get(version)
        state: State
        if version in duplicated:  # which file is the migration is not known: each is invalid
            for each in (migration for migration in directory.migrations if migration.version == version):
                rows.append(StatusRow(version, each.name, "invalid", each.path, each.checksum, row))
            continue
        if version in unreadable:
            state = "invalid"
        elif row and not file:
            state = "missing"
        elif row and file:
            state = "applied" if row.checksum == file.checksum else "modified"
        else:
            state = "out-of-order" if version < highest else "pending"
        path = file.path if file else unreadable[version].path if version in unreadable else None
        name = file.name if file else row.name if row else _stem_name(unreadable[version].path.stem)
        rows.append(StatusRow(version, name, state, path, file.checksum if file else None, row))
    for problem in directory.problems:
        if problem.kind == "name":
            rows.append(StatusRow(None, problem.path.stem, "invalid", problem.path, None, None))
    return rows


def require_some_applied_files(directory: Directory, applied: Mapping[int, AppliedMigration], database: str) -> None:
    """Refuse a directory that holds none of the applied migrations' files: it is probably not the
    one the database was migrated from, and every command would misread it (all missing).

    Raises PlanError when the history has rows and not one of their versions has a file here
    (a usable one or one that cannot be read).
    """
    if not applied:
        return
    present = {migration.version for migration in directory.migrations}
    present.update(problem.version for problem in directory.problems if problem.version is not None)
    if present.isdisjoint(applied):
        versions = short_list(sorted(applied))
        raise PlanError(
            f"none of the {len(applied)} migration(s) applied to {database} (version(s) {versions}) has its file"
            " in this directory, so it is probably the wrong migrations directory",
            where=str(directory.path),
            hint="pass the directory this database was migrated from as the migrations directory"
            f" ({setting('migrations_dir')}); nothing was changed",
        )


def _stem_name(stem: str) -> str:
    return stem.partition("_")[2] or stem


def plan_migrate(
    directory: Directory,
    applied: Mapping[int, AppliedMigration],
    *,
    target: int | None = None,
    allow_out_of_order: bool = False,
) -> list[MigrationFile]:
    """The files ``migrate`` applies, in order. Raises PlanError when it must refuse."""
    rows = status_rows(directory, applied)
    for row in rows:
        if row.state == "modified" and row.applied:
            raise PlanError(
                f"changed since it was applied on {row.applied.applied_at} (checksum differs)",
                where=str(row.path),
                hint="restore the applied content and put further changes in a new migration; nothing was applied",
            )
    if target is not None:
        _require_known("target", target, rows, directory)
    highest = max(applied, default=0)
    plan: list[MigrationFile] = []
    moved: dict[int, str] | None = None  # looked for once something is pending: a no-op run pays nothing
    for migration in directory.migrations:
        if migration.version in applied or (target is not None and migration.version > target):
            continue
        if moved is None:
            moved = renumbered(directory, applied)
        if migration.version in moved:
            raise PlanError(
                moved[migration.version], where=str(migration.path), hint=f"{RENUMBERED}; nothing was applied"
            )
        if migration.version < highest and not allow_out_of_order:
            raise PlanError(
                f"version {migration.version} is pending but version {highest} is already applied (out of order)",
                where=str(migration.path),
                hint=f"renumber it above the applied ones, or pass {setting('allow_out_of_order', True)};"
                " nothing was applied",
            )
        plan.append(migration)
    return plan


def renumbered(directory: Directory, applied: Mapping[int, AppliedMigration]) -> dict[int, str]:
    """The pending files that hold exactly what an applied migration whose file is missing ran,
    by version, each with what to say: a file renamed to another version (a branch renumbered on
    a rebase), which migrate would otherwise apply a second time under its new number.
    """
    files = {migration.version for migration in directory.migrations}
    files.update(problem.version for problem in directory.problems if problem.version is not None)
    gone = {row.checksum: row for version, row in applied.items() if version not in files}
    found = {}
    for migration in directory.migrations:
        row = gone.get(migration.checksum)
        if row is not None and migration.version not in applied:
            named = row.file or f"version {row.version}'s file"
            found[migration.version] = (
                f"holds exactly what version {row.version} ({row.name}) applied, whose file ({named}) is missing:"
                f" it was renumbered from {row.version}, and would be applied a second time"
            )
    return found


RENUMBERED = (
    "give it back its applied name; to apply the same content again as a new migration, change the file"
    " (a comment will do)"
)


def plan_rollback(
    directory: Directory,
    applied: Mapping[int, AppliedMigration],
    *,
    steps: int | None = None,
    to: int | None = None,
    from_history: bool = False,
    again: bool = False,
) -> list[MigrationFile | AppliedMigration]:
    """What ``rollback`` undoes, the last applied first (``application_order``, reversed): the
    file, or with ``from_history`` the history row of a migration whose file is missing. Raises
    PlanError when it must refuse (``again``: for a redo, whose refusal says what redo needs)."""
    last_first = application_order(applied)[::-1]
    if to is not None:
        if to != 0:
            _require_known("to", to, status_rows(directory, applied), directory)
        chosen = [version for version in last_first if version > to]
        _require_applied_last(chosen, last_first, to, applied)
    else:
        count = 1 if steps is None else steps
        if count > len(last_first):
            raise PlanError(
                f"cannot roll back {count}: {len(last_first)} migration(s) applied",
                where=None,
                hint=f"use {setting('to', 0)} to roll back every applied migration; nothing was changed",
            )
        chosen = last_first[:count]
    files = {migration.version: migration for migration in directory.migrations}
    for version in chosen:
        if version not in files and not from_history:
            instead = (  # redo applies it again from its file: the history's down alone would not do
                f"redo applies it again from it; a rollback with {setting('from_history', True)} undoes it alone"
                if again
                else f"or pass {setting('from_history', True)} to run the down kept in the database"
            )
            raise PlanError(
                f"version {version} ({applied[version].name}) is applied but its file is missing from {directory.path}",
                hint=f"restore the file, {instead}; its history row was kept and nothing was changed",
            )
    return [files.get(version) or applied[version] for version in chosen]


def application_order(applied: Mapping[int, AppliedMigration]) -> list[int]:
    """The applied versions in the order they were applied, first applied first.

    That is the order of ``applied_at`` (UTC, to the millisecond, written with the history row and
    never before the latest row's: ``history.record``) read as times, then of version, for rows an
    earlier release wrote in the same millisecond (one run applies its migrations in version
    order); one edited by hand into no time keeps its place in version order (``applied_times``).
    It differs from version order only after ``migrate`` with ``allow_out_of_order``.
    """
    return applied_times.order(applied)


def _require_applied_last(
    chosen: list[int], last_first: list[int], to: int, applied: Mapping[int, AppliedMigration]
) -> None:
    """Refuse ``to`` when a migration it keeps was applied after one it rolls back: that one's
    down would run on a schema its up did not leave (only the reverse of the order of
    application is sure to be valid)."""
    if last_first[: len(chosen)] == chosen:
        return
    steps = last_first.index(chosen[-1]) + 1
    kept = [version for version in last_first[:steps] if version <= to]
    later = kept[0]
    earlier = next(version for version in last_first[last_first.index(later) :] if version > to)
    raise PlanError(
        f"{setting('to', to)} would roll back version {earlier} ({applied[earlier].name}) and keep version"
        f" {later} ({applied[later].name}), applied after it: the down of {earlier} would run on a schema"
        " its up did not leave",
        where=None,
        hint=f"roll back in the reverse order of application with {setting('steps', steps)}"
        f" (version(s) {short_list(last_first[:steps])}); that rolls back version(s) {short_list(sorted(kept))}"
        f" too, at or below {to}: apply again those to keep with migrate (with {setting('allow_out_of_order', True)}"
        " for one below an applied version); nothing was changed",
    )


def _require_known(parameter: Parameter, version: int, rows: list[StatusRow], directory: Directory) -> None:
    known = [row.version for row in rows if row.version is not None]
    if version not in known:
        listed = short_list(known) or "none"
        raise PlanError(
            f"{setting(parameter, version)} is not a migration in {directory.path}",
            hint=f"known versions: {listed}",
        )


def short_list(items: Sequence[object], most: int = 10) -> str:
    """The items separated by commas; past ``most``, the first ones and "and N more"."""
    shown = ", ".join(map(str, items[:most]))
    return f"{shown} and {len(items) - most} more" if len(items) > most else shown
