"""repair: accept reviewed edits to applied migrations by recording their new checksum and
source. Scan, lock, read the history, show each diff and ask, record in one transaction."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from .. import discovery, history, planning, sqlite, transactions
from ..database import Connection
from ..errors import PlanError, UsageError
from ..models import Directory, MigrationFile, Repair
from . import frame
from .context import Settings, read_history, scan, where, whole_number


def repair(settings: Settings, versions: list[int] | None, confirm: Callable[[Repair], bool] | None) -> list[int]:
    """Record the current checksum and source of modified applied migrations that ``confirm`` accepts."""
    if versions is not None:
        if isinstance(versions, (str, bytes)) or not isinstance(versions, Iterable):
            raise UsageError(f"versions must be a list of whole numbers, not {versions!r}")
        versions = list(versions)
        if not versions:
            raise UsageError("versions is empty", hint="name the versions to repair, or None for every modified one")
        for version in versions:
            whole_number("a version", version)
    directory = discovery.usable(scan(settings))
    with frame.writing(settings, create=False) as session:
        connection = session.connection
        found = repairs(settings, connection, directory, versions)
        chosen = [r for r in found if confirm is None or confirm(r)]
        if not chosen:  # nothing written: a database without history stays without one
            return []
        with sqlite.translated(where(settings)), transactions.transaction(connection):
            history.prepare(connection)
            for one in chosen:
                history.update(connection, one.current)
        return [one.current.version for one in chosen]


def repairs(
    settings: Settings, connection: Connection, directory: Directory, versions: list[int] | None
) -> list[Repair]:
    """The modified applied migrations (those of ``versions``, or all), each with its diff."""
    applied = read_history(settings, connection, changing=True)
    modified = {
        row.version: row
        for row in planning.status_rows(directory, applied)
        if row.state == "modified" and row.version is not None
    }
    on_file = {migration.version for migration in directory.migrations}
    for version in versions or []:
        if version not in modified:
            why = (
                "is not applied"
                if version not in applied
                else f"is applied but its file is missing from {directory.path} (restore it first)"
                if version not in on_file
                else "is applied and its file has not changed since"
            )
            raise PlanError(
                f"version {version} {why}: repair records a changed file's checksum", hint="nothing was changed"
            )
    found = []
    for version in versions or sorted(modified):
        current = next(m for m in directory.migrations if m.version == version)
        _require_loadable(current)
        before = history.applied_source(connection, version)
        found.append(Repair(current, applied[version], source_diff(before, current)))
    return found


def _require_loadable(current: MigrationFile) -> None:
    """Refuse to record a file the next rollback could not load: its checksum would make it look sound."""
    from .. import loading

    loading.load_or_refuse(current, ", then repair it; nothing was recorded")


def source_diff(before: bytes | None, current: MigrationFile) -> str:
    """A unified diff from the source as applied to the file now (shared with validate)."""
    if before is None:
        return "(the applied source was not kept: it was applied before vcp-migrate kept sources)"
    lines = difflib.unified_diff(
        before.decode("utf-8", errors="replace").splitlines(),
        current.source.decode("utf-8", errors="replace").splitlines(),
        fromfile=f"applied {current.path.name}",
        tofile=str(current.path),
        lineterm="",
    )
    return "\n".join(lines)
