"""The run lock on a server: a lease row that runners on different machines take in turn.

A local file's run lock is a flock, which the operating system drops when its holder dies. A
server has no such thing, so the lock is a row in ``vcp_migrations_lease`` (holder, expiry in the
server's clock, so clocks of the runners never matter):

- taken in one statement that inserts the row, or takes it over only once it has expired, so two
  runners can never both hold it (the server runs one write at a time);
- renewed while the run lasts, by a thread of its own, every third of the lease;
- checked and renewed again inside each migration's transaction, just before its COMMIT: a run
  whose lease was taken over (it stalled past the expiry) fails there, and nothing more is applied;
- deleted at the end. A runner that dies keeps the others waiting at most one lease.

The table is made by the first run that finds it missing. A run that leaves the database without
vcp-migrate's history (a refused or dry run, a rollback of nothing) drops it again when it lets go
of the lease, in the transaction that deletes its row and only if no other row is there: such a
database is left exactly as it was found. A runner that finds the table gone makes it again.

When the server has stopped answering (a request timed out or could not be sent), or Ctrl-C
stops the run, the lease is released within a few seconds, or not at all: it then expires by
itself, and the run says so.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from .. import history, transactions
from ..errors import DatabaseError, Interrupted, LockTimeout, VcpMigrateError, setting
from .hrana import ServerUnreachable

DEFAULT_SECONDS = 30.0
_POLL_SECONDS = 0.25
_HURRIED_SECONDS = 2.0  # how long a release waits to see the server answer, once it did not or after Ctrl-C
_DAY = 86400.0
_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {history.LEASE} ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, expires REAL NOT NULL)"
)
_TAKE = (
    f"INSERT INTO {history.LEASE} (id, holder, expires) VALUES (1, ?, julianday('now') + ?)"
    f" ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires"
    f" WHERE {history.LEASE}.expires < julianday('now')"
)
# Still ours while the row names us: taking it over is a write, which the server orders before
# or after ours, so a lease past its expiry that no one took is still safely ours.
_RENEW = f"UPDATE {history.LEASE} SET expires = julianday('now') + ? WHERE id = 1 AND holder = ?"
_HELD_BY = f"SELECT holder, (expires - julianday('now')) * {_DAY} FROM {history.LEASE} WHERE id = 1"
_RELEASE = f"DELETE FROM {history.LEASE} WHERE id = 1 AND holder = ?"
_HAS_HISTORY = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)"
_LEFT = f"SELECT count(*) FROM {history.LEASE}"
_DROP = f"DROP TABLE {history.LEASE}"


class _Connection(Protocol):
    def execute(self, sql: str, parameters: tuple[object, ...] = (), /) -> object: ...

    def close(self) -> None: ...


class _Connect(Protocol):
    def __call__(self, timeout: float | None = None) -> _Connection:
        """A new connection whose requests each wait at most ``timeout`` seconds (None: the run's own)."""


class Lease:
    """Context manager holding the lease of the database at ``where``, waiting at most ``timeout``.

    ``connect`` opens a new connection to the server (the renewing thread keeps one of its own);
    ``warn`` is told when the lease could not be released, so that it expires by itself.
    """

    def __init__(
        self,
        connect: _Connect,
        where: str,
        timeout: float,
        seconds: float = DEFAULT_SECONDS,
        on_wait: Callable[[str], None] | None = None,
        busy: Callable[[], bool] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.connect = connect
        self.busy = busy  # the run's own write transaction is open: renewing now would wait on it
        self.where = where
        self.timeout = timeout
        self.seconds = seconds
        self.on_wait = on_wait
        self.warn = warn
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        self._held = False
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None  # why the renewing thread could not renew it
        self.unanswered = False  # a request of the renewing thread got no answer

    def __enter__(self) -> Lease:
        connection = self.connect()
        try:
            self._take(connection)
        except sqlite3.OperationalError as exc:  # whatever an unanswered request did, no migration had begun
            unanswered = _unreachable(exc)
            if unanswered is None:
                raise
            raise DatabaseError(
                unanswered.said,
                where=self.where,
                hint="nothing was changed; a lease the request may have taken expires by itself within"
                f" {self.seconds:g} s",
            ) from exc
        except KeyboardInterrupt as exc:  # not "a migration is rolled back": none had begun
            if isinstance(exc, Interrupted):
                raise
            raise Interrupted(
                f"{self.where}: interrupted while taking the run lock (the database's lease); nothing was changed"
                f" (a lease the request in flight may have taken expires by itself within {self.seconds:g} s)"
            ) from None
        finally:
            connection.close()  # its next request would come only at the release: the server ends an idle stream
        self._held = True
        self._renewer = threading.Thread(target=self._renew_until_released, name="vcp-migrate lease", daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        # The server no longer answers, or Ctrl-C: a full timeout for each request of the release
        # would keep the command waiting long after it failed; the lease expires by itself anyway.
        hurried = self.unanswered or (kind is not None and issubclass(kind, KeyboardInterrupt)) or _unanswered(error)
        if self._renewer is not None:
            self._renewer.join(timeout=0.5 if hurried else 5)  # a daemon: its renewal of a row gone is harmless
        if not self._held:
            return
        self._held = False
        try:
            self._release(hurried)
        except KeyboardInterrupt as exc:
            if kind is not None:  # what stopped the run already says what it left; the lease expires
                self._warn("interrupted")
                return
            if isinstance(exc, Interrupted):
                raise
            raise Interrupted(
                f"{self.where}: interrupted while letting go of the run lock (the database's lease): what this run"
                " committed stays committed ('vcp-migrate status' shows what is applied); the lease expires by"
                f" itself within {self.seconds:g} s"
            ) from None
        except Exception as exc:
            self._warn("the server did not answer" if _unanswered(exc) else _first_line(exc))

    def _warn(self, why: str) -> None:
        if self.warn is not None:
            self.warn(
                f"{self.where}: the run lock's lease could not be released ({why}); it expires by itself"
                f" within {self.seconds:g} s, and until then another run waits for it"
            )

    def verify(self, connection: _Connection) -> None:
        """Renew the lease in the transaction on ``connection``, right before its COMMIT; raise
        DatabaseError if it is no longer ours (it expired and another run may have taken it)."""
        try:
            cursor = connection.execute(_RENEW, (self.seconds / _DAY, self.holder))
        except sqlite3.OperationalError as exc:
            if not _missing(exc):
                raise
            cursor = None  # another run took it, finished and dropped the table
        if getattr(cursor, "rowcount", 0) != 1:
            raise DatabaseError(
                f"the run lock's lease ({self.seconds:g} s) expired and another run took it"
                f"{f' ({self.lost})' if self.lost else ''}; another run may be changing the database",
                where=self.where,
                hint="nothing more was applied; run again once the other run is done",
            )

    def taken_over(self, error: BaseException) -> DatabaseError | None:
        """After ``error`` stopped the run: the error to report instead when the lease is no longer
        ours (the run stalled past it and another run took it, so what a statement ran into was that
        run's doing); None while it is ours, after Ctrl-C, or when the server did not answer. Asked
        on a new stream: the run's may be the one the server ended (a stall past its 10 s)."""
        if isinstance(error, KeyboardInterrupt) or self.unanswered or _unanswered(error):
            return None
        try:
            checking = self.connect(_HURRIED_SECONDS)
            try:
                self.verify(checking)
            finally:
                checking.close()
        except DatabaseError as lost:
            said = error.what if isinstance(error, VcpMigrateError) else _first_line(error)
            lost.what += f"; this run's next statement then failed on what it did: {said}"
            lost.__cause__ = error  # --debug shows it whole
            return lost
        except Exception:  # it cannot be asked: what stopped the run is what to report
            return None
        return None

    def _take(self, connection: _Connection) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            # Read first, write only when the lease looks free: a write waiting for the holder's
            # transaction makes the server take the write lock from it after 5 s.
            try:
                held = connection.execute(_HELD_BY).fetchone()  # type: ignore[attr-defined]
            except sqlite3.OperationalError as exc:
                if not _missing(exc):
                    raise
                connection.execute(_CREATE)  # never made, or dropped by the last run to let go of it
                held = None
            holder, left = (str(held[0]), float(held[1])) if held else ("another run", 0.0)
            if left <= 0:
                try:
                    cursor = connection.execute(_TAKE, (self.holder, self.seconds / _DAY))
                except sqlite3.OperationalError as exc:
                    if not _missing(exc):
                        raise
                    cursor = None  # dropped since by a run that let go of it: made again on the next turn
                if getattr(cursor, "rowcount", 0) == 1:
                    return
            if self.on_wait is not None and self.timeout > 0:
                self.on_wait(f"waiting for the run lock held by {holder} (up to {self.timeout:g} s)")
                self.on_wait = None
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"another vcp-migrate run ({holder}) holds the database's lease for {max(left, 0):.0f} s more",
                    where=self.where,
                    hint=f"wait for it to finish or raise {setting('lock_timeout')}; a run that died lets go of"
                    f" it when its lease ends; nothing was changed",
                )
            time.sleep(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0.01)))

    def _release(self, hurried: bool) -> None:
        """Delete our row; drop the table too when the database has no history and no other row,
        so a run that made no history leaves the database as it found it. ``hurried``: first see,
        waiting a few seconds at most, whether the server answers at all."""
        checking = self.connect(_HURRIED_SECONDS if hurried else None)
        try:
            has_history = checking.execute(_HAS_HISTORY, history.TABLES).fetchone()[0]  # type: ignore[attr-defined]
        finally:
            if hurried:
                checking.close()
        # It answers: the writes below may wait for the write lock up to the server's own 5 s limit.
        connection = self.connect() if hurried else checking
        try:
            if has_history:  # history tables are never dropped: the table stays, and one statement is enough
                connection.execute(_RELEASE, (self.holder,))
                return
            # In one transaction: a runner that took the lease between a check and the DROP
            # would otherwise lose its row with the table.
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(_RELEASE, (self.holder,))
            left = connection.execute(_LEFT).fetchone()[0]  # type: ignore[attr-defined]
            made = connection.execute(_HAS_HISTORY, history.TABLES).fetchone()[0]  # type: ignore[attr-defined]
            if not left and not made:
                connection.execute(_DROP)
            connection.execute("COMMIT")
        finally:
            connection.close()  # before the COMMIT: closing the stream rolls its transaction back

    def _renew_until_released(self) -> None:
        every = self.seconds / 3
        while not self._stop.wait(every):
            if self.busy is not None and self.busy():
                # A second writer waiting makes the server take the write lock from the run's
                # transaction after 5 s; the check before its COMMIT renews the lease instead.
                continue
            connection = self.connect()  # a new stream each time: one idle for 10 s is ended by the server
            try:
                cursor = connection.execute(_RENEW, (self.seconds / _DAY, self.holder))
                if getattr(cursor, "rowcount", 0) != 1:
                    self.lost = "it could not be renewed in time"
                    return
            except Exception as exc:  # tried again; the check before COMMIT decides
                if isinstance(exc, sqlite3.OperationalError) and _missing(exc):
                    self.lost = "it could not be renewed in time"
                    return
                self.unanswered = self.unanswered or _unanswered(exc)
                self.lost = f"renewing it failed: {exc}"
            finally:
                connection.close()


def _missing(error: sqlite3.OperationalError) -> bool:
    """Whether ``error`` says the lease's table does not exist."""
    return str(error).startswith("no such table") and history.LEASE in str(error)


def _unanswered(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, says the server did not answer or could
    not be reached."""
    return _unreachable(error) is not None


def _unreachable(error: BaseException | None) -> ServerUnreachable | None:
    """The error, ``error`` or one it was raised from, that says the server did not answer or
    could not be reached."""
    return next((seen for seen in transactions.causes(error) if isinstance(seen, ServerUnreachable)), None)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
