"""One worker of a fleet run: it checks once that the migrations are those the run was planned
with, then runs the command on database after database, each exactly as the single command
does (its own run lock, transactions, history, user_version and backup), reusing the scanned
directory and the loaded migrations."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import os
import signal
import sqlite3
import stat
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .. import closed_output, history, sqlite
from ..commands import context
from ..errors import DatabaseError, PlanError, VcpMigrateError, as_token
from . import commands
from .results import CHECKED, FAILED, NOT_STARTED, DatabaseResult
from .targets import is_backup

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ..loading import LoadedMigration


class Job(NamedTuple):
    """What every database of a run gets: the command and its arguments, the settings, and the
    migrations (version and checksum) the run was planned with."""

    command: str  # migrate, rollback, status, validate
    settings: context.Settings
    checksums: tuple[tuple[int, str], ...]
    target: int | None = None
    steps: int | None = None
    to: int | None = None
    allow_out_of_order: bool = False
    atomic: bool = False
    dry_run: bool = False
    roundtrip: bool = False
    aside: bool = False  # run from the command line: a migration's prints go to standard error


class Shared(NamedTuple):
    """What the worker processes of a run share: ``stop``, set when no database may start any
    more; each worker's count of failures (its own slot), which set ``stop`` at ``limit``; and
    whether each worker has a database in hand (``busy``: so that when one dies, the fleet knows
    whether the first database it sent and got no result for was started, or never was).

    Shared memory without locks: a worker killed while holding a lock would leave the others
    waiting for it forever. Each slot has one writer, and a flag needs no lock.
    """

    stop: ctypes.c_bool
    failures: ctypes.Array[ctypes.c_int]
    limit: int | None
    busy: ctypes.Array[ctypes.c_int]


class _Worker(NamedTuple):
    job: Job
    refused: str | None  # why no database can be run here (the migrations changed since planned)
    shared: Shared | None  # None: the databases run in the fleet's own process
    slot: int
    stopping: threading.Event | None  # in the fleet's own process: set once Ctrl-C was pressed


_here: _Worker | None = None
_busy = threading.Lock()  # held while a database is in hand


def start(
    job: Job,
    loaded: dict[tuple[Path, str], LoadedMigration] | None = None,
    shared: Shared | None = None,
    slot: int = 0,
    stopping: threading.Event | None = None,
) -> None:
    """Set up this process for ``job``: scan the migrations once and check them against the plan.

    In a worker process (``shared`` given) Ctrl-C is the parent's to handle: the databases in
    flight finish. A worker counts its failures in its ``slot``; at the limit it sets ``stop``
    itself, so that no database starts after it, not even one already sent to another worker.
    """
    global _here
    if shared is not None:  # a worker process: the fleet's process stops it, and it ends with it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        threading.Thread(target=_end_with_parent, daemon=True).start()
    settings = job.settings._replace(loaded=loaded if loaded is not None else {})
    refused = None
    try:
        directory = context.scan(settings._replace(directory=None))
        found = tuple((m.version, m.checksum) for m in directory.migrations)
        if found != job.checksums:
            refused = "the migrations changed after the fleet run was planned; run it again"
        settings = settings._replace(directory=directory)
    except VcpMigrateError as exc:
        refused = exc.message(as_token)
    _here = _Worker(job._replace(settings=settings), refused, shared, slot, stopping)


def serve(connection: Connection, job: Job, shared: Shared, slot: int) -> None:
    """The body of a worker process: lists of databases come through ``connection``, and one
    result goes back per database, in order, sent before the next database starts; so if this
    process dies, the fleet's process knows which database it held and which it never started.
    Once the run is told to stop, the databases still to come are not started. It ends when
    the fleet's process closes its end (or is gone). A migration's print() to a standard output
    whose reader is gone fails nothing (``closed_output``)."""
    closed_output.guard()
    start(job, None, shared, slot)
    try:
        while True:
            for path in connection.recv():
                connection.send(_next(path))
                # Only once its result is sent: a worker that dies before has it in hand still, and
                # the database is reported interrupted (whatever it is, a rerun finds it as it is),
                # never not-started when it ran.
                shared.busy[slot] = 0
    except (EOFError, OSError):  # closed: the run is over
        connection.close()
    # Every result is sent: a thread a migration left running (its database failed for it) must not
    # keep this process, and the fleet waiting for it, alive until it ends.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _next(path: str) -> DatabaseResult:
    assert _here is not None and _here.shared is not None
    if _here.shared.stop.value:
        return not_started(path)
    _here.shared.busy[_here.slot] = 1
    with _busy:
        result = run_one(path)
    if result.state == FAILED:
        _count_failure()
    return result


# How long a worker whose fleet process is gone (SIGKILL, the OOM killer) lets the database in
# hand finish before it ends anyway: a migration that hangs must not keep an orphan holding the
# database's run lock, and one cut short is rolled back by SQLite's journal, as after any crash.
ORPHAN_GRACE_SECONDS = 5.0


def _end_with_parent() -> None:
    """Exit once the fleet's process is gone, after the database in hand (for at most
    ORPHAN_GRACE_SECONDS): the databases it was sent and has not started would otherwise still
    run, with no one to report them to."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()
        _busy.acquire(timeout=ORPHAN_GRACE_SECONDS)
        os._exit(1)


def _count_failure() -> None:
    assert _here is not None and _here.shared is not None
    shared = _here.shared
    shared.failures[_here.slot] += 1
    if shared.limit is not None and sum(shared.failures) >= shared.limit:
        shared.stop.value = True


def not_started(path: str) -> DatabaseResult:
    return DatabaseResult(path, NOT_STARTED)


def lost(path: str, why: str) -> DatabaseResult:
    """A database whose run was cut short: its migration in progress rolled back, those before it
    may have committed (its version now, read once its worker is gone, says how far it got); a
    rerun applies what is still pending."""
    now = _version_now(path)
    at = "" if now is None else f"; it is at version {now} now"
    error = f"{path}: {why} (a transactional migration is rolled back whole{at}; run the fleet again to finish it)"
    return DatabaseResult(path, FAILED, version_after=now, error=error, kind="interrupted")


def _version_now(path: str) -> int | None:
    """The highest applied version of ``path`` (SQLite rolls back what a killed run left); None if
    unreadable, or if nothing is there any more (never made: a fleet never creates a database)."""
    try:
        with closing(sqlite.open_database(Path(path), create=False, timeout=1)) as connection:
            return history.highest(connection)
    except (sqlite3.Error, OSError, DatabaseError):
        return None


def _after_failure(path: str, collector: commands.Collector) -> int | None:
    """The version a database is at after its run failed: from what it committed when that only
    added versions; read again when it rolled some back (the highest left is in its history alone)."""
    if any(run.direction == "down" for run in collector.runs):
        return _version_now(path)
    return commands.reached(collector.version, collector.runs)


def run_one(path: str) -> DatabaseResult:
    """The job on one database; every failure becomes a failed result, never an exception."""
    assert _here is not None, "start() first"
    job, collector = _here.job, commands.Collector()
    settings = job.settings._replace(db_path=Path(path), observer=collector)
    started = time.perf_counter()
    try:
        if _here.refused is not None:
            raise PlanError(_here.refused)
        _require_file(path)
        with closed_output.printing_aside(job.aside):  # standard output is the fleet's results
            result = commands.COMMANDS[job.command](job, settings, collector, DatabaseResult(path, CHECKED))
    except (VcpMigrateError, OSError) as exc:
        result = DatabaseResult(
            path, FAILED, version_after=_after_failure(path, collector),
            kind=commands.failure_kind(exc),
            error=exc.message(as_token) if isinstance(exc, VcpMigrateError) else f"{path}: {exc}",
        )  # fmt: skip
    except KeyboardInterrupt:
        if _here.shared is None and (_here.stopping is None or _here.stopping.is_set()):
            raise  # in the fleet's own process, Ctrl-C pressed again: the run's to handle
        # A worker ignores Ctrl-C, and the fleet's process raises only the second: this came from
        # the migration's own code. The run goes on.
        result = lost(path, "the migration raised KeyboardInterrupt")
        result = result._replace(version_after=_after_failure(path, collector))
    except Exception as exc:  # a defect of ours: the other databases go on
        error = (
            f"{path}: unexpected {type(exc).__name__}: {exc} (a defect of vcp-migrate: run the single command on"
            " this database with --debug, and report it)"
        )
        result = DatabaseResult(path, FAILED, version_after=collector.version, error=error, kind="error")
    return result._replace(
        version_before=collector.version,
        database_id=collector.database_id,
        applied=tuple(run.version for run in collector.runs),
        warnings=tuple(collector.warnings),
        ms=(time.perf_counter() - started) * 1000,
    )


def _require_file(path: str) -> None:
    """A fleet never creates a database: each must exist, as a regular file that is not empty
    (SQLite would make an empty file a new database: a placeholder, or a copy still being
    written), and not a backup (its content must stay what it was when taken)."""
    hint = "check its path in the list of databases"
    if path != path.strip():
        hint += " (it starts or ends with white space, which is kept)"
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise DatabaseError("does not exist", where=path, hint=hint) from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise DatabaseError("is a loop of symbolic links: no file is there", where=path, hint=hint) from None
    if not stat.S_ISREG(found.st_mode):
        raise DatabaseError("is not a regular file", where=path, hint=hint)
    if is_backup(path):
        raise DatabaseError(
            "is a backup (named as vcp-migrate names them, or in a database's backups folder): a fleet never"
            " runs on one, which must stay as it was taken",
            where=path,
            hint="remove it from the list of databases; 'vcp-migrate restore' puts a backup back",
        )
    if found.st_size == 0:
        raise DatabaseError(
            "is empty (0 bytes): not a database yet, and a fleet never creates one",
            where=path,
            hint="check the file (a copy still being written?), or create it with 'vcp-migrate migrate --db'",
        )
