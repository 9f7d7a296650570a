"""What every command shares: the group, its options, the engine it calls, errors and exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from ..config import manager_settings
from ..errors import VcpMigrateError
from ..printable import printable
from .progress import Progress

if TYPE_CHECKING:
    from ..engine import MigrationManager

EXIT_PENDING = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _colour(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def error(message: str) -> None:
    """Print ``message`` as one ``Error:`` line on stderr."""
    prefix = click.style("Error:", fg="red", bold=True) if _colour(sys.stderr) else "Error:"
    # Whitespace first (a statement's line breaks become spaces), then names' escape sequences.
    click.echo(f"{prefix} {printable(' '.join(message.split()))}", err=True, color=_colour(sys.stderr))


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def interactive() -> bool:
    """Whether someone can answer a question: standard input is a terminal.

    Piped input is not an answer to a question before running code kept in the database, or
    before replacing the database with a backup.
    """
    return sys.stdin.isatty()


class Group(click.Group):
    """The command group: aliases (up, down) and one-line usage errors."""

    aliases: ClassVar[dict[str, str]] = {"up": "migrate", "down": "rollback"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else None), command, rest

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                click.echo(exc.ctx.get_help())
            else:
                where = exc.ctx.command_path if exc.ctx else "vcp-migrate"
                error(f"{exc.format_message()} (see '{where} --help')")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            error("aborted: no answer to the question; nothing was changed (pass --yes to skip questions)")
            sys.exit(1)
        exit_now(result if isinstance(result, int) else 0)


def exit_now(code: int) -> None:
    """Exit with ``code``, even when a migration left a thread running.

    Python waits for such threads at exit, forever if they never end. By now the command has
    failed that migration, rolled it back and released the locks, so the process ends at once.
    """
    threading = sys.modules.get("threading")
    if threading is not None and any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def handles_errors(command: F) -> F:
    """Run a command body: VcpMigrateError and Ctrl-C become one line on stderr and an exit code.

    The body gets a ``progress`` argument, the Progress that the engine reports to.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, debug: bool, **kwargs: Any) -> int:
        progress = Progress()
        try:
            result = command(*args, progress=progress, **kwargs)
            return int(result or 0)
        except (click.ClickException, click.Abort):
            raise
        except VcpMigrateError as exc:
            progress.stop()
            if debug:
                _traceback()
            error(str(exc))
            return exc.exit_code
        except KeyboardInterrupt:
            progress.stop()
            current = f" while running {progress.current.path}" if progress.current else ""
            error(
                f"interrupted{current} (a transactional migration is rolled back whole;"
                " 'vcp-migrate status' shows what is applied)"
            )
            return EXIT_INTERRUPTED
        except Exception as exc:
            progress.stop()
            if debug:
                _traceback()
            error(f"unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)")
            return 1
        finally:
            progress.stop()

    return wrapper  # type: ignore[return-value]


def _outermost_first(command: F, *options: Callable[[F], F]) -> F:
    # The decorator applied last lists its option first in --help.
    for option in reversed(options):
        command = option(command)
    return command


def common(command: F) -> F:
    """--db, --dir and --debug, shared by every command."""
    return _outermost_first(
        command,
        click.option(
            "--db",
            "db",
            metavar="PATH",
            envvar="VCP_MIGRATE_DB",
            help="SQLite database [env VCP_MIGRATE_DB; default: vcp_trading.db, or db in [tool.vcp-migrate]].",
        ),
        click.option(
            "--dir",
            "directory",
            metavar="PATH",
            envvar="VCP_MIGRATE_DIR",
            help="Migrations directory [env VCP_MIGRATE_DIR; default: migrations, or dir in [tool.vcp-migrate]].",
        ),
        click.option("--debug", is_flag=True, help="Show the traceback of an error."),
    )


def _finite(ctx: click.Context, param: click.Parameter, seconds: float) -> float:
    # float() parses 'nan' and 'inf', and nan passes FloatRange(min=0): both would mean waiting forever.
    if seconds != seconds or seconds == float("inf"):
        raise click.BadParameter(f"{seconds} is not a number of seconds; give one such as 30", ctx, param)
    return seconds


lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    callback=_finite,
    default=30.0,
    show_default=True,
    envvar="VCP_MIGRATE_LOCK_TIMEOUT",
    metavar="SECONDS",
    help="How long to wait for another run or connection to release the database [env VCP_MIGRATE_LOCK_TIMEOUT].",
)


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


def make_manager(
    db: str | None,
    directory: str | None,
    progress: Progress,
    lock_timeout: float = 30.0,
    backup: bool | None = None,
    keep_backups: int | None = None,
    dump: bool | None = None,
) -> MigrationManager:
    """The engine, with command-line values first, then [tool.vcp-migrate], then defaults."""
    from ..engine import MigrationManager

    settings = manager_settings(db, directory, backup=backup, keep_backups=keep_backups, dump=dump)
    return MigrationManager(
        settings.db,
        settings.directory,
        lock_timeout=lock_timeout,
        backup=settings.backup,
        keep_backups=settings.keep_backups,
        user_version=settings.user_version,
        schema_file=settings.schema_file,
        dump_schema=settings.dump,
        observer=progress,
    )
