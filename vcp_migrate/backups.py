"""Backups: consistent copies of the database taken with SQLite's online backup API.

They live in ``<db>.backups/`` beside the database, named ``<UTC time>-v<schema version>.db``.
The API copies page by page through SQLite's pager (memory stays flat whatever the size) inside
one read transaction, so the copy is consistent while other processes use the database, WAL
included. A backup file is created with the database's permissions, never wider.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import DatabaseError
from .models import Backup

_NAME = re.compile(r"(\d{8}T\d{6}\.\d{3}Z)-v(\d+)(?:-(\d+))?\.db")


def folder(database: Path) -> Path:
    """Where the backups of ``database`` live."""
    return database.with_name(database.name + ".backups")


def take(source: sqlite3.Connection, database: Path, version: int) -> Backup:
    """Copy the database behind ``source`` into a new backup file and make it durable.

    Raises DatabaseError (and leaves no partial file) if the copy cannot be made.
    """
    where = folder(database)
    # Readable by no one who cannot read the database; writable by its owner only.
    mode = (stat.S_IMODE(os.stat(database).st_mode) & 0o444) | 0o200
    partial: Path | None = None
    started = time.perf_counter()
    try:
        where.mkdir(mode=0o700, exist_ok=True)
        for stale in where.glob("*.partial"):  # left by a killed run; the caller holds the run lock
            stale.unlink()
        path, fd = _create(where, version, mode)
        os.close(fd)
        # Copy under a name listing() ignores, and give it its real name only once it is complete
        # and on disk: a run killed mid-copy never leaves something that looks like a backup.
        partial = path.with_name(path.name + ".partial")
        os.rename(path, partial)
        target = sqlite3.connect(partial)
        try:
            source.backup(target)
        finally:
            target.close()
        _fsync(partial)
        os.rename(partial, path)
        partial = None
        _fsync(where)
    except (OSError, sqlite3.Error) as exc:
        for leftover in (partial, locals().get("path")):
            if isinstance(leftover, Path):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        raise DatabaseError(
            f"backup into {where} failed: {exc}",
            where=str(database),
            hint="free space, fix permissions, or pass --no-backup; nothing was changed",
        ) from None
    return _describe(path)._replace(seconds=time.perf_counter() - started)


def _create(where: Path, version: int, mode: int) -> tuple[Path, int]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = where / f"{stamp}-v{version}{suffix}.db"
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
    raise OSError(f"too many backups named {stamp}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(path: Path) -> Backup:
    match = _NAME.fullmatch(path.name)
    assert match is not None
    stamp = match[1]
    taken_at = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
    return Backup(path, taken_at, int(match[2]), path.stat().st_size)


def is_backup_name(path: Path) -> bool:
    """Whether ``path`` is named as vcp-migrate names backups."""
    return _NAME.fullmatch(path.name) is not None


def listing(database: Path) -> list[Backup]:
    """The backups of ``database``, newest first."""
    where = folder(database)
    if not where.is_dir():
        return []
    found = [_describe(path) for path in where.iterdir() if is_backup_name(path) and path.is_file()]
    return sorted(found, key=lambda backup: backup.path.name, reverse=True)


def prune(database: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; return what was deleted."""
    removed = []
    for backup in listing(database)[keep:]:
        backup.path.unlink()
        removed.append(backup.path)
    return removed


def copy_into(backup: Path, target: sqlite3.Connection) -> None:
    """Overwrite the database behind ``target`` with ``backup``, through SQLite's locking."""
    source = sqlite3.connect(backup.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        source.backup(target)
    finally:
        source.close()
