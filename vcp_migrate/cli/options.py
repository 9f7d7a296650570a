"""The options commands share: the global ones (--db, --dir, --config...), the lock timeout, the
backup, the dry run and the options for a database on a server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _outermost_first(command: F, *options: Callable[[F], F]) -> F:
    # The decorator applied last lists its option first in --help.
    for option in reversed(options):
        command = option(command)
    return command


def global_options(command: F, *, environment: bool = False) -> F:
    """--db, --dir, --config, --debug, -q, -v and --no-color: on the group, and on every command."""
    return _outermost_first(
        command,
        click.option(
            "--db",
            "db",
            metavar="PATH|URL",
            help="SQLite database, or a libSQL server's URL (http://, https://, libsql://; its token from"
            " VCP_MIGRATE_AUTH_TOKEN) [env VCP_MIGRATE_DB; default: db in [tool.vcp-migrate], else vcp_trading.db].",
        ),
        click.option(
            "--dir",
            "directory",
            metavar="PATH",
            help="Migrations directory [env VCP_MIGRATE_DIR; default: dir in [tool.vcp-migrate], else migrations].",
        ),
        click.option(
            "--config",
            "config",
            metavar="PATH",
            help="The file with the [tool.vcp-migrate] table [env VCP_MIGRATE_CONFIG; default: the nearest"
            " pyproject.toml that has one, up to the repository root].",
        ),
        click.option("--debug", is_flag=True, help="Show the traceback of an error."),
        click.option(
            "-q",
            "--quiet",
            "quiet",
            is_flag=True,
            help="Print only errors, and what a command exists to print (status, current, schema, --json).",
        ),
        click.option("-v", "--verbose", "verbose", is_flag=True, help="Also print each statement with its time."),
        click.option("--no-color", "no_color", is_flag=True, help="No colour, even on a terminal [env NO_COLOR]."),
    )


def common(command: F) -> F:
    """The global options, accepted after the command name too."""
    return global_options(command)


def finite_seconds(ctx: click.Context, param: click.Parameter, seconds: float | None) -> float | None:
    # float() parses 'nan' and 'inf', and nan passes FloatRange(min=0): both would mean waiting forever.
    if seconds is None:
        return None
    if seconds != seconds or seconds == float("inf"):
        raise click.BadParameter(f"{seconds} is not a number of seconds; give one such as 30", ctx, param)
    return seconds


lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    callback=finite_seconds,
    metavar="SECONDS",
    help="How long to wait for another run or connection to release the database"
    " [env VCP_MIGRATE_LOCK_TIMEOUT; default: lock_timeout in [tool.vcp-migrate], else 30].",
)


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    # Read by make_manager: an option every command that backs up shares, not an argument of each.
    if value is not None:
        ctx.meta[f"vcp_migrate.{param.name}"] = value


backup_dir_option = click.option(
    "--backup-dir",
    "backup_dir",
    metavar="DIR",
    expose_value=False,
    callback=_remember,
    help="Keep backups in DIR, one folder for many databases [default: <db>.backups, or backup_dir in"
    " [tool.vcp-migrate]].",
)


def server_options(command: F) -> F:
    """--wait-for-replica, --replica-timeout and --lease, for changes to a database on a server."""
    return _outermost_first(
        command,
        click.option(
            "--wait-for-replica",
            "replicas",
            metavar="URL",
            multiple=True,
            expose_value=False,
            callback=_remember,
            help="After a change on a server, wait until this replica has it too (repeatable).",
        ),
        _seconds("--replica-timeout", "How long to wait for the replicas [default: 60]."),
        _seconds("--lease", "On a server, how long the run lock lasts without renewal if this run dies [default: 30]."),
    )


def _seconds(name: str, help: str) -> Callable[[F], F]:
    """An option of seconds above 0, kept for make_manager (not an argument of the command)."""
    return click.option(
        name,
        type=click.FloatRange(min=0, min_open=True),
        callback=lambda ctx, param, value: _remember(ctx, param, finite_seconds(ctx, param, value)),
        expose_value=False,
        metavar="SECONDS",
        help=help,
    )


def run_options(command: F) -> F:
    """What migrate and rollback share: the dry run, the backup, and the options for a server."""
    return dry_run_options(backup_options(server_options(command)))


def backup_options(command: F) -> F:
    """--backup/--no-backup, --keep-backups and --dump/--no-dump, for commands that change the database."""
    return _outermost_first(
        command,
        click.option(
            "--backup/--no-backup",
            "backup",
            default=None,
            help="Back up the database before changing it [default: on, or backup in [tool.vcp-migrate]].",
        ),
        backup_dir_option,
        click.option(
            "--keep-backups",
            type=click.IntRange(min=1),
            metavar="N",
            help="How many backups to keep [default: 5, or keep_backups in [tool.vcp-migrate]].",
        ),
        click.option(
            "--dump/--no-dump",
            "dump",
            default=None,
            help="Write the schema file after the change [default: on, or dump in [tool.vcp-migrate]].",
        ),
    )


def dry_run_options(command: F) -> F:
    """--dry-run and --sql, for migrate and rollback."""
    return _outermost_first(
        command,
        click.option(
            "--dry-run", is_flag=True, help="Run for real, then undo: report statements, times, errors, schema diff."
        ),
        click.option("--sql", "sql_only", is_flag=True, help="With a dry run: print only the captured SQL statements."),
    )
