"""The command line: parses options, calls one engine method, renders, maps errors to exit codes.

Exit codes: 0 ok; 1 error; 2 usage; 130 interrupted. ``status --exit-code`` adds 3 (something is
pending) and 4 (something is modified, missing, invalid or out-of-order; 4 wins over 3).
Errors and exit codes are in ``base``, shared options in ``options``, questions in ``asking``;
the commands in ``changing``, ``keeping``, ``reading`` and ``fleet``, each module imported only
when one of its commands runs (``Group.lazy``), so ``vcp-migrate status`` loads neither the
changing commands nor the fleet's.
"""

from __future__ import annotations

import click

from .. import __version__
from .base import Globals, Group
from .options import global_options


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


# Each command by name, in the order --help lists them: (module of vcp_migrate.cli, attribute).
main.lazy.update(
    {
        "migrate": ("changing", "migrate_command"),
        "rollback": ("changing", "rollback_command"),
        "redo": ("changing", "redo_command"),
        "baseline": ("changing", "baseline_command"),
        "repair": ("changing", "repair_command"),
        "backups": ("keeping", "backups_command"),
        "restore": ("keeping", "restore_command"),
        "status": ("reading", "status_command"),
        "current": ("reading", "current_command"),
        "new": ("reading", "new_command"),
        "validate": ("reading", "validate_command"),
        "schema": ("reading", "schema_command"),
        "fleet": ("fleet", "fleet_group"),
    }
)

__all__ = ["main"]
