"""Backups: consistent copies of the database taken with SQLite's online backup API.

They live in ``<db>.backups/`` beside the database, named ``<UTC time>-v<schema version>.<tag>.db``,
or in a folder shared by many databases, named ``<db file name>.<UTC time>-v<version>.<tag>.db``.
The tag, a hash of the database file's resolved path, tells one database's backups from another's
(databases cloned from one template share their database id). The API copies page by page (memory
stays flat) inside one read transaction, so the copy is consistent while other processes use the
database, WAL included. A backup file is created with the database's permissions, never wider.

The folder is never followed through a link; nothing in it is deleted but regular files named as we name them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import partial_files
from .copying import copy
from .errors import DatabaseError, setting
from .models import Backup

# ASCII digits and hex only: only names we gave. The tag is missing from names of older releases.
# DOTALL: in a shared folder, a name begins with the database file's, which may hold a line break.
_NAME = re.compile(
    r"(?:(?P<database>.+)\.)?(?P<stamp>[0-9]{8}T[0-9]{6}\.[0-9]{3}Z)-v(?P<version>[0-9]+)(?:-[0-9]+)?"
    r"(?:\.(?P<tag>[0-9a-f]{12}))?\.db",
    re.DOTALL,
)
# A copy under way, and the files SQLite may keep beside it; a run killed mid-copy leaves them.
_PARTIAL = re.compile(_NAME.pattern + r"\.partial(?:-journal|-wal|-shm)?", re.DOTALL)


def folder(database: Path, shared: Path | None = None) -> Path:
    """Where the backups of ``database`` live: ``shared`` if given, else ``<db>.backups`` beside the
    database file itself (symbolic links resolved, as for the run lock: every name of one database
    finds the same backups)."""
    if shared is not None:
        return shared
    real = os.path.realpath(database)
    at = database if real == os.path.abspath(database) else Path(real)  # said as given when it is no link
    return at.with_name(at.name + ".backups")


def tag(database: Path) -> str:
    """What names the backups of this database file: a hash of its resolved path."""
    return hashlib.sha256(os.fsencode(os.path.realpath(database))).hexdigest()[:12]


def _prefix(database: Path, shared: Path | None) -> str:  # in a shared folder: the file's own name, links resolved
    return "" if shared is None else os.path.basename(os.path.realpath(database)) + "."


def belongs(path: Path, database: Path) -> bool | None:
    """Whether the backup file ``path`` was taken of this database file (by its tag); None when
    its name carries no tag (older releases, or named by hand)."""
    match = _NAME.fullmatch(path.name)
    if match is None or match["tag"] is None:
        return None
    return match["tag"] == tag(database)


def take(
    source: sqlite3.Connection | None,
    database: Path,
    version: int,
    shared: Path | None = None,
    copier: Callable[[sqlite3.Connection], None] | None = None,
    skippable: bool = True,
) -> Backup:
    """Copy the database behind ``source`` into a new backup file and make it durable;
    ``copier`` fills the new file instead (a server's database, named after a local stand-in).
    ``skippable``: the command can go without it (its failure then names the setting that skips it).

    Raises DatabaseError, leaving no partial file (nor the folder, if it made it), if the copy
    cannot be made, and when the folder is a link or not a directory.
    """
    where = folder(database, shared)
    name = f"{_prefix(database, shared)}{{stamp}}-v{version}{{suffix}}.{tag(database)}.db"
    # Readable by no one who cannot read the database; writable by its owner only.
    mode = (stat.S_IMODE(os.stat(database).st_mode) & 0o444) | 0o200 if copier is None else 0o600
    started = time.perf_counter()
    created = False
    try:
        created = _make_folder(where)
        # Copy under a name listing() ignores, and give it its real name only once it is complete
        # and on disk: a run killed mid-copy never leaves something that looks like a backup.
        with _partial(where, name, mode, clean="*" if shared is None else tag(database)) as partial:
            target = sqlite3.connect(partial.path)  # SQLite opens by path: checked to be our file before a write
            try:
                if not partial_files.also_open(partial.held):
                    raise _NotAFolder("it was swapped for a symbolic link while the backup was taken")
                target.execute("PRAGMA journal_mode = MEMORY")  # a new file needs no journal made beside it by path
                if source is not None:
                    copy(source, target)
                elif copier is not None:
                    copier(target)
            finally:
                target.close()
            os.fsync(partial.held)
            os.rename(partial.path.name, partial.final.name, src_dir_fd=partial.folder, dst_dir_fd=partial.folder)
            try:  # the folder it was made in, never one a link now puts at its path
                os.fsync(partial.folder)
            except BaseException:  # not said to be taken: never left to be listed (and restored) as one
                with contextlib.suppress(OSError):
                    os.unlink(partial.final.name, dir_fd=partial.folder)
                raise
            path = partial.final
    except BaseException as exc:  # Ctrl-C included: the copy stops within a step (see copying)
        if created:
            with contextlib.suppress(OSError):
                where.rmdir()
        if not isinstance(exc, (OSError, sqlite3.Error)):
            raise
        skip = f", or pass {setting('backup', False)}" if skippable else ""
        raise DatabaseError(
            f"backup into {where} failed: {exc}",
            where=str(database),
            hint=f"{_remedy(exc)}{skip}; nothing was changed",
        ) from exc
    return described(path)._replace(seconds=time.perf_counter() - started)


class _NotAFolder(OSError):
    """The backups folder is a link or not a directory: it is refused, not followed."""


def _make_folder(where: Path) -> bool:
    """Create the backups folder if it is missing; return whether this call created it."""
    try:
        os.mkdir(where, 0o700)
        return True
    except FileExistsError:
        _check_folder(where)
        return False


def _check_folder(where: Path) -> None:
    info = os.lstat(where)
    if stat.S_ISLNK(info.st_mode):
        raise _NotAFolder("it is a symbolic link, which is never followed")
    if not stat.S_ISDIR(info.st_mode):
        raise _NotAFolder("it is not a directory")


def _remedy(exc: OSError | sqlite3.Error) -> str:
    if isinstance(exc, _NotAFolder):
        return "remove it" if "link" in str(exc) else "move it away"
    if getattr(exc, "about_database", False):  # a server that failed while it was read (backends.remote)
        return "check that the server is running and run again"
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return f"retry when the other connection is done, raise {setting('lock_timeout')}"
    if isinstance(exc, FileNotFoundError):
        return "create the folder the backups folder goes in"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:  # the names are the database's, lengthened
        return "the database's file name is too long to name its backups after it: shorten it"
    return "free space, fix permissions"


def _stale(entry: os.DirEntry[str], clean: str | None) -> bool:
    # The name's end first: a shared folder holds thousands of backups, and the pattern backtracks.
    found = _PARTIAL.fullmatch(entry.name) if clean is not None and ".db.partial" in entry.name else None
    return found is not None and clean in ("*", found["tag"]) and entry.is_file(follow_symlinks=False)


@contextlib.contextmanager
def _partial(where: Path, pattern: str, mode: int, *, clean: str | None) -> Iterator[partial_files.Partial]:
    """A new empty file in ``where`` under a partial name, yielded with its final name. The
    partial file, and what SQLite kept beside it, is removed at the end, unless renamed. Those a killed
    run left are removed first: all (``clean`` "*"), or those of the database of that tag, or none;
    never one another run is still writing (see ``partial_files``)."""
    # O_NOFOLLOW: if the folder was swapped for a link since it was checked, this fails.
    descriptor = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with os.scandir(descriptor) as entries:
            stale = [e.name for e in entries if _stale(e, clean)]
        partial_files.remove_abandoned(descriptor, stale)
        name, held = partial_files.create(descriptor, pattern, mode)  # locked before it has a partial name
        try:
            partial = name + ".partial"
            try:
                os.rename(name, partial, src_dir_fd=descriptor, dst_dir_fd=descriptor)
            except OSError:
                os.unlink(name, dir_fd=descriptor)
                raise
            try:
                yield partial_files.Partial(where / partial, where / name, descriptor, held)
            finally:
                for leftover in (partial, partial + "-journal", partial + "-wal", partial + "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover, dir_fd=descriptor)
        finally:
            os.close(held)  # the lock goes with it
    finally:
        os.close(descriptor)


def described(path: Path, size: int | None = None) -> Backup:
    """A backup file, as its name (named as ``take`` names them) and size describe it."""
    match = _NAME.fullmatch(path.name)
    assert match is not None
    stamp = match["stamp"]
    taken_at = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:]}"
    return Backup(path, taken_at, int(match["version"]), path.stat().st_size if size is None else size)


def is_backup_name(path: Path) -> bool:
    """Whether ``path`` is named as vcp-migrate names backups."""
    return _NAME.fullmatch(path.name) is not None


def listing(database: Path, shared: Path | None = None) -> list[Backup]:
    """The backups of ``database``, newest first: in its own folder, every backup there; in a
    shared one, those tagged as its. Raises DatabaseError when the folder is a link or not a directory."""
    where = folder(database, shared)
    own = tag(database)
    try:
        _check_folder(where)
        with os.scandir(where) as entries:
            found = [
                described(where / entry.name, entry.stat(follow_symlinks=False).st_size)
                for entry in entries
                if _ours(entry.name, own, shared) and entry.is_file(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):  # no such folder (under a file: no folder either)
        return []
    except _NotAFolder as exc:
        raise DatabaseError(str(exc), where=str(where), hint="replace it by a folder, or remove it") from exc
    except OSError as exc:
        raise DatabaseError(
            f"cannot be read: {exc.strerror or exc}", where=str(where), hint="check its permissions and its folder's"
        ) from exc
    return sorted(found, key=_newest, reverse=True)


def _newest(backup: Backup) -> tuple[str, str]:
    return backup.taken_at, backup.path.name


def _ours(name: str, own: str, shared: Path | None) -> bool:  # a backup of the database whose tag is own
    if shared is not None and not name.endswith(f".{own}.db"):  # most names in a shared folder: no pattern run
        return False
    match = _NAME.fullmatch(name)
    if match is None:
        return False
    if shared is None:
        return match["database"] is None
    return match["database"] is not None and match["tag"] == own  # whichever of its names it was taken by


def prune(database: Path, keep: int, shared: Path | None = None) -> list[str]:
    """Delete all but the newest ``keep`` backups; return a warning for each that could not be
    deleted (another user's in a shared folder, an immutable file): it runs after the change was
    committed, which an old backup left in place must not turn into a failure."""
    try:
        old = listing(database, shared)[keep:]
    except DatabaseError as exc:  # the folder was swapped for a link (or a file) during the run
        return [f"{exc.where}: old backups were not rotated: {exc.what}" + (f" ({exc.hint})" if exc.hint else "")]
    except OSError as exc:  # it cannot be listed any more
        return [f"{folder(database, shared)}: old backups were not rotated: {exc.strerror or exc}"]
    kept = []
    for backup in old:
        try:
            backup.path.unlink(missing_ok=True)  # missing: deleted by hand meanwhile
            for sidecar in (Path(f"{backup.path}-wal"), Path(f"{backup.path}-shm")):  # left by a run killed using it
                if sidecar.is_file() and not sidecar.is_symlink():
                    sidecar.unlink(missing_ok=True)
        except OSError as exc:
            kept.append(
                f"{backup.path}: this old backup was kept, not deleted in rotation: {exc.strerror or exc}"
                " (delete it by hand, or check the folder's permissions)"
            )
    return kept


def discard(backup: Backup, *, folder_created: bool) -> str | None:
    """Delete a backup this run took and no longer needs, and its folder if this run made it.

    Returns the warning to give when the backup cannot be deleted (None once it is): the run
    failed, as a rule, and its own error is the one to report, not this one.
    """
    try:
        backup.path.unlink(missing_ok=True)
    except OSError as exc:  # its folder made read-only, a folder put in its place
        return (
            f"{backup.path}: the backup this run took was left, not deleted: {exc.strerror or exc}"
            " (the run changed nothing: delete it by hand)"
        )
    if folder_created:
        with contextlib.suppress(OSError):
            backup.path.parent.rmdir()
    return None


def copy_into(backup: Path, target: sqlite3.Connection, database: Path) -> str | None:
    """Overwrite the database behind ``target`` with ``backup``, through SQLite's locking, with the
    backup's page size and journal mode.

    Returns a note when the database keeps its own: only the last connection can take a database
    out of WAL mode, and SQLite cannot copy pages of another size into one in WAL mode, so while
    others have it open it is given a copy of the backup converted to its page size.
    """
    # Not read-only: a read-only connection to a backup of a database in WAL mode leaves the -wal
    # and -shm files SQLite needs beside it, where a connection that may write deletes them on close.
    source = sqlite3.connect(backup.absolute().as_uri() + "?mode=rw", uri=True)
    try:
        size, mode = _storage(source)
        own_size, own_mode = _storage(target)
        if own_mode != "wal" or (size == own_size and mode == "wal"):
            copy(source, target)  # a database in rollback mode takes the backup's header as it is
            return None
        if size == own_size:
            # Copied in WAL mode, and only then taken out of it: a run killed during the copy leaves
            # the database as it was, its journal mode too (taken out first, it was left in rollback mode).
            copy(source, target)
            with contextlib.suppress(sqlite3.Error):  # the copy is committed: what fails now only keeps WAL mode
                if _leave_wal(target):
                    return None
        elif _leave_wal(target):  # SQLite copies no page of another size into a database in WAL mode
            try:
                copy(source, target)
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    target.execute("PRAGMA journal_mode = WAL")
                raise
            return None
        kept = [f"page size ({own_size} bytes, not the backup's {size})"] if size != own_size else []
        kept += [f"journal mode (wal, not the backup's {mode})"] if mode != "wal" else []
        if size != own_size:
            with _converted(source, own_size, backup.parent, tag(database)) as converted:
                copy(converted, target)
        return (
            f"{database}: restored with its own {' and '.join(kept)}, since other connections have it open"
            " in WAL mode; restore again once they are closed to get the backup's"
        )
    finally:
        source.close()


def _storage(connection: sqlite3.Connection) -> tuple[int, str]:
    page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    return page_size, str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _leave_wal(target: sqlite3.Connection) -> bool:
    """Switch to rollback-journal mode; False if other connections have the database open (each
    holds the lock it needs until it closes: waiting would only delay the answer)."""
    timeout = int(target.execute("PRAGMA busy_timeout").fetchone()[0])
    target.execute("PRAGMA busy_timeout = 0")
    try:
        return str(target.execute("PRAGMA journal_mode = DELETE").fetchone()[0]).lower() == "delete"
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    finally:
        target.execute(f"PRAGMA busy_timeout = {timeout:d}")


@contextlib.contextmanager
def _converted(source: sqlite3.Connection, page_size: int, where: Path, label: str) -> Iterator[sqlite3.Connection]:
    """A temporary copy of ``source`` with ``page_size``, in the backup's folder under a partial name
    tagged ``label`` (the database's: one a killed run left in a shared folder is the next run's to remove)."""
    with _partial(where, f"{{stamp}}-v0{{suffix}}.{label}.db", 0o600, clean=None) as partial:
        converted = sqlite3.connect(partial.path, isolation_level=None)
        try:
            if not partial_files.also_open(partial.held):  # opened by path, as in take
                raise _NotAFolder("it was swapped for a symbolic link while the backup was converted")
            converted.execute("PRAGMA journal_mode = MEMORY")  # no journal made beside it by path
            copy(source, converted)
            # A backup of a database in WAL mode makes the copy WAL too: leaving it opens its -wal
            # and -shm by path, after the check above (the copy is only read from then on).
            converted.execute("PRAGMA journal_mode = MEMORY")  # VACUUM changes no page size in WAL mode
            converted.execute(f"PRAGMA page_size = {page_size:d}")
            converted.execute("VACUUM")
            yield converted
        finally:
            converted.close()
