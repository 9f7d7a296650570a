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
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from .. import history
from ..errors import DatabaseError, LockTimeout, setting

DEFAULT_SECONDS = 30.0
_POLL_SECONDS = 0.25
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


class _Connection(Protocol):
    def execute(self, sql: str, parameters: tuple[object, ...] = (), /) -> object: ...

    def close(self) -> None: ...


class Lease:
    """Context manager holding the lease of the database at ``where``, waiting at most ``timeout``.

    ``connect`` opens a new connection to the server (the renewing thread keeps one of its own).
    """

    def __init__(
        self,
        connect: Callable[[], _Connection],
        where: str,
        timeout: float,
        seconds: float = DEFAULT_SECONDS,
        on_wait: Callable[[str], None] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.connect = connect
        self.busy = busy  # the run's own write transaction is open: renewing now would wait on it
        self.where = where
        self.timeout = timeout
        self.seconds = seconds
        self.on_wait = on_wait
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        self._connection: _Connection | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost: str | None = None  # why the renewing thread could not renew it

    def __enter__(self) -> Lease:
        connection = self.connect()
        try:
            self._take(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._renewer = threading.Thread(target=self._renew_until_released, name="vcp-migrate lease", daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        if self._connection is not None:
            self._connection.close()  # idle since the lease was taken: the server may have ended it
            self._connection = None
            releasing = self.connect()
            try:
                releasing.execute(_RELEASE, (self.holder,))
            except Exception:  # unreachable: the lease expires on its own
                pass
            finally:
                releasing.close()

    def verify(self, connection: _Connection) -> None:
        """Renew the lease in the transaction on ``connection``, right before its COMMIT; raise
        DatabaseError if it is no longer ours (it expired and another run may have taken it)."""
        cursor = connection.execute(_RENEW, (self.seconds / _DAY, self.holder))
        if getattr(cursor, "rowcount", 0) != 1:
            raise DatabaseError(
                f"the run lock's lease ({self.seconds:g} s) expired and another run took it"
                f"{f' ({self.lost})' if self.lost else ''}; another run may be changing the database",
                where=self.where,
                hint="nothing more was applied; run again once the other run is done",
            )

    def _take(self, connection: _Connection) -> None:
        connection.execute(_CREATE)
        deadline = time.monotonic() + self.timeout
        while True:
            # Read first, write only when the lease looks free: a write waiting for the holder's
            # transaction makes the server take the write lock from it after 5 s.
            held = connection.execute(_HELD_BY).fetchone()  # type: ignore[attr-defined]
            holder, left = (str(held[0]), float(held[1])) if held else ("another run", 0.0)
            if left <= 0:
                cursor = connection.execute(_TAKE, (self.holder, self.seconds / _DAY))
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
                self.lost = f"renewing it failed: {exc}"
            finally:
                connection.close()
