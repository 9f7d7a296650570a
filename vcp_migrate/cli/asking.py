"""Questions to whoever runs a command, and when there is no one to answer them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..printable import printable

if TYPE_CHECKING:
    from ..errors import VcpMigrateError
    from .progress import Progress


def interactive() -> bool:
    """Whether someone can answer a question: standard input is a terminal.

    Piped input is not an answer to a question before running code kept in the database,
    replacing the database with a backup, or accepting an edit to an applied migration.
    """
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except ValueError:  # closed
        return False


def asked(
    question: str, *, yes: bool, refusal: VcpMigrateError, warning: str = "", progress: Progress | None = None
) -> bool:
    """The answer to ``question``: yes with ``--yes``; ``refusal`` raised when no terminal can
    answer; otherwise asked, after ``warning`` (the progress display stopped first)."""
    if yes:
        return True
    if not interactive():
        raise refusal
    if warning:
        if progress is not None:
            progress.stop()
        click.echo(printable(warning))
    return click.confirm(question, default=False)
