"""The write connection of one run (``Session``): opened, replaced after a migration that changed
its state, closed. Kept apart from ``execution`` so a run with nothing to do never loads it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import sqlite
from .database import Connection
from .errors import VcpMigrateError

_OPEN = 0  # sessions open in the main thread


def _no_check() -> None:
    return None


def _kept(error: BaseException) -> VcpMigrateError | None:
    return None


class Session:
    """The write connection of one run. It is replaced after any migration that may have changed
    its state (Python code, a PRAGMA, ATTACH, TEMP objects), so no state leaks into the next one.

    ``rehearsing`` marks a database that only rehearses (validate, dry runs): nothing run on it may
    write another file. ``before_commit`` is called inside each migration's transaction right
    before its COMMIT (the run lock checks there that it is still held). ``read_first=False``: the
    caller's first statement, not the opening, tells whether the file is a SQLite database.
    """

    def __init__(
        self,
        path: Path,
        timeout: float,
        connection: Connection | None = None,
        *,
        rehearsing: bool = False,
        opener: Callable[[], Connection] | None = None,
        read_first: bool = True,
    ) -> None:
        self.path = path
        self.where = str(path)  # how errors name the database (a server's: its URL)
        self.timeout = timeout
        self.history_ready = False
        self.existed = False  # the database had content before this run (so it is backed up)
        self.rehearsing = rehearsing
        self.before_commit: Callable[[], None] = _no_check
        # After an error stopped the run: what to report instead when another run took the run lock
        # meanwhile (a server's lease can expire); None while it is this run's (a lock file's always is).
        self.taken_over: Callable[[BaseException], VcpMigrateError | None] = _kept
        # How to open it again (a server's database: a new stream); by default the file at ``path``.
        self.opener = opener or (lambda: sqlite.open_database(path, create=False, timeout=timeout))
        if connection is None:
            if opener is not None:
                connection = opener()
            else:
                connection = sqlite.open_database(path, create=True, timeout=timeout, read_first=read_first)
        self.connection = connection
        self.connection.rehearsing = rehearsing
        self._counted = threading.current_thread() is threading.main_thread()
        if self._counted:
            global _OPEN
            _OPEN += 1

    @property
    def on_statement(self) -> Callable[[str, float], None] | None:
        """Called with each statement a migration runs and its time in ms (for -v)."""
        return self.connection.on_statement

    @on_statement.setter
    def on_statement(self, report: Callable[[str, float], None] | None) -> None:
        self.connection.on_statement = report

    def renew(self) -> None:
        if str(self.path) == ":memory:":  # a throw-away database: renewing would empty it
            return
        report = self.connection.on_statement
        self.connection.close()
        self.connection = self.opener()
        self.connection.rehearsing = self.rehearsing
        self.connection.on_statement = report

    def close(self) -> None:
        global _OPEN
        try:
            self.connection.close()
        finally:
            if self._counted:
                self._counted, _OPEN = False, _OPEN - 1
                # The run's last session (a run inside a migration, on another database, is not
                # the last): the watching for Ctrl-C its steps began stops (only they loaded it).
                if _OPEN == 0 and (interrupts := sys.modules.get(f"{__package__}.interrupts")) is not None:
                    interrupts.release()
