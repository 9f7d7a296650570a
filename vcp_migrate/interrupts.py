"""Ctrl-C during a long SQLite statement stops that statement at once.

Python runs a signal's handler between bytecodes, so a KeyboardInterrupt waits for the C call in
progress: Ctrl-C during a backfill of ten minutes waited for the end of it, then rolled it back.
While a run watches (from its first migration step to the end of its session, or a fleet's whole
run with ``watching``), the C-level handler also writes each signal's number to a pipe
(``signal.set_wakeup_fd``) that a thread of ours reads and counts. When the signals that stop the
run have come, the thread interrupts the connection of the step running (``sqlite3_interrupt``),
if one is, and the handler raises KeyboardInterrupt as it would have: the run rolls back as after
any Ctrl-C. Our own statements (the history row, the COMMIT) are never interrupted.

Only where the signal stops the run anyway: in the main thread, under Python's own SIGINT
handler (one Ctrl-C stops), or a fleet's with ``--jobs 1`` (the first lets the database in hand
finish, the second stops it). Python runs a handler once for several signals that came during one
C call, so the fleet's handler asks ``fired()`` whether the second came, and the thread makes it
run once more when the count is reached. An application's own handler decides what Ctrl-C
means: nothing is interrupted for it; nor when someone else (asyncio, the application) uses the
wakeup descriptor: theirs is put back, with what came meanwhile. A process forked meanwhile
(by a migration) forgets all of it.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Connection

_STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})
_STOP_THREAD = b"\0"  # not a signal's number: told to end


class _Scope:
    """What one run watches with: the pipe, the thread that reads it, and what it counted."""

    def __init__(self, counted: frozenset[int], stop_at: int, *, lazy: bool) -> None:
        self.counted = counted  # the signals whose handler stops the run
        self.stop_at = stop_at  # how many of them stop it
        # Lazy: begun at a step under Python's handler (which raises at each SIGINT itself), ended
        # with the session (``release``). Otherwise the whole of a run whose handler counts the
        # signals, may have seen fewer than came (``fired``), and is made to run once more.
        self.lazy = lazy
        self.count = 0
        self.fired = False
        self.connection: Connection | None = None  # the step's, while one runs
        self.lock = threading.Lock()
        self.read, self.write = os.pipe()
        os.set_blocking(self.write, False)  # set_wakeup_fd requires it: a signal handler never blocks
        self.descriptors: tuple[int, ...] = (self.read, self.write)
        self.thread: threading.Thread | None = None
        self.ending = False
        self.handler = signal.getsignal(signal.SIGINT)  # the one trusted: a migration may set its own

    def start(self) -> bool:
        """Point the wakeup descriptor here and start reading; False (and nothing kept) when
        someone else's was there: it is put back with the signals that came here meanwhile."""
        previous = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous, warn_on_full_buffer=False)
            os.set_blocking(self.read, False)
            with contextlib.suppress(OSError):
                while came := os.read(self.read, 64):
                    os.write(previous, came)
            self.close()
            return False
        self.thread = threading.Thread(target=self._watch, name="vcp-migrate-interrupts", daemon=True)
        self.thread.start()
        return True

    def _watch(self) -> None:
        while True:
            try:
                came = os.read(self.read, 64)
            except OSError:
                return
            if not came or _STOP_THREAD[0] in came:
                return
            with self.lock:
                for number in came:
                    if number in self.counted:
                        self._counted()

    def _counted(self) -> None:
        self.count += 1
        if self.count < self.stop_at or signal.getsignal(signal.SIGINT) is not self.handler:
            return  # not yet; or a migration put its own handler in: it decides
        first, self.fired = not self.fired, True
        if not self.lazy and first:  # before the statement returns: the handler then runs after ``fired``
            _thread.interrupt_main(signal.SIGINT)
        if self.connection is not None:  # every one from then on: each stops the run
            with contextlib.suppress(Exception):  # closed meanwhile: nothing runs on it
                self.connection.interrupt()

    def stop(self) -> None:
        """Give the wakeup descriptor back (to a migration that set its own, if one did) and end
        the thread. Cut short (a KeyboardInterrupt lands anywhere in Python code), it can be
        called again and finishes: the scope stays the module's until then."""
        self.ending = True
        self.give_back()
        if self.thread is not None and self.thread.is_alive():
            with contextlib.suppress(OSError):
                os.write(self.write, _STOP_THREAD)
            self.thread.join(timeout=1.0)  # a daemon: one that missed the word ends with the process
        self.close()

    def give_back(self) -> None:
        current = signal.set_wakeup_fd(-1)  # raises outside the main thread: then nothing is closed
        if current not in (-1, self.write):  # a migration set its own meanwhile: it stays
            signal.set_wakeup_fd(current, warn_on_full_buffer=False)

    def close(self) -> None:
        descriptors, self.descriptors = self.descriptors, ()  # never closed twice: the number may be reused
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                os.close(descriptor)


class StepCursor(sqlite3.Cursor):
    """A migration's cursor while its step runs: each statement begins in Python code, where a
    pending KeyboardInterrupt is raised before SQLite runs it. From C, a statement already
    prepared would run first: after an interrupt that rolled the transaction back, on its own."""

    def execute(self, sql: str, parameters: Any = (), /) -> StepCursor:
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> StepCursor:
        return super().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        return super().executescript(sql_script)


_scope: _Scope | None = None
_unavailable = False  # this run tried, and someone else has the wakeup descriptor


def _begin(counted: frozenset[int], stop_at: int, *, lazy: bool) -> _Scope | None:
    global _scope, _unavailable
    if _unavailable or threading.current_thread() is not threading.main_thread():
        return None
    _scope = scope = _Scope(counted, stop_at, lazy=lazy)  # first: a start cut short is ended by _end
    if not scope.start():
        _scope, _unavailable = None, True
        return None
    return scope


def _end() -> None:
    global _scope, _unavailable
    _unavailable = False
    if _scope is not None:
        _scope.stop()
        _scope = None


@contextlib.contextmanager
def watching(*, stop_at: int) -> Iterator[None]:
    """Watch for a whole run whose own handler counts the stopping signals and raises at the
    ``stop_at``-th (asking ``fired()``): a fleet's with ``--jobs 1``."""
    if _scope is not None or _begin(_STOPPING, stop_at, lazy=False) is None:
        yield
        return
    try:
        yield
    finally:
        _end()


def fired() -> bool:
    """Whether the signals that stop the run watched have come (the watcher counted them)."""
    scope = _scope
    return scope is not None and scope.fired


def release() -> None:
    """The run's last session is closed: stop watching, if one of its steps began it."""
    if threading.current_thread() is not threading.main_thread():
        return
    if (_scope is not None and _scope.lazy) or (_scope is None and _unavailable):
        _end()


@contextlib.contextmanager
def interruptible(connection: Connection) -> Iterator[None]:
    """While inside (a migration's step), the signals that stop the run also stop what SQLite
    is running on ``connection``, instead of waiting for it to end. Anywhere it cannot, nothing
    changes. The first step of a run under Python's own SIGINT handler begins the watching."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread's run only
        yield
        return
    if _scope is not None and _scope.ending:  # its end was cut short (by a KeyboardInterrupt): finished now
        _end()
    scope = _scope
    if scope is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        scope = _begin(frozenset({signal.SIGINT}), 1, lazy=True)
    if scope is None:
        yield
        return
    with scope.lock:  # a run inside a migration (on another database) has its step inside this one's
        outer, scope.connection, fired_before = scope.connection, connection, scope.fired
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        # The statement's "interrupted", and the KeyboardInterrupt its handler raised swallowed on
        # the way (sqlite3 takes one raised in the authorizer for a refusal): an interrupt still.
        if scope.fired and not fired_before:
            raise KeyboardInterrupt from None
        raise
    finally:
        with scope.lock:  # from here on, nothing of ours runs interrupted
            scope.connection = outer


_held: set[int] | None = None  # the signal mask before a fork, while the fork is made


def _hold_for_fork() -> None:
    """A process forked during a run (by a migration) gets the terminal's Ctrl-C too: until it
    has let go of the pipe, which its parent reads, the signals wait (as they do in the parent)."""
    global _held
    if _scope is not None:
        _held = signal.pthread_sigmask(signal.SIG_BLOCK, _scope.counted)


def _release_after_fork() -> None:
    global _held
    if _held is not None:
        held, _held = _held, None
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _forget_in_child() -> None:
    """The child has no thread reading the pipe: the signals it gets are its own."""
    global _scope, _unavailable
    scope, _scope, _unavailable = _scope, None, False
    if scope is not None:
        scope.give_back()
        scope.close()
    _release_after_fork()


os.register_at_fork(before=_hold_for_fork, after_in_parent=_release_after_fork, after_in_child=_forget_in_child)
