"""current: the database's version, the highest applied, read from the history alone.

Never scans the migrations directory, never runs migration code, never creates the database
and never takes the run lock: a deploy script can ask at any time, even during a migrate.
"""

from __future__ import annotations

from contextlib import closing

from .. import history
from ..errors import DatabaseError, setting
from .context import Settings, exists, naming_the_database, open_existing


def version(settings: Settings) -> int:
    """The highest applied version; 0 when the database has no history or an empty one.

    PRAGMA user_version is not consulted: it mirrors the history, and may belong to someone else.
    Raises DatabaseError when the database does not exist: a mistyped path is not version 0.
    """
    if not exists(settings):
        raise DatabaseError(
            "does not exist",
            where=str(settings.db_path),
            hint=f"check {setting('db_path')}, or run 'vcp-migrate migrate' to create it",
        )
    with closing(open_existing(settings)) as connection, naming_the_database(settings):
        return history.highest(connection)
