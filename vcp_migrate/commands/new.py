"""new: create the next migration file with an empty up and down; never overwrites a file.

Normalise the name, read the history, lock the directory, read it for the next version and the
prefix width, create the file exclusively.

Two ``new`` started together would read the same highest version and create two files with one
version. So each holds an advisory lock (flock) on the migrations directory itself, from reading it
to creating its file: no lock file is ever left in the user's folders, and the operating system
drops the lock when its holder exits or is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import discovery, scaffold
from ..errors import MigrationFileError, setting
from .context import Settings, applied, scan

_POLL_SECONDS = 0.02


def new(settings: Settings, name: str, *, sql: bool) -> Path:
    """Create the next migration file; return its path."""
    snake = scaffold.normalise_name(name)
    folder = settings.migrations_dir
    _check_folder(folder)
    in_history = list(applied(settings) or {})
    with _locked(folder, settings.lock_timeout):
        found = scan(settings)
        files = discovery.without_duplicates(found).migrations
        taken = [problem.version for problem in found.problems if problem.version is not None]  # a link to nothing
        version = scaffold.next_version([*(f.version for f in files), *taken, *in_history])
        if version > discovery.MAX_VERSION:  # its file would be an invalid migration
            raise MigrationFileError(
                f"the next version, {version}, is above the highest a migration can have ({discovery.MAX_VERSION})",
                where=str(folder),
                hint="renumber the migration of the highest version; nothing was created",
            )
        width = scaffold.prefix_width(f.path.name.partition("_")[0] for f in files)
        path = folder / scaffold.file_name(version, snake, width=width, sql=sql)
        _create(path, scaffold.template(snake, sql=sql))
    return path


def _check_folder(folder: Path) -> None:
    """Refuse a folder that cannot be made or used, before anything is read or created."""
    if not os.path.lexists(folder):
        if not folder.absolute().parent.is_dir():
            raise MigrationFileError(
                f"directory {folder.parent} does not exist",
                where=str(folder),
                hint=f"check {setting('migrations_dir')}",
            )
    elif not folder.exists():  # mkdir would say it exists, and creating a file in it would fail
        raise _link_to_nothing(folder)


def _link_to_nothing(folder: Path) -> MigrationFileError:
    with contextlib.suppress(OSError):
        return MigrationFileError(
            f"is a symbolic link to {os.readlink(folder)!r}, which does not exist",
            where=str(folder),
            hint="point it to the migrations folder, or remove it; nothing was created",
        )
    return MigrationFileError(
        "cannot be opened", where=str(folder), hint=f"check {setting('migrations_dir')}; nothing was created"
    )


@contextmanager
def _locked(folder: Path, timeout: float) -> Iterator[None]:
    """Hold the lock of ``folder``, creating it if missing (not its parents); a folder created here
    is removed again if what runs inside fails."""
    deadline = time.monotonic() + timeout
    while True:
        created = _make(folder)
        fd = _open(folder)
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    # A folder made here is left: the holder may be about to create its file in it.
                    raise MigrationFileError(
                        f"another vcp-migrate new held this folder for {timeout:g}s",
                        where=str(folder),
                        hint="nothing was created; run it again once the other has finished",
                    )
                time.sleep(_POLL_SECONDS)
            if _is_at(folder, fd):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the folder was removed or replaced while we waited: lock the one there now
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):  # not empty: someone put a file there meanwhile
                os.rmdir(folder)
        raise
    finally:
        os.close(fd)  # releases the lock


def _make(folder: Path) -> bool:
    """Create ``folder`` if it is missing; whether this call created it."""
    if os.path.lexists(folder):
        return False
    try:
        os.mkdir(folder)
    except FileExistsError:  # another new made it first
        return False
    except OSError as exc:
        raise MigrationFileError(
            f"cannot be created: {exc.strerror}", where=str(folder), hint="check the folder above it"
        ) from exc
    return True


def _open(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError as exc:
        raise MigrationFileError(
            "is not a directory", where=str(folder), hint=f"check {setting('migrations_dir')}"
        ) from exc
    except FileNotFoundError as exc:
        if os.path.islink(folder):
            raise _link_to_nothing(folder) from exc
        raise MigrationFileError(
            "was removed while new ran", where=str(folder), hint="nothing was created; run it again"
        ) from exc
    except OSError as exc:
        raise MigrationFileError(
            f"cannot be opened: {exc.strerror}", where=str(folder), hint="check its permissions"
        ) from exc


def _try_lock(fd: int) -> bool:
    """Whether the lock is ours now (False: another new holds it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        # A file system that cannot lock a folder (NFS emulates flock with POSIX locks, which need a
        # descriptor open for writing): go on unlocked, as before, rather than never create a file.
        return True
    return True


def _is_at(folder: Path, fd: int) -> bool:
    """Whether ``folder`` still names the directory ``fd`` locked."""
    try:
        now = os.stat(folder)
    except OSError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _create(path: Path, text: str) -> None:
    """Create ``path`` (never an existing file) holding ``text``.

    On a full disk the file is created, then writing it fails: the file created here is removed
    again, so that no empty migration is left to fail ``up`` and take a version.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError as exc:
        raise MigrationFileError("already exists", where=str(path), hint="nothing was overwritten") from exc
    except OSError as exc:  # a read-only directory, or a file system with shorter names
        raise MigrationFileError(
            f"cannot be created: {exc.strerror}", where=str(path), hint="check the directory and the name"
        ) from exc
    created = os.fstat(fd)
    try:
        try:
            data = text.encode("utf-8")
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):  # ours, not one put in its place
                os.unlink(path)
        if isinstance(exc, OSError):
            raise MigrationFileError(
                f"cannot be written: {exc.strerror}",
                where=str(path),
                hint="nothing was created; check the space left on its device",
            ) from exc
        raise
