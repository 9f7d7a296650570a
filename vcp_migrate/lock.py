"""The run lock: one vcp-migrate writer per database at a time.

SQLite's own locks last one transaction, but a run is several transactions and must not
interleave with another run. The run lock is an advisory lock (flock) on a lock file beside the
database:

- It is keyed on the database file's identity, not on the path given: the lock file is
  ``.vcp-lock-<device>-<inode>`` in the directory the database really is in (symbolic links
  resolved), so every path to one database takes the same lock. Hard links in other directories
  still cannot meet there; the engine warns when the database has more than one.
- The operating system releases a flock when its holder exits or is killed, so a dead runner
  never leaves a lock behind. The holder deletes the file on release; a waiter that locked the
  file just deleted notices (the inode changed) and tries again. A holder whose file was deleted
  or replaced learns it from ``verify`` before each commit, since a newcomer could now lock too.
- Anyone who can write the database's directory can plant something under the lock's name. So
  the lock file is never followed through a link, and only a file that looks like one we created
  (a regular file with one link, holding at most a pid) is locked, truncated or written.
- Nothing here keeps a descriptor of the database: closing any descriptor of a file drops the
  POSIX locks the process holds on it, which SQLite relies on. Its identity comes from os.stat.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from .errors import DatabaseError, Interrupted, LockTimeout, setting

_POLL_SECONDS = 0.02
PREFIX = ".vcp-lock-"  # how a run lock's file name starts (a fleet's report never takes one)
_MAX_PID_BYTES = 20  # a lock file holds a pid and nothing else
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Identity(NamedTuple):
    """What makes two paths one database file: its device and inode (and, for the warning, its links)."""

    device: int
    inode: int
    links: int
    size: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.device, self.inode)


def identify(database: Path) -> tuple[str, Identity] | None:
    """The resolved path of ``database`` and its identity, or None if it does not exist.

    Raises DatabaseError if it cannot be examined (a loop of links, a directory without access).
    """
    # Names are kept as strings here: a Path made and turned back into a string at every call
    # costs more than the system calls the lock makes for each database of a fleet.
    resolved = os.path.realpath(database)
    try:
        status = os.stat(resolved)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DatabaseError(
            f"cannot be examined: {exc.strerror}", where=str(database), hint=f"check {setting('db_path')}"
        ) from exc
    return resolved, Identity(status.st_dev, status.st_ino, status.st_nlink, status.st_size)


def _restat(resolved: str) -> Identity | None:
    """The identity of the file now at ``resolved`` (links already resolved), None if it is gone."""
    try:
        status = os.stat(resolved)
    except FileNotFoundError:
        return None
    return Identity(status.st_dev, status.st_ino, status.st_nlink, status.st_size)


def lock_path(database: Path) -> Path:
    """Where the run lock of the existing ``database`` lives (FileNotFoundError if it does not exist)."""
    found = identify(database)
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "no such database", str(database))
    return Path(_lock_file(*found))


def _lock_file(resolved: str, identity: Identity) -> str:
    return os.path.join(os.path.dirname(resolved), f"{PREFIX}{identity.device}-{identity.inode}")


class RunLock:
    """Context manager holding the run lock of a database, waiting at most ``timeout`` seconds.

    With ``create``, a database that does not exist is created empty first (an empty file is an
    empty SQLite database), so that runs racing to create it agree on one file and so one lock;
    ``created`` then says this run made it. ``identity`` is the database's once the lock is held.
    """

    def __init__(
        self, database: Path, timeout: float, *, create: bool = False, on_wait: Callable[[str], None] | None = None
    ) -> None:
        self.database = database
        self.timeout = timeout
        self.create = create
        self.on_wait = on_wait  # told once, when the lock is held by another run and this one waits
        self._created: tuple[int, int] | None = None  # the identity of the database this run created
        self.identity: Identity | None = None
        self._resolved: str | None = None
        self._path: str | None = None
        self._fd: int | None = None
        self._waited_for: str | None = None  # the holder of the lock, once this run has had to wait

    @property
    def created(self) -> bool:
        """This run created the database (empty)."""
        return self._created is not None

    @property
    def held(self) -> Identity:
        """The identity of the database whose lock this run holds."""
        if self.identity is None:
            raise RuntimeError("the run lock is not held")
        return self.identity

    @property
    def resolved(self) -> Path:
        """The database file whose lock this run holds, links resolved: open this one, not the path
        given, so a link repointed during the run cannot move the run onto an unlocked database."""
        if self._resolved is None:
            raise RuntimeError("the run lock is not held")
        return Path(self._resolved)

    @property
    def path(self) -> Path:
        """The lock file this run holds."""
        if self._path is None:
            raise RuntimeError("the run lock is not held")
        return Path(self._path)

    def __enter__(self) -> RunLock:
        try:
            return self._acquire()
        except LockTimeout:
            raise  # its holder may be using the database this run created: leave it
        except DatabaseError:
            self.remove_if_created_empty()  # refused: no run can hold this lock, so it is no one's
            raise
        except KeyboardInterrupt as exc:  # nothing is done before the lock is held: not "rolled back"
            if isinstance(exc, Interrupted):
                raise
            held_by = self._waited_for
            when = f"while waiting for the run lock held by {held_by}" if held_by else "before the run lock was taken"
            raise Interrupted(f"interrupted {when}; nothing was changed") from None

    def _acquire(self) -> RunLock:
        deadline = time.monotonic() + self.timeout
        while True:
            resolved, identity = self._database()
            path = _lock_file(resolved, identity)
            fd = self._open(path)
            if fd is None:
                continue
            try:  # closed on every way out but the run's: Ctrl-C between flock and here left it held for good
                taken = self._take(fd, path, resolved, identity)
            except BaseException:
                self._fd = None
                os.close(fd)
                raise
            if taken is True:
                return self
            os.close(fd)
            if taken is False:
                continue  # not this database's lock after all: look again
            holder = self._waited_for = taken
            if self.on_wait is not None and self.timeout > 0:
                self.on_wait(f"waiting for the run lock held by {holder} (up to {self.timeout:g} s)")
                self.on_wait = None
            if time.monotonic() >= deadline:
                what = f"another vcp-migrate run ({holder}) held the database for {self.timeout:g}s"
                hint = f"wait for it to finish or raise {setting('lock_timeout')}; nothing was changed"
                raise LockTimeout(what, where=str(self.database), hint=hint)
            time.sleep(_POLL_SECONDS)

    def _take(self, fd: int, path: str, resolved: str, identity: Identity) -> bool | str:
        """Lock ``fd`` and make it the run's (True); its holder when another run has it, False when
        it is not this database's lock. Never closes ``fd``: the caller does, unless True."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        held = os.fstat(fd)
        if not _is_at(path, held):  # its holder deleted it as we locked it
            return False
        now = _restat(resolved)
        if now is None or now.key != identity.key:
            # The database was removed or replaced while we waited: this is not its lock.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return False
        _check_content(fd, path, self.database, held)  # again: no one else may write it now
        # Write, then cut to length: truncating to zero first makes ext4 flush the file at
        # close (its guard for files rewritten in place), which costs a disk write per run.
        pid = str(os.getpid()).encode()
        os.pwrite(fd, pid, 0)
        if held.st_size > len(pid):
            os.ftruncate(fd, len(pid))
        self._fd, self._path, self.identity, self._resolved = fd, path, now, resolved
        return True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None or self._path is None:
            return
        # A file put in our lock file's place is a newcomer's lock: never delete it.
        if same_file(self._path, self._fd):
            _release(self._path, self._fd)
        else:
            os.close(self._fd)
        self._fd = None

    def remove_if_created_empty(self) -> None:
        """Delete the database if this run created it and it is still empty.

        Call it holding the lock (or when no run can hold it): a run waiting for the lock then
        finds the database gone and starts again, rather than writing into a deleted file.
        """
        if self._created is None:
            return
        now = identify(self.database)
        if now is not None and now[1].key == self._created and now[1].size == 0:
            os.unlink(now[0])

    def verify(self) -> None:
        """Raise DatabaseError unless the file at the lock path is still the one this run holds,
        and the database's path still names the file the run opened.

        If it was deleted or replaced, a newcomer takes the lock on the new file while this run
        goes on, so the run must stop before committing anything more.
        """
        if self._fd is None or self._path is None or not same_file(self._path, self._fd):
            raise DatabaseError(
                f"the lock file {self._path} was removed or replaced while this run held it;"
                " another run may be changing the database",
                where=str(self.database),
                hint="nothing more was applied",
            )
        now = _restat(self._resolved) if self._resolved is not None else None
        if self.identity is not None and (now is None or now.key != self.identity.key):
            raise DatabaseError(  # a commit now would go into a file no path names any more
                "was moved, deleted or replaced during the run: its path no longer names the file the run opened",
                where=str(self.database),
                hint="nothing more was applied; find what moved it",
            )

    def _database(self) -> tuple[str, Identity]:
        while True:
            found = identify(self.database)
            if found is not None:
                return found
            if not self.create:
                hint = f"check {setting('db_path')}; only 'migrate' creates a database"
                raise DatabaseError("does not exist", where=str(self.database), hint=hint)
            self._create_empty()

    def _create_empty(self) -> None:
        resolved = os.path.realpath(self.database)
        try:
            os.close(os.open(resolved, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        except FileExistsError:
            return  # another run created it first, or a link appeared: look again
        except OSError as exc:
            raise DatabaseError(
                f"cannot be created: {exc.strerror}",
                where=str(self.database),
                hint="its directory must exist and be writable; nothing was changed",
            ) from exc
        found = identify(self.database)
        self._created = found[1].key if found else None

    def _open(self, path: str) -> int | None:
        """Open (or create) the lock file at ``path``, refusing anything we would not have created;
        None if its holder deleted it as we opened it."""
        try:  # most often there is none: a file created here is ours, empty, and nothing to look at
            return os.open(path, _OPEN_FLAGS | os.O_EXCL, 0o600)
        except FileExistsError:  # anything at all is there, a link too: look at it before opening it
            pass
        except OSError as exc:
            raise _cannot_create(path, exc, self.database) from exc
        # Looked at before opening too: opening a hard link to the database and closing it would
        # drop the SQLite locks this process holds on it.
        with contextlib.suppress(FileNotFoundError):
            _check_kind(os.lstat(path), path, self.database)
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _not_ours(path, "is a symbolic link", self.database) from exc
            if exc.errno == errno.EISDIR:
                raise _not_ours(path, "is a directory", self.database) from exc
            raise _cannot_create(path, exc, self.database) from exc
        status = os.fstat(fd)
        if status.st_nlink == 0:  # released and deleted between our open and now: look again
            os.close(fd)
            return None
        try:
            _check_content(fd, path, self.database, status)
        except DatabaseError:
            os.close(fd)
            raise
        return fd


def _cannot_create(path: str, exc: OSError, database: Path) -> DatabaseError:
    hint = "the database's directory must be writable; nothing was changed"
    return DatabaseError(f"cannot create the lock file {path}: {exc.strerror}", where=str(database), hint=hint)


def _check_kind(status: os.stat_result, path: str, database: Path) -> None:
    """Refuse what cannot be a lock file we created: a link, a special file, a file with other names."""
    if stat.S_ISLNK(status.st_mode):
        raise _not_ours(path, "is a symbolic link", database)
    if stat.S_ISDIR(status.st_mode):
        raise _not_ours(path, "is a directory", database)
    if not stat.S_ISREG(status.st_mode):
        raise _not_ours(path, "is not a regular file", database)
    if status.st_nlink != 1:
        raise _not_ours(path, f"has {status.st_nlink} hard links", database)
    if status.st_size > _MAX_PID_BYTES:
        raise _not_ours(path, f"holds {status.st_size} bytes", database)


def _check_content(fd: int, path: str, database: Path, status: os.stat_result) -> None:
    """Refuse what ``_check_kind`` refuses (``status``: the fstat of ``fd``), and a file that holds
    anything but a pid."""
    _check_kind(status, path, database)
    content = os.pread(fd, _MAX_PID_BYTES + 1, 0).strip() if status.st_size else b""
    if content and not content.isdigit():
        raise _not_ours(path, "holds something other than a pid", database)


def _not_ours(path: str, what: str, database: Path) -> DatabaseError:
    hint = f"remove it once no vcp-migrate run is using {database}; nothing was changed"
    return DatabaseError(f"{what}, not a run lock of vcp-migrate", where=str(path), hint=hint)


def same_file(path: str | Path, fd: int) -> bool:
    """Whether ``path`` names the file open as ``fd`` (never through a link: a link is another file)."""
    return _is_at(path, os.fstat(fd))


def _is_at(path: str | Path, held: os.stat_result) -> bool:
    """Whether the file ``held`` (an fstat) is the one at ``path``."""
    try:
        at_path = os.lstat(path)
    except FileNotFoundError:
        return False
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def _release(path: str, fd: int) -> None:
    """Delete the lock file we hold, then let go of it: a waiter on it notices the deletion."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, _MAX_PID_BYTES, 0).decode(errors="replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"
