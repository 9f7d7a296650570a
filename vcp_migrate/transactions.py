"""Owning a run's transactions on any kind of database (``database.Connection``): BEGIN IMMEDIATE
... COMMIT, a read snapshot, and foreign key enforcement off around a schema change. Each is a
statement of its own, so the same code runs on a local file and on a server."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .database import Connection

# Python caches prepared statements by their text, and a cached statement is not re-authorized.
# Our own transaction control therefore uses text that no migration would write, so a migration's
# "COMMIT" is always prepared afresh and refused by the authorizer; on a local file each guarded
# step also installs a fresh authorizer, which expires every cached statement (watching.py).
BEGIN = "BEGIN IMMEDIATE /* vcp-migrate */"
COMMIT = "COMMIT /* vcp-migrate */"
ROLLBACK = "ROLLBACK /* vcp-migrate */"
READ = "BEGIN DEFERRED /* vcp-migrate */"  # a read snapshot's: it never writes


@contextmanager
def transaction(connection: Connection, *, commit: bool = True) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, KeyboardInterrupt included.

    With ``commit=False`` (a dry run) it is rolled back at the end in any case.
    """
    connection.execute(BEGIN)
    committing = False
    try:
        yield
        committing = commit
        connection.execute(COMMIT if commit else ROLLBACK)
    except BaseException as exc:
        if committing:  # on a server whose answer was lost, the COMMIT may have been made
            setattr(exc, _MAY_HAVE_COMMITTED, True)
        if connection.in_transaction:  # what stopped it is what to report, not a failed rollback after it
            with contextlib.suppress(sqlite3.Error):
                connection.execute(ROLLBACK)
        raise


@contextmanager
def latest(connection: Connection) -> Iterator[None]:
    """Reads that see every change committed so far, the run's own last COMMIT included. A server
    reached through a replica's URL answers reads from the replica, which may lag behind the
    primary (even behind the stream's own writes); in a write transaction, rolled back at the end,
    the primary answers them. A local file's reads always see the last COMMIT."""
    if not getattr(connection, "remote", False):
        yield
        return
    with transaction(connection, commit=False):
        yield


@contextmanager
def read_transaction(connection: Connection) -> Iterator[None]:
    """BEGIN ... ROLLBACK: every read inside sees one snapshot, however other connections write."""
    connection.execute(READ)
    try:
        yield
    finally:
        if connection.in_transaction:
            connection.execute(ROLLBACK)


@contextmanager
def foreign_keys_off(connection: Connection, *, commit: bool = True) -> Iterator[None]:
    """Foreign key enforcement off around a schema change, restored after (SQLite's procedure).

    The pragma is a no-op inside a transaction, so this must wrap the transaction, not sit in it.
    ``commit``: the transaction it wraps ends with a COMMIT when it succeeds (False: a dry run's
    is rolled back, so a failed restore after it cannot have followed a COMMIT).
    """
    if connection.foreign_keys is None:  # only our own pragmas change it on this connection
        connection.foreign_keys = connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    enforced = connection.foreign_keys
    if enforced:
        connection.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    except BaseException:
        if enforced:  # the error that stopped the run is what to report, not a failed restore after it
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA foreign_keys = ON")
        raise
    if enforced:
        try:
            connection.execute("PRAGMA foreign_keys = ON")
        except BaseException as exc:
            if commit:  # after the COMMIT of what it wrapped
                setattr(exc, _MAY_HAVE_COMMITTED, True)
            raise


_MAY_HAVE_COMMITTED = "vcp_migrate_may_have_committed"
_ROLLED_BACK = "vcp_migrate_rolled_back"


def may_have_committed(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, came from a COMMIT or from after one: a
    server whose answer was lost may then have committed the transaction (a file's COMMIT either
    happened or not, and its connection can still be asked which)."""
    return _marked(exc, _MAY_HAVE_COMMITTED)


def mark_rolled_back(exc: BaseException) -> None:
    """Mark ``exc`` as the server's word that it rolled the run's transaction back."""
    setattr(exc, _ROLLED_BACK, True)


def rolled_back(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says the server rolled the transaction back
    (it took the write lock from it, or ended its stream): a row the history holds for the
    migration afterwards is then another run's, never this transaction's."""
    return _marked(exc, _ROLLED_BACK)


def causes(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then the error it was raised from (``raise ... from``, or while handling), and so
    on: each once, so a chain that loops back ends."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        yield exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__


def _marked(exc: BaseException, mark: str) -> bool:
    return any(getattr(seen, mark, False) for seen in causes(exc))
