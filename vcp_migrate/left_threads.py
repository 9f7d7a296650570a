"""The threads a Python migration leaves running when it returns: those of ``threading``, and
those started with ``_thread`` directly, which ``threading.enumerate()`` does not list."""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
from typing import NamedTuple

from .database import Connection

_GRACE_SECONDS = 2.0
# A thread started with _thread adds itself to Python's count only once it first holds the GIL:
# often after its starter has returned, and up to tens of ms later on a loaded machine.
_SETTLE_SECONDS = 1.0


class Threads(NamedTuple):
    """The threads before a step: those ``threading`` lists, Python's count of its threads
    (``_thread._count()``, which counts those started with ``_thread`` too), and the operating
    system's count (None where it is not known)."""

    listed: frozenset[threading.Thread]
    python: int
    system: int | None


def now() -> Threads:
    """The threads running now."""
    return Threads(frozenset(threading.enumerate()), _thread._count(), _system_count())


def stop_left(connection: Connection, before: Threads) -> str | None:
    """What a step left running since ``before`` ('backfill, 1 started with _thread'), or None.

    Such a thread may go on working after the migration's COMMIT. The connection refuses other
    threads (it checks the thread), so it cannot use ours; still, interrupt what runs on it and
    wait briefly for the threads, so the rollback and the release of the locks come first. A
    thread of _thread cannot be joined: its count is watched instead.
    """
    # A thread of _thread that asked for its threading object is listed as a dummy, which cannot be
    # joined: it is counted with the unlisted ones.
    listed = [
        thread
        for thread in threading.enumerate()
        if thread not in before.listed and thread.is_alive() and not isinstance(thread, threading._DummyThread)
    ]
    unlisted = _unlisted(before, len(listed))
    if not listed and not unlisted:
        return None
    connection.interrupt()
    deadline = time.monotonic() + _GRACE_SECONDS
    for thread in listed:
        thread.join(max(0.0, deadline - time.monotonic()))
    while unlisted and time.monotonic() < deadline:
        alive = sum(thread.is_alive() for thread in listed)
        if _thread._count() - before.python - alive <= 0:
            break
        time.sleep(0.01)
    names = [thread.name for thread in listed]
    if unlisted:
        names.append(f"{unlisted} started with _thread")
    return ", ".join(names)


def _unlisted(before: Threads, listed: int) -> int:
    """How many threads Python counts beyond those ``threading`` lists, waiting for one the operating
    system counts and Python not yet (a thread of _thread yet to run), unless every thread Python
    does not know of is one of C code (a library's thread pool), which Python never counts."""
    python = _thread._count() - before.python - listed
    deadline = time.monotonic() + _SETTLE_SECONDS
    others = _Others()
    while python <= 0 and before.system is not None and time.monotonic() < deadline:
        system = _system_count()
        if system is None or system - before.system - listed <= 0 or others.none_waits_for_python():
            break
        time.sleep(0.001)
        python = _thread._count() - before.python - listed
    return max(python, 0)


def quiet_seconds() -> float:
    """How long a thread must sleep without waking to be taken for C code's own: a thread of
    _thread waits for the GIL before Python counts it, and wakes at each switch interval (5 ms
    unless a migration or its application set another: read at each check) to ask for it; while
    we sleep, the GIL is free and it takes it at its first run."""
    return max(3 * sys.getswitchinterval(), 0.015)


class _Others:
    """The threads of the process that ``threading`` does not know of, as Linux shows them
    (/proc/self/task): when each last woke, to tell one waiting for the GIL from one of C code."""

    def __init__(self) -> None:
        self.woke: dict[str, tuple[str, float]] = {}  # thread id -> its count of runs, and when it changed

    def none_waits_for_python(self) -> bool:
        """Whether each such thread has slept without waking for a few switch intervals, or ended."""
        now = time.monotonic()
        known = {str(thread.native_id) for thread in threading.enumerate()}
        try:
            tasks = os.listdir("/proc/self/task")
        except OSError:
            return False
        quiet, window = True, quiet_seconds()
        for task in tasks:
            if task in known:
                continue
            runs = _runs(task)
            if runs is None:  # running or about to, or not to be read: it may be one of _thread yet to run
                self.woke.pop(task, None)
                quiet = False
                continue
            last = self.woke.setdefault(task, (runs, now))
            if last[0] != runs:
                self.woke[task] = (runs, now)
            if last[0] != runs or now - last[1] < window:
                quiet = False
        return quiet


def _runs(task: str) -> str | None:
    """How many times thread ``task`` of this process has run (Linux's schedstat), '' once it has
    ended, None while it runs or waits to run, or where that cannot be read."""
    try:
        with open(f"/proc/self/task/{task}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[:1]
    except FileNotFoundError:
        return ""
    except OSError:
        return None
    try:  # a kernel without schedstat: unknown, never taken for a thread that ended
        with open(f"/proc/self/task/{task}/schedstat", "rb") as schedstat:
            fields = schedstat.read().split()
    except OSError:
        return None
    if state in ([b"Z"], [b"X"]):
        return ""
    if state not in ([b"S"], [b"D"]) or len(fields) < 3:
        return None
    return fields[2].decode()


def _system_count() -> int | None:
    """The process's threads as the operating system counts them, from the moment each is created:
    on Linux, /proc/self/task has a link for each (and two more); elsewhere None."""
    try:
        return os.stat("/proc/self/task").st_nlink
    except OSError:
        return None
