"""What the commands do differently on a database on a libSQL server, behind a few named
functions (their local-file counterparts live in ``sqlite``, ``lock`` and ``backups``):
``connect``, ``writing`` (the lease and the write connection), ``take_backup`` and
``wait_for_replicas``. Imported only when a URL is used.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import backups, history, sqlite, transactions
from ..errors import DatabaseError, Interrupted, setting
from ..session import Session
from . import Server, remote, replicas, snapshot
from .lease import Lease

if TYPE_CHECKING:
    from ..commands.context import Settings
    from ..models import Backup

_REPLICA_POLL_SECONDS = 0.2


# The lock timeout sets each request's timeout too (see _stream_timeout): how to make it longer.
LONGER = f"raise {setting('lock_timeout')} (each request waits that long, 10 to 300 s)"


def connect(server: Server, timeout: float) -> remote.RemoteConnection:
    """A new connection (stream) to the server's database; nothing is sent yet."""
    return remote.RemoteConnection(server.url, server.auth_token, _stream_timeout(timeout), LONGER)


def open_existing(server: Server, timeout: float) -> remote.RemoteConnection:
    """A connection to the server's database, checked to answer (DatabaseError if it does not)."""
    connection = connect(server, timeout)
    try:
        with sqlite.translated(server.url):
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


def _stream_timeout(lock_timeout: float) -> float:
    # Each request waits at most this long; a server busy with another writer answers within
    # its own 5 s write-lock limit, so the lock timeout bounds the wait when it is longer.
    return max(10.0, min(lock_timeout, 300.0))


@contextlib.contextmanager
def writing(settings: Settings) -> Iterator[Session]:
    """Hold the database's lease and a write connection to it, as ``frame.writing`` does for a file."""
    server = settings.server
    assert server is not None
    url = server.url

    def connect_for_lease(timeout: float | None = None) -> remote.RemoteConnection:
        if timeout is None:
            return connect(server, settings.lock_timeout)
        return remote.RemoteConnection(server.url, server.auth_token, timeout)

    with sqlite.translated(url):
        lease = Lease(
            connect_for_lease,
            url,
            settings.lock_timeout,
            server.lease,
            on_wait=settings.observer.waiting,
            warn=settings.observer.warning,
        )
        with lease:
            session = Session(
                settings.db_path, settings.lock_timeout, opener=lambda: connect(server, settings.lock_timeout)
            )
            session.where = url
            lease.busy = lambda: _writing(session)  # renewing while a read snapshot (a backup) is open is safe
            session.before_commit = lambda: lease.verify(session.connection)
            session.taken_over = lease.taken_over
            if settings.observer.wants_statements:
                session.on_statement = settings.observer.statement
            try:
                # An empty database (nothing but the lease) has nothing to back up, as an empty file.
                with sqlite.translated(url):
                    session.existed = history.has_objects(session.connection)
                    before = _latest_highest(session) if server.replicas else 0
                yield session
                if server.replicas:  # so a deploy never starts new code against a stale replica
                    with sqlite.translated(url), transactions.latest(session.connection):  # the primary's
                        applied = replicas.read(session.connection)
            finally:
                session.close()
    if server.replicas:  # also when this run had nothing to do: another run may have just done it
        wait_for_replicas(settings, applied, rose=applied.highest >= before)


def _latest_highest(session: Session) -> int:
    with transactions.latest(session.connection):  # the primary's, when --db is a replica's URL
        return history.highest(session.connection)


def _writing(session: Session) -> bool:
    """Whether the run's connection has a transaction open that may write."""
    connection = session.connection
    return connection.writing if isinstance(connection, remote.RemoteConnection) else connection.in_transaction


def take_backup(settings: Settings, session: Session) -> Backup:
    """A snapshot of the server's database (schema and rows, one read transaction) in a local
    backup file, named as a file's backups are, after the server's local stand-in name."""
    connection = session.connection
    assert isinstance(connection, remote.RemoteConnection)
    with sqlite.translated(connection.url), transactions.read_transaction(connection):
        version = history.highest(connection)
        try:
            return backups.take(
                None,
                settings.db_path,
                version,
                settings.backup_dir,
                copier=lambda target: snapshot.copy_into(connection, target),
            )
        except DatabaseError as exc:  # named after the local stand-in: the database is the server's
            exc.where = connection.url
            raise


def wait_for_replicas(settings: Settings, applied: replicas.Applied, *, rose: bool = False) -> None:
    """Wait until every replica holds the history ``applied`` the primary had at the end of the
    run (or more when the run ``rose`` to its version: a later run's, see ``replicas.caught_up``),
    at most the replica timeout in all; raise DatabaseError naming the replicas still behind."""
    server = settings.server
    assert server is not None
    version = applied.highest
    deadline = time.monotonic() + server.replica_timeout
    behind = list(server.replicas)
    seen: dict[str, str] = {}
    try:
        while behind:
            for replica in list(behind):
                wait = max(0.5, min(10.0, deadline - time.monotonic()))  # a replica that does not answer
                found = _replica_history(Server(replica, server.auth_token), seen, wait)
                if found is not None and replicas.caught_up(found, applied, rose=rose):
                    behind.remove(replica)
                elif found is not None:
                    seen[replica] = replicas.said(found, applied)
            if not behind or time.monotonic() >= deadline:
                break
            time.sleep(_REPLICA_POLL_SECONDS)
    except KeyboardInterrupt as exc:  # the change is committed: not "rolled back", as Ctrl-C in a migration
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(
            f"interrupted while waiting for the replicas: the primary is at version {version} (committed);"
            f" 'vcp-migrate status --db REPLICA' tells whether a replica has it ({', '.join(behind)} had not yet)"
        ) from None
    if behind:
        states = "; ".join(f"{replica}: {seen.get(replica, 'not read')}" for replica in behind)
        raise DatabaseError(
            f"the primary is at version {version} (committed), but {len(behind)} replica(s) did not reach it"
            f" within {server.replica_timeout:g} s ({states})",
            where=server.url,
            hint=f"check the replicas, or raise {setting('replica_timeout')}; do not start code that needs"
            " the new schema against them yet",
        )


def _replica_history(replica: Server, seen: dict[str, str], timeout: float) -> replicas.Applied | None:
    connection = remote.RemoteConnection(replica.url, replica.auth_token, timeout)
    try:
        found = replicas.read(connection)
    except sqlite3.Error as exc:
        seen[replica.url] = str(exc)
        return None
    except DatabaseError as exc:
        seen[replica.url] = exc.message()
        return None
    finally:
        connection.close()
    return found
