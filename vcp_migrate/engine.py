"""MigrationManager, the public façade: one short method per command.

Each method reads the manager's settings as they are now (an attribute set after construction
counts) and calls the command module that does the work, in ``vcp_migrate/commands/``. The
command modules are imported by the methods that use them, so ``status`` loads only its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .backends import TOKEN_VARIABLE, Server, is_url, stand_in
from .commands.context import Settings, answers, checked, flags
from .commands.context import file_argument as _file
from .commands.context import path_argument as _path
from .errors import UsageError, setting
from .models import Backup, DryRun, MigrationRun, Problem, Repair, StatusReport
from .observer import Observer

if TYPE_CHECKING:
    from .config import ManagerSettings

__all__ = ["MigrationManager", "Repair"]

_DAY = 86400.0
_SERVER_ONLY = ("replicas", "replica_timeout", "lease", "auth_token")


def _urls(replicas: object) -> tuple[str, ...]:
    """The replicas' URLs, refused (UsageError) unless a list of str: a str alone is a sequence of
    its characters, and None or a number failed deep inside with a TypeError. The message names
    types only: a URL may carry what must not be printed."""
    if isinstance(replicas, (str, bytes)) or not isinstance(replicas, Iterable):
        raise UsageError(
            f"{setting('replicas')} must be a list of URLs, not {type(replicas).__name__}",
            hint='give a list such as ["http://HOST:PORT"], or () for none',
        )
    urls = tuple(replicas)
    if wrong := [type(url).__name__ for url in urls if not isinstance(url, str)]:
        raise UsageError(f"{setting('replicas')} must be a list of URLs, each a str, not {wrong[0]}")
    return urls


def _url_as_str(value: object) -> None:
    """UsageError for a server's URL given as bytes or a path object, not a str: as a path,
    ``Path("libsql://HOST")`` is ``libsql:/HOST``, and both were taken for a file's path (a file
    ``libsql:app.db`` was made). A str of the same text is read as a URL, so no file can be meant.
    The message names the type only: a URL may carry what must not be printed."""
    if isinstance(value, str) or not isinstance(value, (bytes, os.PathLike)):
        return
    try:
        text = os.fsdecode(os.fspath(value))
    except TypeError:  # a path object whose __fspath__ returns neither str nor bytes: refused later
        return
    if is_url(text):
        raise UsageError(
            f"{setting('db_path')} is a server's URL given as {type(value).__name__}: a URL must be a str",
            hint="give it as a str such as 'libsql://HOST:PORT', not a Path, which makes '//' one '/'",
        )


class MigrationManager:
    """Applies, rolls back, reports and checks the migrations of one directory on one database.

    ``lock_timeout`` bounds how long a command waits for another run or connection to release
    the database. ``backup`` and ``keep_backups`` govern the copy taken before a change;
    ``user_version`` keeps PRAGMA user_version equal to the highest applied version;
    ``schema_file`` (default ``<migrations_dir>/schema.sql``) receives the normalised schema
    after every change unless ``dump_schema`` is False. ``create=False`` refuses to create a
    missing database; ``allow_existing`` lets ``migrate`` apply every migration to a database
    that has tables but no history (otherwise it refuses and names ``baseline``).
    Every failure raises a VcpMigrateError. ``from_config`` builds the manager the CLI would use.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] = "vcp_trading.db",
        migrations_dir: str | os.PathLike[str] = "migrations",
        *,
        lock_timeout: float = 30.0,
        backup: bool = True,
        keep_backups: int = 5,
        user_version: bool = True,
        schema_file: str | os.PathLike[str] | None = None,
        dump_schema: bool = True,
        create: bool = True,
        allow_existing: bool = False,
        backup_dir: str | os.PathLike[str] | None = None,
        observer: Observer | None = None,
        replicas: Sequence[str] = (),
        replica_timeout: float = 60.0,
        lease: float = 30.0,
        auth_token: str | None = None,
    ) -> None:
        # A libSQL URL names a database on a server; db_path is then the local name its backups go by.
        _url_as_str(db_path)
        self.db_url = db_path if isinstance(db_path, str) and is_url(db_path) else None
        self.db_path = stand_in(db_path) if isinstance(db_path, str) and self.db_url else _file("db_path", db_path)
        self.replicas = _urls(replicas)
        self.replica_timeout = replica_timeout
        self.lease = lease
        self._auth_token = auth_token  # else $VCP_MIGRATE_AUTH_TOKEN, read when used; never printed
        self.migrations_dir = _path("migrations_dir", migrations_dir)
        self.lock_timeout = lock_timeout
        self.backup = backup
        self.keep_backups = keep_backups
        self.user_version = user_version
        self.schema_file = (
            _file("schema_file", schema_file) if schema_file is not None else self.migrations_dir / "schema.sql"
        )
        self.dump_schema = dump_schema
        self.create = create
        self.allow_existing = allow_existing
        self.backup_dir = _path("backup_dir", backup_dir) if backup_dir is not None else None
        self.observer = observer or Observer()
        self._settings()  # refuse bad values now, not at the first command

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, observer: Observer | None = None, **overrides: object
    ) -> MigrationManager:
        """The manager the CLI would use: each setting from ``overrides`` (constructor parameter
        names), else the environment (VCP_MIGRATE_DB, VCP_MIGRATE_DIR, VCP_MIGRATE_LOCK_TIMEOUT),
        else the [tool.vcp-migrate] table of ``path`` (default: $VCP_MIGRATE_CONFIG, else the
        nearest pyproject.toml with that table, up to the repository root), else the default.
        """
        from . import config

        overrides = dict(overrides)
        _url_as_str(overrides.get("db_path"))  # as a path, Path("libsql://HOST") would say the URL names no host
        # None is a setting not given, here as for every other parameter (auth_token=os.environ.get(...))
        given = {name: overrides.pop(name, None) for name in _SERVER_ONLY}
        server = {name: value for name, value in given.items() if value is not None}
        found = config.settings_from(path, overrides, parameters=True)
        manager = cls.from_settings(found, observer=observer)
        # The server's settings are given, never read from the file (a token has no place there).
        for name, value in server.items():
            setattr(manager, "_auth_token" if name == "auth_token" else name, value)
        manager._settings()  # checked now, as the constructor checks its own
        return manager

    @classmethod
    def from_settings(cls, found: ManagerSettings, *, observer: Observer | None = None) -> MigrationManager:
        """The manager of settings decided already (``config.settings_from``); ``found.origins``
        says where each came from, for a caller that names them in messages."""
        return cls(
            found.db,
            found.directory,
            lock_timeout=found.lock_timeout,
            backup=found.backup,
            keep_backups=found.keep_backups,
            user_version=found.user_version,
            schema_file=found.schema_file,
            dump_schema=found.dump,
            create=found.create,
            allow_existing=found.allow_existing,
            backup_dir=found.backup_dir,
            observer=observer,
        )

    def _settings(self) -> Settings:
        return checked(
            Settings(
                _file("db_path", self.db_path),
                _path("migrations_dir", self.migrations_dir),
                self.lock_timeout,
                self.backup,
                self.keep_backups,
                self.user_version,
                _file("schema_file", self.schema_file),
                self.dump_schema,
                self.observer,
                self.create,
                self.allow_existing,
                _path("backup_dir", self.backup_dir) if self.backup_dir is not None else None,
                server=self._server(),
            )
        )

    @property
    def database(self) -> str:
        """How the database is named in messages: its path, or its server's URL."""
        return self.db_url if self.db_url is not None else str(self.db_path)

    def _server(self) -> Server | None:
        replicas = _urls(self.replicas)
        if self.db_url is None:
            if replicas:
                raise UsageError(
                    f"{setting('replicas')} is only for a database on a server",
                    hint=f"give a libSQL URL as {setting('db_path')}, or leave the replicas out",
                )
            return None
        from .backends.hrana import http_url

        for url, given in ((self.db_url, setting("db_path")), *((url, setting("replicas")) for url in replicas)):
            try:
                http_url(url)
            except ValueError as exc:  # only the setting that holds it: a command may have no replicas
                raise UsageError(str(exc), hint=f"check {given}") from None
        for value, name in ((self.lease, setting("lease")), (self.replica_timeout, setting("replica_timeout"))):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and 0 < value <= _DAY):
                raise UsageError(f"{name} must be a number of seconds above 0 and at most a day, not {value!r}")
        if not isinstance(self._auth_token, (str, type(None))):  # never the value: it may be the token
            raise UsageError(f"auth_token must be a str or None, not {type(self._auth_token).__name__}")
        # stripped: a token read from a file often ends with a line end
        token = (self._auth_token or os.environ.get(TOKEN_VARIABLE) or "").strip() or None
        if token is not None and not all("!" <= character <= "~" for character in token):
            raise UsageError(  # never the token itself
                f"the auth token (auth_token or {TOKEN_VARIABLE}) holds a character no token has (a space, a line"
                " end, a character outside ASCII)",
                hint="check how it is set",
            )
        return Server(http_url(self.db_url), token, float(self.lease), replicas, float(self.replica_timeout))

    # -- reading ------------------------------------------------------------------------------

    def status(self) -> list[dict[str, object]]:
        """Every migration as a dict: version, name, state, applied, applied_at, checksum, ..."""
        return [row.as_dict() for row in self.report().rows]

    def report(self) -> StatusReport:
        """Every migration's state; never runs migration code and never creates the database."""
        from .commands import status

        return status.report(self._settings())

    def current(self) -> int:
        """The highest applied version (0 when none), from the history alone; never creates the database."""
        from .commands import current

        return current.version(self._settings())

    def validate(self, *, roundtrip: bool = False) -> list[Problem]:
        """Every problem with the files, the history against them, the database's integrity and
        schema (drift), the schema file, and hazards in pending migrations (warnings).

        Runs migrations, but only on databases in memory; ``roundtrip`` also proves each one
        reversible on a copy of the database. The database itself is only read.
        """
        from .commands import validate

        flags(roundtrip=roundtrip)
        return validate.validate(self._settings(), roundtrip=roundtrip)

    def schema_text(self) -> str:
        """The database's normalised schema (tables, indexes, views, triggers)."""
        from .commands import validate

        return validate.schema_text(self._settings())

    def backups(self) -> list[Backup]:
        """The backups of this database, newest first."""
        from .commands import restore

        return restore.listing(self._settings())

    # -- changing -----------------------------------------------------------------------------

    def migrate(
        self, target: int | None = None, *, allow_out_of_order: bool = False, atomic: bool = False
    ) -> list[MigrationRun]:
        """Apply pending migrations in version order, up to ``target`` if given; return what ran.

        Every migration to run is loaded before the first one starts. Creates the database.
        With ``atomic``, all of them run in one transaction: all are applied or none.
        """
        from .commands import migrate

        flags(allow_out_of_order=allow_out_of_order, atomic=atomic)
        return migrate.migrate(self._settings(), target, allow_out_of_order=allow_out_of_order, atomic=atomic)

    def rollback(
        self,
        steps: int | None = None,
        *,
        to: int | None = None,
        from_history: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> list[MigrationRun]:
        """Roll back the ``steps`` migrations applied last (default 1), or all above version ``to``.

        In the reverse of the order they were applied in (which differs from version order after
        ``migrate(allow_out_of_order=True)``); PlanError when ``to`` would keep a migration applied
        after one it rolls back. If one fails, those rolled back before it stay rolled back. With
        ``from_history``, a migration whose file is missing runs the source kept in the history:
        ``confirm`` sees what will run (a title and the whole source as stored, top-level code
        included) before anything runs, and refusing stops the rollback with PlanError.
        """
        from .commands import rollback

        flags(from_history=from_history)
        return rollback.rollback(self._settings(), steps, to, from_history=from_history, confirm=answers(confirm))

    def redo(self) -> list[MigrationRun]:
        """Roll back the migration applied last and apply it again, from its file as it is now.

        When it is transactional both happen in one transaction: if the up fails, it stays applied.
        """
        from .commands import rollback

        return rollback.redo(self._settings())

    def dry_run_migrate(self, target: int | None = None, *, allow_out_of_order: bool = False) -> DryRun:
        """Rehearse ``migrate``: really run it, then undo it; the database file is left as it was."""
        from .commands import dry_run

        flags(allow_out_of_order=allow_out_of_order)
        return dry_run.dry_run_migrate(self._settings(), target, allow_out_of_order=allow_out_of_order)

    def dry_run_rollback(
        self,
        steps: int | None = None,
        *,
        to: int | None = None,
        from_history: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> DryRun:
        """Rehearse ``rollback``: really run it, then undo it; the database file is left as it was."""
        from .commands import dry_run

        flags(from_history=from_history)
        settings = self._settings()
        return dry_run.dry_run_rollback(settings, steps, to, from_history=from_history, confirm=answers(confirm))

    def baseline(self, version: int) -> list[int]:
        """Record the migrations up to ``version`` as applied, without running them.

        For a database that existed before vcp-migrate. Refuses when the history already goes
        beyond ``version``. Returns the versions recorded.
        """
        from .commands import baseline

        return baseline.baseline(self._settings(), version)

    def repair(
        self, versions: list[int] | None = None, *, confirm: Callable[[Repair], bool] | None = None
    ) -> list[int]:
        """Record the current checksum and source of modified applied migrations.

        ``confirm`` sees each one with its diff and says whether to record it. Returns the
        versions recorded; the database is not otherwise changed.
        """
        from .commands import repair

        return repair.repair(self._settings(), versions, answers(confirm))

    def restore(
        self, backup: str | os.PathLike[str] | None = None, *, confirm: Callable[[Backup], bool] | None = None
    ) -> tuple[Backup, Backup | None]:
        """Replace the database with a backup (the newest by default), under the run lock, with the
        backup's page size and journal mode.

        ``confirm`` sees the backup chosen (when it was taken, its version: every change since is
        lost) and says whether to go on; None goes on. Then a backup of the current state is taken,
        so a restore can itself be undone (it is deleted again if the restore fails). Refuses a file
        that is not a backup of this database. Returns (restored, safety copy or None).
        """
        from .commands import restore

        return restore.restore(self._settings(), backup, answers(confirm))

    def new(self, name: str, *, sql: bool = False) -> Path:
        """Create the next migration file with empty up and down; return its path. Never overwrites."""
        from .commands import new

        flags(sql=sql)
        return new.new(self._settings(), name, sql=sql)
