"""baseline: adopt a database made before vcp-migrate by recording migrations as applied,
without running them. Scan, lock, read the history, check, load, record in one transaction."""

from __future__ import annotations

from .. import discovery, history, planning, schema, sqlite, transactions
from ..errors import PlanError, UsageError
from ..models import MigrationFile
from . import frame
from .context import Settings, read_history, scan, where, whole_number


def baseline(settings: Settings, version: int) -> list[int]:
    """Record the migrations up to ``version`` as applied; return the versions recorded."""
    if version is None:
        raise UsageError("version must be a whole number, not None")
    whole_number("version", version)
    directory = discovery.usable(scan(settings))
    with frame.writing(settings, create=False) as session:
        connection = session.connection
        applied = read_history(settings, connection, changing=True)
        if version not in {m.version for m in directory.migrations}:
            raise PlanError(f"version {version} is not a migration in {directory.path}", hint="nothing was changed")
        beyond = sorted(v for v in applied if v > version)
        if beyond:
            raise PlanError(
                f"the history already has version(s) above {version}: {', '.join(map(str, beyond))}",
                where=where(settings),
                hint="baseline only adopts a database up to its current point; nothing was changed",
            )
        files = [m for m in directory.migrations if m.version <= version and m.version not in applied]
        below = [m.version for m in files if m.version < max(applied, default=0)]
        if below:  # out of order: migrate refuses them unless told to run them, baseline must not skip them
            raise PlanError(
                f"version(s) {', '.join(map(str, below))} are pending below applied version {max(applied)}:"
                " baseline would record them without running them",
                where=where(settings),
                hint="apply them with 'vcp-migrate migrate --allow-out-of-order'; nothing was changed",
            )
        if files and not schema.snapshot(connection).strip():
            # an empty file, or one made by a mistyped path: recorded, the migrations would be skipped
            raise PlanError(
                f"has no tables, indexes, views or triggers: baseline would record version(s)"
                f" {planning.short_list([m.version for m in files])} as applied with nothing of them there",
                where=where(settings),
                hint="apply them with 'vcp-migrate migrate'; nothing was recorded",
            )
        _require_loadable(files)
        with sqlite.translated(where(settings)), transactions.transaction(connection):
            history.prepare(connection)
            latest = None
            for file in files:
                latest = history.record(connection, file, 0, latest)
            if settings.user_version:
                history.sync_user_version(connection)
        frame.dump(settings, session)
        return [file.version for file in files]


def _require_loadable(files: list[MigrationFile]) -> None:
    """Refuse to record a file that cannot be loaded: its checksum would make it look applied and
    sound until the rollback that needs it (as ``repair`` refuses such an edit)."""
    from .. import loading

    for file in files:
        loading.load_or_refuse(file, ", then baseline again; nothing was recorded")
