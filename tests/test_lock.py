"""The run lock in one process: flock locks belong to open files, so two RunLocks conflict."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from vcp_migrate import DatabaseError, LockTimeout
from vcp_migrate.lock import RunLock, lock_path


def test_second_holder_times_out_naming_the_first(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    with RunLock(database, timeout=1):
        assert lock_path(database).read_text() == str(os.getpid())
        started = time.monotonic()
        expected = rf"another vcp-migrate run \(pid {os.getpid()}\) held the database for 0.2s"
        with pytest.raises(LockTimeout, match=expected):
            RunLock(database, timeout=0.2).__enter__()
        assert 0.2 <= time.monotonic() - started < 1.0
    assert not lock_path(database).exists()


def test_waiter_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    first = RunLock(database, timeout=1).__enter__()
    threading.Timer(0.2, first.__exit__, (None, None, None)).start()
    with RunLock(database, timeout=5) as second:
        assert second.path.exists()
    assert not lock_path(database).exists()


def test_lock_file_replaced_under_a_waiter_is_not_trusted(tmp_path: Path) -> None:
    """A waiter that locks a file its holder has just deleted must not think it holds the lock."""
    database = tmp_path / "x.db"
    with RunLock(database, timeout=1):
        stale = RunLock(database, timeout=1)
        fd = os.open(stale.path, os.O_RDWR)
        os.unlink(stale.path)
        assert stale._still_current(fd) is False
        os.close(fd)


def test_unwritable_place_for_the_lock_file(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="cannot create the lock file x.db.vcp-lock"):
        RunLock(tmp_path / "missing" / "x.db", timeout=0).__enter__()
