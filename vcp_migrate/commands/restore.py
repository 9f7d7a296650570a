"""restore and backups: list the backups, and replace the database with one of them.

Take the run lock, choose the backup and check it is a sound backup of this database (under
the lock: a run that held it may have pruned it), let the user confirm, take a safety copy of
the current state, copy the backup in through SQLite, write the schema file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from .. import backups, copying, file_errors, history, sqlite
from ..database import Connection
from ..errors import DatabaseError, Interrupted, LockTimeout, UsageError, VcpMigrateError
from ..models import Backup
from ..session import Session
from . import frame
from .context import Settings, path_text


def listing(settings: Settings) -> list[Backup]:
    """The backups of this database, newest first."""
    return backups.listing(settings.db_path, settings.backup_dir)


def restore(
    settings: Settings, backup: str | os.PathLike[str] | None, confirm: Callable[[Backup], bool] | None
) -> tuple[Backup, Backup | None]:
    """Replace the database with ``backup`` (default: the newest); return it and the safety copy."""
    if backup is not None:
        backup = path_text("backup", backup)  # a backup's path or file name
    if settings.server is not None:
        raise UsageError(
            "restoring a database on a server is refused: writing a backup over it here would race the"
            " application and replicas would replay it as one huge change",
            where=settings.server.url,
            hint="use the server's own point-in-time restore (sqld, Turso); the backups are plain SQLite files"
            " to inspect or load; nothing was changed",
        )
    database = settings.db_path
    restored: tuple[Backup, Backup | None] | None = None  # once the copy is made
    try:
        with frame.writing(settings, create=True) as session:
            chosen = _choose(settings, backup, session.connection)
            if confirm is not None and not confirm(chosen):
                raise VcpMigrateError("the restore was not confirmed", where=str(database), hint="nothing was changed")
            created_folder = not os.path.lexists(backups.folder(database, settings.backup_dir))
            safety = _safety_copy(settings, session, created_folder)
            try:
                note = backups.copy_into(chosen.path, sqlite.local(session.connection), database)
            except Exception as exc:
                # The copy is one transaction: a failed one changed nothing. After a write error (a full
                # disk) SQLite rolls its journal back at the next read: made now, not left to whoever opens it.
                with contextlib.suppress(sqlite3.Error):
                    session.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if safety:
                    frame.discard(settings, safety, folder_created=created_folder)
                if isinstance(exc, sqlite3.Error):
                    raise file_errors.database_error(exc, database) from exc
                if isinstance(exc, OSError):
                    raise DatabaseError(
                        f"restore failed: {exc}", where=str(database), hint="nothing was changed"
                    ) from exc
                raise
            except BaseException as exc:  # Ctrl-C: it may have come once the copy was made
                untouched = isinstance(exc, copying.Stopped)
                raise _interrupted(settings, chosen, safety, created_folder, untouched=untouched) from exc
            restored = chosen, safety
            if note:
                settings.observer.warning(note)
            if settings.schema_file.parent.is_dir():  # a restore needs no migrations folder: none, no schema file
                try:
                    frame.dump(settings, session)
                except KeyboardInterrupt:
                    raise Interrupted(
                        f"{_made(database, chosen, safety)}; the schema file was left as it was"
                    ) from None
        return restored
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        if restored is not None:  # as the run lock was let go
            raise Interrupted(_made(database, *restored)) from None
        raise Interrupted(
            f"interrupted before the restore of {database} began; nothing was changed (the database and its"
            " backups are as they were)"
        ) from None


def _safety_copy(settings: Settings, session: Session, created_folder: bool) -> Backup | None:
    """The copy of the database's state before the restore (None: it held nothing)."""
    try:
        return frame.take_backup(settings, session, always=True, folder_created=created_folder)
    except Interrupted:  # the copy stops within a step, its partial file removed
        raise Interrupted(
            f"interrupted while taking a copy of {settings.db_path} before the restore; nothing was changed, no"
            " copy kept (the database and its backups are as they were)"
        ) from None


def _made(database: Path, chosen: Backup, safety: Backup | None) -> str:
    """An interrupt once the restore was made, said."""
    before = f"; its state before is kept in {safety.path}" if safety else ""
    return f"interrupted once {database} was restored from {chosen.path}{before}"


def _interrupted(
    settings: Settings, chosen: Backup, safety: Backup | None, created_folder: bool, *, untouched: bool
) -> Interrupted:
    """What an interrupt during the copy left: the database as it was (the copy rolled back, its
    safety copy deleted again) or restored (the safety copy kept: it is the only state before).
    ``untouched``: the copy stopped before its last step; otherwise both are compared, whole."""
    database = settings.db_path
    if safety is None:
        return Interrupted(f"interrupted during the restore of {database} from {chosen.path}; it held nothing before")
    try:
        restored = not untouched and copying.differs(database, safety.path, settings.lock_timeout)
    except (OSError, sqlite3.Error, KeyboardInterrupt):  # cannot tell (Ctrl-C again while it reads both)
        return Interrupted(
            f"interrupted during the restore of {database}: it is either as it was or as {chosen.path} holds;"
            f" its state before is kept in {safety.path}"
        )
    if restored:
        return Interrupted(_made(database, chosen, safety))
    frame.discard(settings, safety, folder_created=created_folder)
    return Interrupted(
        f"interrupted before the restore of {database} from {chosen.path} was made; nothing was changed (the"
        " database is as it was, the backup untouched)"
    )


def _choose(settings: Settings, backup: str | os.PathLike[str] | None, live: Connection) -> Backup:
    database = settings.db_path
    found = backups.listing(database, settings.backup_dir)
    home = backups.folder(database, settings.backup_dir)
    if backup is None:
        if not found:
            raise DatabaseError(f"has no backups in {home}", where=str(database), hint="nothing was changed")
        chosen = found[0].path
    else:
        chosen = Path(backup)
        if not chosen.exists() and (home / chosen).exists():
            chosen = home / chosen
    version = _check(settings, chosen, live)
    listed = next((b for b in found if b.path.resolve() == chosen.resolve()), None)
    if listed:  # the version its history holds, which is what comes back: a renamed file's name can say another
        return listed._replace(version=version)
    info = chosen.stat()
    if backups.is_backup_name(chosen):  # moved or copied out of the folder: its name says when it was taken
        return backups.described(chosen)._replace(version=version, size=info.st_size)
    # A file named otherwise: its own time stands for when it was taken.
    taken_at = datetime.fromtimestamp(info.st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return Backup(chosen, taken_at, version, info.st_size)


def _check(settings: Settings, path: Path, live: Connection) -> int:
    """Raise DatabaseError unless ``path`` is a sound backup of this database; return its version."""
    database, where = settings.db_path, str(path)
    if not path.is_file():
        raise DatabaseError("is not a file", where=where, hint="pick one from 'vcp-migrate backups'")
    if _same_file(path, database):  # opening it would wait out the lock this restore holds
        raise DatabaseError(
            "is the database itself, not a backup of it",
            where=where,
            hint="pick one from 'vcp-migrate backups'; nothing was changed",
        )
    if path.stat().st_size == 0:  # SQLite opens it as a database holding nothing: restoring it empties ours
        raise DatabaseError(
            "is empty, so it is no backup (every backup holds at least the database's first page: a copy cut short?)",
            where=where,
            hint="pick another backup; nothing was changed",
        )
    try:
        with closing(sqlite.open_database(path, create=False, timeout=settings.lock_timeout)) as connection:
            if not sqlite.quick_check(connection):
                raise DatabaseError("is corrupt", where=where, hint="pick another backup; nothing was changed")
            backup_id = history.database_id(connection)
            version = history.highest(connection)
    except LockTimeout as exc:  # another connection writes it: waiting more is the remedy, not another backup
        exc.where = where
        raise
    except DatabaseError as exc:
        hint = "pick another backup; nothing was changed"
        unopened = exc.what in ("cannot be opened", "is read-only")
        if unopened and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):  # read-only media
            hint = "a backup is opened to read and write (SQLite may keep files beside it): copy it to a writable"
            hint += " folder and restore that copy; nothing was changed"
        raise DatabaseError(exc.what, where=where, hint=hint) from exc.__cause__
    with sqlite.translated(database):
        live_id = history.database_id(live)
    if backups.belongs(path, database) is False:  # databases cloned from one template share their id
        raise DatabaseError(
            f"is a backup of another database file, not of {database} (its name carries another file's tag)",
            where=where,
            hint=f"pick one from 'vcp-migrate backups'; if {database} was moved here from the database this"
            " backup was taken of, copy the backup to a name without the tag to restore it on its database id"
            " alone; nothing was changed",
        )
    if backup_id and live_id:
        if backup_id != live_id:
            raise DatabaseError(
                f"is a backup of another database, not of {database}", where=where, hint="nothing was changed"
            )
        return version
    home = backups.folder(database, settings.backup_dir)
    in_folder = path.resolve().parent == home.resolve() and backups.is_backup_name(path)
    if not in_folder:
        raise DatabaseError(
            f"is not a backup of {database}: it is not in {home} and carries no matching database id",
            where=where,
            hint="nothing was changed",
        )
    return version


def _same_file(path: Path, database: Path) -> bool:
    try:
        return os.path.samefile(path, database)
    except OSError:  # the database is there (the run lock was taken on it): only the backup may be gone
        return False
