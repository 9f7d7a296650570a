"""What every command starts from: its settings, the migrations directory, and the history.

Only what ``status`` needs lives here, so ``vcp-migrate status`` imports no more than this.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, ParamSpec

from .. import applied_times, discovery, history, sqlite, transactions
from ..database import Connection
from ..errors import DatabaseError, Parameter, UsageError, setting
from ..models import AppliedMigration, Directory
from ..observer import Observer
from ..path_words import not_meant

if TYPE_CHECKING:
    from ..backends import Server
    from ..loading import LoadedMigration


class Settings(NamedTuple):
    """A MigrationManager's settings, read afresh for each call (attributes may change between calls)."""

    db_path: Path
    migrations_dir: Path
    lock_timeout: float
    backup: bool
    keep_backups: int
    user_version: bool
    schema_file: Path
    dump_schema: bool
    observer: Observer
    create: bool = True
    allow_existing: bool = False
    backup_dir: Path | None = None  # one folder for the backups of many databases (a fleet)
    directory: Directory | None = None  # the migrations directory, scanned once for many databases (a fleet)
    loaded: dict[tuple[Path, str], LoadedMigration] | None = None  # migrations loaded once for many databases
    server: Server | None = None  # a database on a libSQL server (db_path is then its local stand-in name)


P = ParamSpec("P")


def whole_number(name: str, value: object) -> None:
    """Refuse an argument of the Python API that must be a whole number (a version, a count) and
    is not: 1.5, "3" or True would otherwise be misread, or fail deep inside with a TypeError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{name} must be a whole number, not {value!r}")


def flags(**given: object) -> None:
    """Refuse an argument of the Python API that must be True or False and is not: "no" and
    "false" are truthy, and taken as they are would turn a protection off (or on) unseen."""
    for name, value in given.items():
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be True or False, not {value!r}")


def answers(confirm: Callable[P, bool] | None) -> Callable[P, bool] | None:
    """A ``confirm`` callback of the Python API, refused now unless it is a function, and made to
    refuse an answer other than True or False (UsageError): "no" is truthy, and would go on.

    Every command asks before it changes anything, so a refused answer leaves all as it was.
    """
    if confirm is None:
        return None
    if not callable(confirm):
        raise UsageError(f"confirm must be a function that returns True or False, not {confirm!r}")

    def answered(*args: P.args, **kwargs: P.kwargs) -> bool:
        answer: object = confirm(*args, **kwargs)
        if not isinstance(answer, bool):
            raise UsageError(f"confirm returned {answer!r}, not True or False", hint="nothing was done")
        return answer

    return answered


def path_argument(name: Parameter, value: object) -> Path:
    """A path parameter as a Path (see ``path_text``)."""
    return Path(path_text(name, value, shown=setting(name)))


def file_argument(name: Parameter, value: object) -> Path:
    """A path parameter that must name a file (the database, the schema file), as a Path: refused
    when it ends in a folder's name (".", "..", a separator), which no file can have."""
    text = path_text(name, value, shown=setting(name))
    if names_a_folder(text):
        raise UsageError(f"{setting(name)} names a folder, not a file: {text!r}", hint="give the path of a file")
    return Path(text)


def names_a_folder(text: str) -> bool:
    """Whether a path's text ends where only a folder can (".", "..", "/", "data/")."""
    return os.path.basename(text) in ("", ".", "..")


def path_text(name: str, value: object, *, shown: str | None = None) -> str:
    """A path parameter's text, as given (bytes decoded as the system does); UsageError for what
    is not a path (None, a number), is empty (Path("") would be the current folder) or blank,
    begins with a ~ no shell expanded (and no such folder is there), is a URL other than a libSQL
    server's (sqlite:///app.db; unless a folder so named is there), or holds a NUL or a lone
    surrogate, which no file name can. ``shown`` names it in messages (default:
    ``name``; a ``setting()`` for a parameter, so that the command line names its option)."""
    shown = name if shown is None else shown
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise UsageError(f"{shown} must be a path (a str or a path object), not {type(value).__name__} ({value!r})")
    try:
        text = os.fsdecode(os.fspath(value))
    except TypeError as exc:  # a path object whose __fspath__ returns neither str nor bytes
        raise UsageError(f"{shown} must be a path: {exc}") from exc
    if wrong := not_meant(text):
        raise UsageError(f"{shown} {wrong[0]}", hint=wrong[1])
    if "\0" in text:
        raise UsageError(f"{shown} holds a NUL character, which no file name can: {text!r}", hint="fix the path")
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:  # a surrogate that stands for no byte, unlike \udc80-\udcff from os.fsdecode
        raise UsageError(
            f"{shown} holds a lone surrogate ({text[exc.start]!r}), which no file name can: {text!r}",
            hint="fix the path, or give it as bytes",
        ) from None
    return text


def checked(settings: Settings) -> Settings:
    """``settings``, once its values are checked: raises UsageError for a lock timeout that is not
    a finite number of seconds, fewer than one backup to keep, or a flag that is not a bool."""
    flags(
        backup=settings.backup,
        user_version=settings.user_version,
        dump_schema=settings.dump_schema,
        create=settings.create,
        allow_existing=settings.allow_existing,
    )
    seconds = settings.lock_timeout
    number = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    if not (number and 0 <= seconds <= sys.float_info.max):  # NaN fails the comparison, inf and 10**400 the bound
        raise UsageError(f"lock timeout must be a finite number of seconds, 0 or more, not {seconds!r}")
    whole_number("keep_backups", settings.keep_backups)
    if not isinstance(settings.observer, Observer):
        raise UsageError(f"observer must be a vcp_migrate Observer, not {type(settings.observer).__name__}")
    if settings.keep_backups < 1:
        raise UsageError(
            f"keep_backups must be 1 or more, not {settings.keep_backups}", hint="use backup=False instead"
        )
    return settings


def scan(settings: Settings) -> Directory:
    """The migrations directory; the schema file is not a migration even when it lives there,
    unless it is named as one: then it is one (left out, it would be skipped for good with the
    dump off; with it on, writing the schema file over it is refused: ``schema_target``)."""
    if settings.directory is not None:
        return settings.directory
    name = settings.schema_file.name
    # The folder as the file system names it: '..', links and another spelling of the same folder.
    inside = not discovery.is_migration_name(name) and (
        os.path.realpath(settings.schema_file.parent) == os.path.realpath(settings.migrations_dir)
    )
    return discovery.scan(settings.migrations_dir, ignore=[name] if inside else [])


def where(settings: Settings) -> str:
    """How errors and reports name the database: its path, or its server's URL."""
    return settings.server.url if settings.server is not None else str(settings.db_path)


def exists(settings: Settings) -> bool:
    """Whether the database exists (a server's always does), never creating it."""
    return settings.server is not None or settings.db_path.exists() or settings.db_path.is_symlink()


def open_existing(settings: Settings) -> Connection:
    """A connection to the database, which must exist: commands that only read never create it."""
    if settings.server is not None:
        from ..backends import server

        return server.open_existing(settings.server, settings.lock_timeout)
    return sqlite.open_database(settings.db_path, create=False, timeout=settings.lock_timeout)


def copy_for_checks(settings: Settings, connection: Connection) -> sqlite.MigrationConnection:
    """A throw-away copy (a scratch file) of the database behind ``connection`` as it sees it now,
    in its read transaction: a file's through the backup API, a server's schema and rows read over
    its stream."""
    from .. import scratch

    if settings.server is None:
        return scratch.copy_of(sqlite.local(connection))
    from ..backends import snapshot

    copy = scratch.database()
    try:
        snapshot.copy_into(connection, copy)
    except BaseException:
        copy.close()
        raise
    return copy


@contextmanager
def naming_the_database(settings: Settings) -> Iterator[None]:
    """SQLite errors, and history errors that name no place, become errors about the database."""
    with sqlite.translated(where(settings)):
        try:
            yield
        except DatabaseError as exc:  # a history table vcp-migrate did not make, or a newer layout
            exc.where = exc.where or where(settings)
            raise


def read_history(settings: Settings, connection: Connection, *, changing: bool = False) -> dict[int, AppliedMigration]:
    """The history of the database behind ``connection``; errors name the database.

    Read in one snapshot: in one statement when the history tables are at the current layout,
    else in one read transaction (unless one is open), with one round of SQLite's file locking
    and journal checks instead of one per query. ``changing``: the caller is about to write the
    history, and a trigger on its tables, which this run did not make, refuses it (DatabaseError).
    """
    wants_id = settings.observer.wants_history
    try:  # naming_the_database, spelled out: this runs for every database of a fleet
        # A server words its errors its own way: there the history is read statement by statement.
        found = None if connection.remote else history.read_current(connection, with_id=wants_id)
        if found is None:
            with _reading(connection):
                found = history.read_all(connection, with_id=wants_id)
    except sqlite3.Error as exc:
        from ..file_errors import database_error  # loaded only on an error: a history read never needs it

        raise database_error(exc, where(settings)) from exc
    except DatabaseError as exc:
        exc.where = exc.where or where(settings)
        raise
    connection.history_layout = found.layout
    connection.latest_applied_at = applied_times.latest(row.applied_at for row in found.applied.values())
    if wants_id:
        settings.observer.found(max(found.applied, default=0), found.database_id)
    if changing and found.triggers:
        from .. import history_guard

        raise history_guard.not_made_here(found.triggers, where(settings))
    return found.applied


def _reading(connection: Connection) -> AbstractContextManager[None]:
    # On a server, BEGIN goes to the primary even from a replica: reading a replica's history
    # (status, current) must work while the primary is down, so there it reads without one.
    if connection.in_transaction or connection.remote:
        return nullcontext()
    return transactions.read_transaction(connection)


def applied(settings: Settings) -> dict[int, AppliedMigration] | None:
    """The history, or None when the database does not exist (it is never created here)."""
    if not exists(settings):
        return None
    with closing(open_existing(settings)) as connection:
        return read_history(settings, connection)
