"""current: the database's version, the highest applied, read from the history alone.

Never scans the migrations directory, never runs migration code, never creates the database
and never takes the run lock: a deploy script can ask at any time, even during a migrate.
"""

from __future__ import annotations

from contextlib import closing

from .. import history, sqlite
from ..errors import DatabaseError
from .context import Settings


def version(settings: Settings) -> int:
    """The highest applied version; 0 when the database has no history or an empty one.

    PRAGMA user_version is not consulted: it mirrors the history, and may belong to someone else.
    Raises DatabaseError when the database does not exist: a mistyped path is not version 0.
    """
    if not settings.db_path.exists() and not settings.db_path.is_symlink():
        raise DatabaseError(
            "does not exist", where=str(settings.db_path), hint="check --db, or run 'vcp-migrate migrate' to create it"
        )
    connection = sqlite.open_database(settings.db_path, create=False, timeout=settings.lock_timeout)
    with closing(connection), sqlite.translated(settings.db_path):
        try:
            return history.highest(connection)
        except DatabaseError as exc:  # a history table vcp-migrate did not make, or a newer layout
            exc.where = exc.where or str(settings.db_path)
            raise
