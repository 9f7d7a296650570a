"""The partial files a backup is copied into before it gets its name, and which of those left in a
backups folder are abandoned; and making the rename that gives a file its name durable.

A run holds an flock on its partial file from the moment the file is created until it is renamed
or removed; the system drops it when the run ends or dies. So a partial file that can be locked
is no run's any more, and one that cannot is being written: never removed, even when its run
stalled past a server's lease and another run is backing up the same database meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple


class Partial(NamedTuple):
    """A partial file being written: its path, the path it gets once complete, and the descriptors
    of its folder and of itself (which holds its flock)."""

    path: Path
    final: Path
    folder: int
    held: int


def create(descriptor: int, pattern: str, mode: int, *, locked: bool = True) -> tuple[str, int]:
    """A new empty file named after ``pattern``, and a descriptor of it holding its flock (unless
    not ``locked``: for a caller that holds a lock of its own, on a file system that may have none)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        name = pattern.format(stamp=stamp, suffix=suffix)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(name, flags, mode, dir_fd=descriptor)
        except FileExistsError:
            continue
        if not locked:
            return name, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # new: no one else can hold it
        except BaseException:  # a file system without locks (ENOLCK), Ctrl-C: nothing of it is left
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=descriptor)
            raise
        return name, fd
    raise OSError(f"too many backups named {stamp}")


# A temporary file untouched this long is taken for one a killed run left (where no lock tells it):
# every writer of one writes it in well under that.
ABANDONED_AFTER_SECONDS = 60.0


def untouched(status: os.stat_result) -> bool:
    """Whether the file of ``status`` was last written more than ``ABANDONED_AFTER_SECONDS`` ago."""
    return time.time() - status.st_mtime > ABANDONED_AFTER_SECONDS


def remove_abandoned(descriptor: int, names: list[str]) -> None:
    """Remove the partial files among ``names`` that no run is writing, and what SQLite kept beside
    them. A run holds an flock on its partial file while it copies, which the system drops when the
    run ends or dies: a file that can be locked is abandoned. Another run's copy under way (one
    that stalled past a server's lease, say) is never touched."""
    for name in sorted(names, key=lambda name: name.endswith(".partial"), reverse=True):  # files first
        main = name[: name.rindex(".partial") + len(".partial")]
        if name == main:
            _remove_if_unlocked(descriptor, name)
        elif not _exists_in(descriptor, main):  # beside a partial file gone (removed above, or renamed)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=descriptor)


def _remove_if_unlocked(descriptor: int, name: str) -> None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=descriptor)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a run is copying into it
        held = os.fstat(fd)
        now = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):  # still the file locked, not a new run's
            os.unlink(name, dir_fd=descriptor)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _exists_in(descriptor: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=descriptor, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def also_open(held: int) -> bool:
    """Whether this process has the file of ``held`` open through another descriptor too: then the
    file SQLite just opened by its path is this one, not one a link put in its place since (a
    folder swapped for a link to another, where a link to someone's file has the partial's name).
    True where that cannot be told (no /proc/self/fd)."""
    listed = "/proc/self/fd"
    try:
        names = os.listdir(listed)
    except OSError:
        return True
    ours = os.fstat(held)
    for name in names:
        if name == str(held):
            continue
        with contextlib.suppress(OSError):
            found = os.stat(f"{listed}/{name}")
            if (found.st_dev, found.st_ino) == (ours.st_dev, ours.st_ino):
                return True
    return False


def sync_folder(path: Path) -> None:
    """Sync the folder ``path`` was just renamed into: until then, a power loss can bring back the
    file it replaced, or none. A folder that cannot be opened or synced (some file systems refuse
    it) leaves the rename to the file system's own schedule."""
    with contextlib.suppress(OSError):
        folder = os.open(path.absolute().parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
