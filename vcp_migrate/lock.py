"""The run lock: one vcp-migrate writer per database at a time.

SQLite's own locks last one transaction, but a run is several transactions and must not
interleave with another run. The run lock is an advisory lock (flock) on ``<db>.vcp-lock``:
the operating system releases it when the holder exits or is killed, so a dead runner never
leaves a lock behind. The holder deletes the file on release; a waiter that locked the file
just deleted notices (the inode changed) and tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from .errors import DatabaseError, LockTimeout

_POLL_SECONDS = 0.02


def lock_path(database: Path) -> Path:
    """Where the run lock of ``database`` lives."""
    return database.with_name(database.name + ".vcp-lock")


class RunLock:
    """Context manager holding the run lock of a database, waiting at most ``timeout`` seconds."""

    def __init__(self, database: Path, timeout: float) -> None:
        self.path = lock_path(database)
        self.database = database
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        deadline = time.monotonic() + self.timeout
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another vcp-migrate run ({self._holder()}) held the database for {self.timeout:g}s",
                        where=str(self.database),
                        hint="wait for it to finish or raise --lock-timeout; nothing was changed",
                    ) from None
                time.sleep(_POLL_SECONDS)
                continue
            if self._still_current(fd):
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                self._fd = fd
                return self
            os.close(fd)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the lock file {self.path.name}: {exc.strerror}",
                where=str(self.database),
                hint="the database's directory must be writable; nothing was changed",
            ) from None

    def _still_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "another process"
