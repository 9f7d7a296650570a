"""new: create the next migration file with an empty up and down; never overwrites a file.

Normalise the name, read the history, lock the directory, read it for the next version and the
prefix width, create the file exclusively, whole or not at all.

Two ``new`` started together would read the same highest version and create two files with one
version. So each holds an advisory lock (flock) on the migrations directory itself, from reading it
to creating its file: no lock file is ever left in the user's folders, and the operating system
drops the lock when its holder exits or is killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import discovery, partial_files, scaffold
from ..errors import MigrationFileError, setting
from .context import Settings, applied, scan

_POLL_SECONDS = 0.02


def new(settings: Settings, name: str, *, sql: bool) -> Path:
    """Create the next migration file; return its path."""
    snake = scaffold.normalise_name(name)
    folder = settings.migrations_dir
    _check_folder(folder)
    in_history = list(applied(settings) or {})
    with _locked(folder, settings.lock_timeout) as descriptor:
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
        _create(descriptor, path, scaffold.template(snake, sql=sql))
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
def _locked(folder: Path, timeout: float) -> Iterator[int]:
    """Hold the lock of ``folder``, creating it if missing (not its parents), and yield a descriptor
    of it; a folder created here is removed again if what runs inside fails."""
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
        yield fd
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


def _create(folder: int, path: Path, text: str) -> None:
    """Create ``path`` in the folder of descriptor ``folder`` (never over an existing file), holding
    ``text`` whole or not at all.

    The text is written to a partial file and synced before the file gets its name, by a link,
    which fails where the name is taken (a rename would replace the file there); the folder is
    synced after. Created under its name and written there, a power loss could leave it empty or
    cut short. A write that fails (a full disk) leaves neither file: no empty migration is left
    to fail ``up`` and take a version.
    """
    data = text.encode("utf-8")
    _remove_abandoned(folder)
    try:  # unlocked: the folder's lock is what keeps two new apart, where the file system has locks
        partial, fd = partial_files.create(folder, _PARTIAL, 0o666, locked=False)
    except OSError as exc:  # a read-only directory
        raise _not_created(path, exc) from exc
    created = os.fstat(fd)
    try:
        _fill(fd, data, path)
        try:
            os.link(partial, path.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError as exc:
            raise _exists(path) from exc
        except OSError as exc:
            if exc.errno not in _NO_LINKS:  # a file system with shorter names, say
                raise _not_created(path, exc) from exc
            _create_in_place(folder, path, data)
    finally:
        _remove_if_same(folder, partial, created)
    partial_files.sync_folder(path)


# Short: the migration's own name may take all the bytes a file name can have. Discovery skips a
# name that starts with a dot, should a power loss leave one.
_PARTIAL = ".vcp-migrate-new.{stamp}{suffix}.partial"
_ABANDONED = re.compile(r"\.vcp-migrate-new\.\d{8}T\d{6}\.\d{3}Z(?:-\d+)?\.partial")
# What a file system without hard links (FAT, some network and FUSE ones) answers a link with.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


def _remove_abandoned(folder: int) -> None:
    """Remove the partial files a new killed while writing (or a power loss) left: named exactly as
    new names them, regular files, untouched for a minute (no new writes one for so long)."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not _ABANDONED.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            if partial_files.untouched(entry.stat(follow_symlinks=False)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.name, dir_fd=folder)


def _create_in_place(folder: int, path: Path, data: bytes) -> None:
    """Create ``path`` itself (never an existing file) and write ``data`` into it: only where a
    file cannot be linked, so a power loss while it is written can still leave it cut short."""
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=folder)
    except FileExistsError as exc:
        raise _exists(path) from exc
    except OSError as exc:
        raise _not_created(path, exc) from exc
    created = os.fstat(fd)
    try:
        _fill(fd, data, path)
    except BaseException:
        _remove_if_same(folder, path.name, created)
        raise


def _fill(fd: int, data: bytes, path: Path) -> None:
    """Write ``data`` to ``fd``, sync it to disk and close it. Raises MigrationFileError if that fails."""
    try:
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise MigrationFileError(
            f"cannot be written: {exc.strerror}",
            where=str(path),
            hint="nothing was created; check the space left on its device",
        ) from exc


def _remove_if_same(folder: int, name: str, created: os.stat_result) -> None:
    """Remove ``name`` if it is still the file created here, not one put in its place."""
    with contextlib.suppress(OSError):
        now = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (created.st_dev, created.st_ino):
            os.unlink(name, dir_fd=folder)


def _exists(path: Path) -> MigrationFileError:
    return MigrationFileError("already exists", where=str(path), hint="nothing was overwritten")


def _not_created(path: Path, exc: OSError) -> MigrationFileError:
    return MigrationFileError(
        f"cannot be created: {exc.strerror}", where=str(path), hint="check the directory and the name"
    )
