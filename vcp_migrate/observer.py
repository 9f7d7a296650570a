"""Observer: how the engine reports progress, kept apart so the CLI can subclass it cheaply."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Backup, Direction, MigrationFile, MigrationRun


class Observer:
    """Receives progress from the engine (the CLI renders it); the default ignores it."""

    def started(self, migration: MigrationFile, direction: Direction, index: int, total: int) -> None:
        """A migration is about to run; ``index`` counts from 1 to ``total``."""

    def finished(self, run: MigrationRun) -> None:
        """A migration ran and was committed with its history row."""

    def backed_up(self, backup: Backup) -> None:
        """A backup was taken before changing the database."""

    def showing(self, title: str, code: str) -> None:
        """Code about to run that the user should see first (a down kept in the history)."""

    def waiting(self, message: str) -> None:
        """The command waits for another run to release the database (said once)."""

    def warning(self, message: str) -> None:
        """Something the user should know that does not stop the command."""
