"""The command line: parses options, calls one engine method, renders, maps errors to exit codes.

Exit codes: 0 ok; 1 error; 2 usage; 130 interrupted. ``status --exit-code`` adds 3 (something is
pending) and 4 (something is modified, missing, invalid or out-of-order; 4 wins over 3).
Shared options and error handling are in ``base``; the commands in ``changing`` and ``reading``.
"""

from __future__ import annotations

import click

from .. import __version__
from . import changing, fleet, reading
from .base import Globals, Group, global_options


@click.group("vcp-migrate", cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, no_args_is_help=True)
@click.version_option(__version__, prog_name="vcp-migrate")
@global_options
@click.pass_context
def main(context: click.Context, /, **options: object) -> None:
    """Versioned, reversible, atomic schema migrations for SQLite.

    The options here are accepted after the command name too (there they win).

    \b
    Example:
      vcp-migrate new add_pnl_column
      vcp-migrate up
      vcp-migrate --db books/eu.db status
      vcp-migrate rollback --steps 2
    """
    context.obj = Globals(**options)  # type: ignore[arg-type]


for _command in (
    changing.migrate_command,
    changing.rollback_command,
    changing.redo_command,
    changing.baseline_command,
    changing.repair_command,
    changing.backups_command,
    changing.restore_command,
    reading.status_command,
    reading.current_command,
    reading.new_command,
    reading.validate_command,
    reading.schema_command,
    fleet.fleet_group,
):
    main.add_command(_command)

__all__ = ["main"]
