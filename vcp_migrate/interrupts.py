"""Ctrl-C during a long SQLite statement stops that statement at once.

Python runs a signal's handler between bytecodes, so a KeyboardInterrupt waits for the C call in
progress: Ctrl-C during a backfill of ten minutes waited for the end of it, then rolled it back.
While a migration's step runs (``interruptible``), the C-level handler also writes the signal's
number to a pipe (``signal.set_wakeup_fd``) that a thread of ours reads; that thread calls
``interrupt()`` on the step's connection, the statement fails at once ("interrupted"), and the
handler then raises KeyboardInterrupt as it would have: the run rolls back as after any Ctrl-C.

Only where the signal stops the run anyway: in the main thread, for SIGINT and SIGTERM while
their handler is Python's own (which raises at once) or one that says after how many signals it
raises (a fleet's first Ctrl-C lets the database in hand finish, the second stops it), and only
when no one else uses the wakeup descriptor (asyncio, an application that embeds us). A handler
of an application's own is left to decide: nothing is interrupted for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Protocol

_STOPPING = (signal.SIGINT, signal.SIGTERM)


class Interruptible(Protocol):
    """A connection whose statement in progress another thread can stop."""

    def interrupt(self) -> None: ...


class _Watcher:
    """The pipe the signals are written to, and the thread that reads it (one per process)."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.write, False)  # set_wakeup_fd requires it: a signal handler never blocks
        self.lock = threading.Lock()
        self.connection: Interruptible | None = None  # the step's, while one runs
        self.counted: tuple[int, ...] = ()
        self.left = 0  # how many of those signals, from now, make the handler raise
        self.fired = False  # they came: the step must end in KeyboardInterrupt
        threading.Thread(target=self._watch, name="vcp-migrate-interrupts", daemon=True).start()

    def _watch(self) -> None:
        while True:
            for number in os.read(self.read, 64):
                with self.lock:  # never once the step is over: its connection goes on with our statements
                    if self.connection is None or number not in self.counted:
                        continue
                    self.left -= 1
                    if self.left <= 0:
                        self.fired = True
                        with contextlib.suppress(Exception):  # closed meanwhile: nothing runs on it
                            self.connection.interrupt()


_watcher: _Watcher | None = None


def _signals_to_raise() -> tuple[tuple[int, ...], int] | None:
    """The stopping signals whose handler raises KeyboardInterrupt, and after how many of them."""
    counted: list[int] = []
    left: int | None = None
    for number in _STOPPING:
        handler = signal.getsignal(number)
        if handler is signal.default_int_handler:
            after = 1
        elif callable(raises_after := getattr(handler, "raises_after", None)):
            after = int(raises_after())
        else:
            continue
        counted.append(number)
        left = after if left is None else min(left, after)
    return None if left is None else (tuple(counted), left)


@contextlib.contextmanager
def interruptible(connection: Interruptible) -> Iterator[None]:
    """While inside, a Ctrl-C (or SIGTERM) that stops the run also stops what SQLite is running
    on ``connection``, instead of waiting for it to end. Anywhere it cannot, nothing changes."""
    global _watcher
    policy = _signals_to_raise() if threading.current_thread() is threading.main_thread() else None
    if policy is None:
        yield
        return
    if _watcher is None:
        _watcher = _Watcher()
    watcher = _watcher
    with watcher.lock:
        watcher.connection, (watcher.counted, watcher.left), watcher.fired = connection, policy, False
    try:
        previous = signal.set_wakeup_fd(watcher.write, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous != -1:  # someone else's descriptor (or none could be set): it stays theirs
        if previous is not None:
            signal.set_wakeup_fd(previous)
        with watcher.lock:
            watcher.connection = None
        yield
        return
    # Once the signals that stop the step came, it ends in KeyboardInterrupt, whatever it raised
    # ("interrupted", or what followed from it): several signals during one C call run their
    # Python handler once, so a handler that raises at the second (a fleet's) saw only the first.
    try:
        yield
    except KeyboardInterrupt:
        _disarm(watcher)
        raise
    except BaseException:
        if not _disarm(watcher):
            raise
        raise KeyboardInterrupt from None
    if _disarm(watcher):
        raise KeyboardInterrupt


def _disarm(watcher: _Watcher) -> bool:
    """Stop watching for the step; whether the signals that stop it came."""
    signal.set_wakeup_fd(-1)
    with watcher.lock:
        watcher.connection = None
        return watcher.fired
