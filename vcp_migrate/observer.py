"""Observer: how the engine reports progress, kept apart so the CLI can subclass it cheaply."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    from pathlib import Path

    from .models import Backup, Direction, MigrationFile, MigrationRun


class Observer:
    """Receives progress from the engine (the CLI renders it).

    The default ignores progress and passes warnings (and the wait for another run) to the
    ``vcp_migrate`` logger of the standard ``logging`` module, so a library user sees them
    without an observer of their own.
    """

    def started(self, migration: MigrationFile, direction: Direction, index: int, total: int) -> None:
        """A migration is about to run; ``index`` counts from 1 to ``total``."""

    def finished(self, run: MigrationRun) -> None:
        """A migration ran and was committed with its history row."""

    def backed_up(self, backup: Backup) -> None:
        """A backup was taken before changing the database."""

    def discarded(self, backup: Backup) -> None:
        """The backup taken for the run was deleted again: the run changed nothing."""

    def created(self, database: Path) -> None:
        """This command created the database (said once the run is over and the file stays)."""

    def statement(self, sql: str, ms: float) -> None:
        """A statement of a migration ran, in ``ms`` milliseconds (only when ``wants_statements``)."""

    wants_statements = False

    def found(self, version: int, database_id: str | None) -> None:
        """The history as the command found it before running anything: the highest applied
        version and the database's id (only when ``wants_history``; a fleet reports them)."""

    wants_history = False

    def showing(self, title: str, code: str) -> None:
        """Code about to run that the user should see first (a down kept in the history)."""

    def waiting(self, message: str) -> None:
        """The command waits for another run to release the database (said once); logged at INFO."""
        _logger().info("%s", message)

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the command; logged as a WARNING."""
        _logger().warning("%s", message)


def _logger() -> logging.Logger:
    import logging  # only when there is something to say: status never loads it

    return logging.getLogger("vcp_migrate")
