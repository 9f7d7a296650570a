"""What the user sees while a command runs: each migration as it completes, a spinner on a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ..observer import Observer
from ..printable import backup_text, printable, printable_lines

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from rich.console import Console
    from rich.status import Status

    from ..models import Backup, Direction, MigrationFile, MigrationRun


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` takes escape sequences, by Rich's rules (TTY_COMPATIBLE=1 or 0 decides,
    then FORCE_COLOR set and not empty, then isatty) but without loading Rich."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def colour(stream: Any) -> bool:
    """Whether to style what goes to ``stream``: a terminal, ``no_colour()`` false, and TERM not
    ``dumb`` or ``unknown`` (as Rich: Emacs' shell, a serial console show escape codes as text)."""
    return is_terminal(stream) and not no_colour() and not dumb_terminal()


def no_colour() -> bool:
    """Whether NO_COLOR turns colour off: set and not empty (no-color.org's rule; an empty value
    is as though unset). Every place that colours asks here, Rich too (before 14 it took an
    empty value as set)."""
    return bool(os.environ.get("NO_COLOR"))


def dumb_terminal() -> bool:
    """Whether TERM names a terminal that takes no escape sequences (as Rich decides it)."""
    return os.environ.get("TERM", "").lower() in ("dumb", "unknown")


def terminal_columns() -> int:
    """The terminal's width in columns: $COLUMNS first (as Rich), else the terminal's, else 80."""
    with contextlib.suppress(KeyError, ValueError):
        if (columns := int(os.environ["COLUMNS"])) > 0:
            return columns
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class Progress(Observer):
    """Prints each migration as it completes; on a terminal, a spinner while one runs."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self._console: Console | None = None
        self._terminal: bool | None = None
        self.status: Status | None = None
        self.current: MigrationFile | None = None
        self.quiet = quiet  # only errors (and what the command exists to print)
        self.lines = not quiet  # lines about what was done; off with -q and with --json
        self.ran: list[MigrationRun] = []  # what this command committed, for --json
        self.verbose = verbose  # each statement with its time too
        self.wants_statements = verbose
        self.config: str | None = None  # --config, for the manager
        self.origins: Mapping[str, str] = {}  # where the manager's settings came from, for messages
        self.taken: Backup | None = None  # the backup taken by this command, for --json
        self.made: Path | None = None  # the database this command created
        self.version_found: int | None = None  # the version the run found under its lock (with wants_history)

    def say(self, text: str) -> None:
        """A line about what was done (not data): silent with -q and --json; names in it are not markup."""
        if not self.lines:
            return
        self.stop()
        click.echo(text)  # plain, never through Rich: loading it costs more than a no-op run

    @property
    def console(self) -> Console:
        """Made on first use: status --json never loads Rich."""
        if self._console is None:
            from rich.console import Console

            # emoji: ':red_circle:' is text
            self._console = Console(highlight=False, soft_wrap=True, emoji=False, no_color=no_colour())
        return self._console

    @property
    def terminal(self) -> bool:
        """Whether output goes to a terminal (``is_terminal``: as Rich decides it, without loading Rich)."""
        if self._terminal is None:
            self._terminal = is_terminal(sys.stdout)
        return self._terminal

    def started(self, migration: MigrationFile, direction: Direction, index: int, total: int) -> None:
        self.current = migration
        if not self.lines or not self.terminal:
            return
        verb = "Applying" if direction == "up" else "Rolling back"
        from rich.text import Text

        text = Text(f"{verb} {printable(migration.path.name)} ({index}/{total})")  # Text: a name is not markup
        if self.status is None:
            self.status = self.console.status(text)
            self.status.start()
        else:
            self.status.update(text)

    def finished(self, run: MigrationRun) -> None:
        self.current = None
        self.ran.append(run)
        if not self.lines:
            return
        if not self.terminal:
            click.echo(printable(str(run)))  # plain lines off a terminal: Rich costs a third of a millisecond a line
            return
        from .. import render

        self.console.print(render.run_line(run))

    def backed_up(self, backup: Backup) -> None:
        self.taken = backup
        if not self.lines:
            return
        if not self.terminal:
            click.echo(backup_text(backup))
            return
        from .. import render

        self.console.print(render.backup_line(backup))

    def discarded(self, backup: Backup) -> None:
        if self.lines:
            click.echo(f"Deleted that backup again: the run changed nothing ({printable(str(backup.path.name))}).")

    def found(self, version: int, database_id: str | None) -> None:
        self.version_found = version

    def created(self, database: Path) -> None:
        self.made = database
        self.say(f"Created {printable(str(database))}")

    def statement(self, sql: str, ms: float) -> None:
        if not self.verbose:
            return
        self.stop()
        text = printable(" ".join(sql.split()))
        click.echo(f"  {ms:8.1f} ms  {text}")

    def showing(self, title: str, code: str) -> None:
        self.stop()
        self.console.print(f"Running the {printable(title)}:", style="bold", markup=False)
        self.console.print(printable_lines(code) or "(empty)", markup=False)

    def waiting(self, message: str) -> None:
        if not self.quiet:
            click.echo(printable(message), err=True)

    def warning(self, message: str) -> None:
        if not self.quiet:
            click.echo(f"Warning: {printable(message)}", err=True)

    def stop(self) -> None:
        if self._console is not None and self.status is not None:
            self.status.stop()
            self.status = None
