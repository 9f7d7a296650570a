"""The command line: parses options, calls one engine method, renders, maps errors to exit codes.

Exit codes: 0 ok; 1 error; 2 usage; 3 pending (``status --exit-code``); 130 interrupted.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from . import __version__
from .config import read_settings
from .errors import VcpMigrateError
from .observer import Observer
from .printable import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

    from .engine import MigrationManager, Repair
    from .models import Backup, Direction, DryRun, MigrationFile, MigrationRun

EXIT_PENDING = 3
EXIT_INTERRUPTED = 130
DEFAULTS = {"db": "vcp_trading.db", "dir": "migrations"}

F = TypeVar("F", bound=Callable[..., Any])


def _colour(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def _error(message: str) -> None:
    prefix = click.style("Error:", fg="red", bold=True) if _colour(sys.stderr) else "Error:"
    # Whitespace first (a statement's line breaks become spaces), then names' escape sequences.
    click.echo(f"{prefix} {printable(' '.join(message.split()))}", err=True, color=_colour(sys.stderr))


def _traceback() -> None:
    import traceback

    traceback.print_exc()


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


class _Group(click.Group):
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
                _error(f"{exc.format_message()} (see '{where} --help')")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            _error("aborted: no answer to the question; nothing was changed (pass --yes to skip questions)")
            sys.exit(1)
        _exit(result if isinstance(result, int) else 0)


def _exit(code: int) -> None:
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


def _interactive() -> bool:
    """Whether a question can be answered: standard input is a terminal."""
    return sys.stdin.isatty()


def _setting(key: str, default: object) -> object:
    return read_settings().get(key, default)


class _Progress(Observer):
    """Prints each migration as it completes; on a terminal, a spinner while one runs."""

    def __init__(self) -> None:
        self._console: Console | None = None
        self._terminal: bool | None = None
        self.status: Status | None = None
        self.current: MigrationFile | None = None

    @property
    def console(self) -> Console:
        """Made on first use: status --json never loads Rich."""
        if self._console is None:
            self._console = _console()
        return self._console

    @property
    def terminal(self) -> bool:
        """Whether output goes to a terminal, as Rich decides it; without importing Rich when
        nothing could make it say yes (no tty, no FORCE_COLOR or TTY_COMPATIBLE)."""
        if self._terminal is None:
            maybe = sys.stdout.isatty() or bool(os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE"))
            self._terminal = maybe and self.console.is_terminal
        return self._terminal

    def started(self, migration: MigrationFile, direction: Direction, index: int, total: int) -> None:
        self.current = migration
        if not self.terminal:
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
        if not self.terminal:
            click.echo(printable(str(run)))  # plain lines off a terminal: Rich costs a third of a millisecond a line
            return
        from . import render

        self.console.print(render.run_line(run))

    def backed_up(self, backup: Backup) -> None:
        from . import render

        self.console.print(render.backup_line(backup))

    def showing(self, title: str, code: str) -> None:
        self.stop()
        self.console.print(f"Running the {printable(title)}:", style="bold", markup=False)
        self.console.print(code or "(empty)", markup=False)

    def warning(self, message: str) -> None:
        click.echo(f"Warning: {printable(message)}", err=True)

    def stop(self) -> None:
        if self._console is not None and self.status is not None:
            self.status.stop()
            self.status = None


def _handles_errors(command: F) -> F:
    """Run a command body: VcpMigrateError and Ctrl-C become one line on stderr and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, debug: bool, **kwargs: Any) -> int:
        progress = _Progress()
        try:
            result = command(*args, progress=progress, **kwargs)
            return int(result or 0)
        except (click.ClickException, click.Abort):
            raise
        except VcpMigrateError as exc:
            progress.stop()
            if debug:
                _traceback()
            _error(str(exc))
            return exc.exit_code
        except KeyboardInterrupt:
            progress.stop()
            current = f" while running {progress.current.path}" if progress.current else ""
            _error(
                f"interrupted{current} (a transactional migration is rolled back whole;"
                " 'vcp-migrate status' shows what is applied)"
            )
            return EXIT_INTERRUPTED
        except Exception as exc:
            progress.stop()
            if debug:
                _traceback()
            _error(f"unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)")
            return 1
        finally:
            progress.stop()

    return wrapper  # type: ignore[return-value]


def _common(command: F) -> F:
    """--db, --dir and --debug, shared by every command."""
    command = click.option("--debug", is_flag=True, help="Show the traceback of an error.")(command)
    command = click.option(
        "--dir",
        "directory",
        metavar="PATH",
        envvar="VCP_MIGRATE_DIR",
        help="Migrations directory [env VCP_MIGRATE_DIR; default: migrations, or dir in [tool.vcp-migrate]].",
    )(command)
    command = click.option(
        "--db",
        "db",
        metavar="PATH",
        envvar="VCP_MIGRATE_DB",
        help="SQLite database [env VCP_MIGRATE_DB; default: vcp_trading.db, or db in [tool.vcp-migrate]].",
    )(command)
    return command


def _finite(ctx: click.Context, param: click.Parameter, seconds: float) -> float:
    # float() parses 'nan' and 'inf', and nan passes FloatRange(min=0): both would mean waiting forever.
    if seconds != seconds or seconds == float("inf"):
        raise click.BadParameter(f"{seconds} is not a number of seconds; give one such as 30", ctx, param)
    return seconds


_lock_timeout = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    callback=_finite,
    default=30.0,
    show_default=True,
    envvar="VCP_MIGRATE_LOCK_TIMEOUT",
    metavar="SECONDS",
    help="How long to wait for another run or connection to release the database [env VCP_MIGRATE_LOCK_TIMEOUT].",
)


_backup_options = [
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
]


def _with(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def _manager(
    db: str | None,
    directory: str | None,
    progress: Observer,
    lock_timeout: float = 30.0,
    backup: bool | None = None,
    keep_backups: int | None = None,
    dump: bool | None = None,
) -> MigrationManager:
    """The engine, with command-line values first, then [tool.vcp-migrate], then defaults."""
    from .engine import MigrationManager

    settings = read_settings()
    chosen_backup = settings.get("backup", True) if backup is None else backup
    chosen_keep = settings.get("keep_backups", 5) if keep_backups is None else keep_backups
    chosen_dump = settings.get("dump", True) if dump is None else dump
    user_version = settings.get("user_version", True)
    schema_file = settings.get("schema_file")
    assert isinstance(chosen_backup, bool) and isinstance(chosen_keep, int) and isinstance(user_version, bool)
    assert isinstance(chosen_dump, bool) and (schema_file is None or isinstance(schema_file, str))
    return MigrationManager(
        db if db is not None else str(settings.get("db", DEFAULTS["db"])),
        directory if directory is not None else str(settings.get("dir", DEFAULTS["dir"])),
        lock_timeout=lock_timeout,
        backup=chosen_backup,
        keep_backups=chosen_keep,
        user_version=user_version,
        schema_file=schema_file,
        dump_schema=chosen_dump,
        observer=progress,
    )


def _show_dry_run(report: DryRun, progress: _Progress, sql: bool) -> int:
    from . import render

    progress.stop()
    if sql:
        click.echo(render.sql_only(report))
    else:
        progress.console.print(render.dry_run(report))
    failed = report.failed
    if failed is None:
        return 0
    _error(f"{failed.path}: {failed.error} (dry run: nothing was changed)")
    return 1


@click.group("vcp-migrate", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, no_args_is_help=True)
@click.version_option(__version__, prog_name="vcp-migrate")
def main() -> None:
    """Versioned, reversible, atomic schema migrations for SQLite.

    \b
    Example:
      vcp-migrate new add_pnl_column
      vcp-migrate up
      vcp-migrate status
      vcp-migrate rollback --steps 2
    """


_dry_run_options = [
    click.option(
        "--dry-run", is_flag=True, help="Run for real, then undo: report statements, times, errors, schema diff."
    ),
    click.option("--sql", "sql_only", is_flag=True, help="With a dry run: print only the captured SQL statements."),
]


@main.command("migrate")
@_common
@_lock_timeout
@click.option("--to", "target", type=click.IntRange(min=1), metavar="VERSION", help="Stop after this version.")
@click.option("--allow-out-of-order", is_flag=True, help="Apply pending migrations numbered below applied ones.")
@click.option("--atomic", is_flag=True, help="Apply every pending migration in one transaction: all or none.")
@_with(_dry_run_options)
@_with(_backup_options)
@_handles_errors
def migrate_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float,
    target: int | None,
    allow_out_of_order: bool,
    atomic: bool,
    dry_run: bool,
    sql_only: bool,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: _Progress,
) -> int:
    """Apply pending migrations in version order (alias: up).

    Each migration commits together with its history row, or not at all.
    Creates the database if it does not exist; backs up an existing one first.

    \b
    Example:
      vcp-migrate up
      vcp-migrate migrate --to 2 --db vcp_trading.db
      vcp-migrate migrate --dry-run
      vcp-migrate migrate --atomic --keep-backups 10
    """
    manager = _manager(db, directory, progress, lock_timeout, backup, keep_backups, dump)
    if dry_run or sql_only:
        return _show_dry_run(manager.dry_run_migrate(target, allow_out_of_order=allow_out_of_order), progress, sql_only)
    runs = manager.migrate(target, allow_out_of_order=allow_out_of_order, atomic=atomic)
    progress.stop()
    if not runs:
        progress.console.print(f"Nothing to apply: {printable(str(manager.db_path))} is up to date.", markup=False)
    else:
        total = sum(run.duration_ms for run in runs)
        progress.console.print(f"Applied {len(runs)} migration(s) in {total} ms.")
    return 0


@main.command("rollback")
@_common
@_lock_timeout
@click.option("--steps", type=click.IntRange(min=1), metavar="N", help="How many migrations to roll back [default: 1].")
@click.option(
    "--to",
    "to",
    type=click.IntRange(min=0),
    metavar="VERSION",
    help="Roll back every migration above VERSION; 0 rolls back all.",
)
@click.option(
    "--from-history",
    is_flag=True,
    help="For a migration whose file is missing, run the source kept in the database (shown first).",
)
@click.option("--yes", is_flag=True, help="With --from-history: run the source kept in the database without asking.")
@_with(_dry_run_options)
@_with(_backup_options)
@_handles_errors
def rollback_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float,
    steps: int | None,
    to: int | None,
    from_history: bool,
    yes: bool,
    dry_run: bool,
    sql_only: bool,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: _Progress,
) -> int:
    """Roll back applied migrations, newest first (alias: down).

    With --from-history, a migration whose file is missing runs from the source
    kept in the database: it is shown whole, and run only once you say yes.

    \b
    Example:
      vcp-migrate rollback
      vcp-migrate rollback --steps 2
      vcp-migrate down --to 0
      vcp-migrate rollback --dry-run --sql
      vcp-migrate rollback --from-history
      vcp-migrate rollback --from-history --yes
    """
    if steps is not None and to is not None:
        raise click.UsageError("--steps and --to cannot be used together")

    def confirm(title: str, code: str) -> bool:
        from .errors import PlanError

        progress.showing(title, code)
        if yes:
            return True
        if not _interactive():
            raise PlanError(
                "--from-history runs code kept in the database, and there is no terminal to confirm it",
                hint="review the source shown above and pass --yes; nothing was rolled back",
            )
        return click.confirm("Run it?", default=False)

    manager = _manager(db, directory, progress, lock_timeout, backup, keep_backups, dump)
    if dry_run or sql_only:
        report = manager.dry_run_rollback(steps, to=to, from_history=from_history, confirm=confirm)
        return _show_dry_run(report, progress, sql_only)
    runs = manager.rollback(steps, to=to, from_history=from_history, confirm=confirm)
    progress.stop()
    if not runs:
        progress.console.print("Nothing to roll back.")
    else:
        progress.console.print(f"Rolled back {len(runs)} migration(s).")
    return 0


@main.command("redo")
@_common
@_lock_timeout
@_with(_backup_options)
@_handles_errors
def redo_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: _Progress,
) -> int:
    """Roll back the newest migration and apply it again, as its file is now.

    The loop while writing a migration. In one transaction when the migration is
    transactional: if its up fails, it stays applied as it was.

    \b
    Example:
      vcp-migrate redo
    """
    _manager(db, directory, progress, lock_timeout, backup, keep_backups, dump).redo()
    return 0


@main.command("baseline")
@_common
@_lock_timeout
@click.argument("version", type=click.IntRange(min=1))
@_handles_errors
def baseline_command(
    db: str | None, directory: str | None, lock_timeout: float, version: int, progress: _Progress
) -> int:
    """Record migrations up to VERSION as applied, without running them.

    For a database created before vcp-migrate: its schema already holds what these
    migrations would create. Refuses if the history already goes beyond VERSION.

    \b
    Example:
      vcp-migrate baseline 2
    """
    recorded = _manager(db, directory, progress, lock_timeout).baseline(version)
    listed = ", ".join(map(str, recorded)) or "none (already recorded)"
    click.echo(f"Recorded as applied without running them: {listed}.")
    return 0


@main.command("repair")
@_common
@_lock_timeout
@click.argument("versions", type=click.IntRange(min=1), nargs=-1)
@click.option("--yes", is_flag=True, help="Record without asking.")
@_handles_errors
def repair_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float,
    versions: tuple[int, ...],
    yes: bool,
    progress: _Progress,
) -> int:
    """Accept reviewed edits to applied migrations: record their new checksums.

    Shows the diff between what was applied and the file now, and asks before
    recording each one (unless --yes). Without VERSIONS: every modified migration.

    \b
    Example:
      vcp-migrate repair
      vcp-migrate repair 3 --yes
    """
    from . import render

    def confirm(repair: Repair) -> bool:
        progress.console.print(render.diff_text(repair.diff))
        return yes or click.confirm(f"Record the new checksum of {repair.current.path}?", default=False)

    manager = _manager(db, directory, progress, lock_timeout)
    repaired = manager.repair(list(versions) or None, confirm=confirm)
    listed = ", ".join(map(str, repaired)) or "nothing"
    click.echo(f"Recorded new checksums: {listed}.")
    return 0


@main.command("backups")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@_handles_errors
def backups_command(db: str | None, directory: str | None, as_json: bool, progress: _Progress) -> int:
    """List the backups taken before changes: time, version, size.

    \b
    Example:
      vcp-migrate backups
      vcp-migrate backups --json
    """
    manager = _manager(db, directory, progress)
    found = manager.backups()
    if as_json:
        import json

        click.echo(json.dumps([backup.as_dict() for backup in found], indent=2))
    else:
        from . import render

        progress.console.print(render.backups_table(manager.db_path, found))
    return 0


def _stdin_is_terminal() -> bool:
    """Whether someone can answer a question (piped input is not an answer to a destructive one)."""
    return sys.stdin.isatty()


@main.command("restore")
@_common
@_lock_timeout
@click.argument("backup", required=False, metavar="[BACKUP]")
@click.option("--yes", is_flag=True, help="Restore without asking (needed when no terminal can answer).")
@_handles_errors
def restore_command(
    db: str | None, directory: str | None, lock_timeout: float, backup: str | None, yes: bool, progress: _Progress
) -> int:
    """Replace the database with a backup: the newest, or the one named.

    Says when the backup was taken and asks first, since every change made
    since then is lost (--yes skips the question). Backs up the current state
    first, so the restore can itself be undone. Refuses a file that is not a
    backup of this database.

    \b
    Example:
      vcp-migrate restore
      vcp-migrate restore 20261124T120000.000Z-v2.db --yes
    """
    manager = _manager(db, directory, progress, lock_timeout)

    def confirm(chosen: Backup) -> bool:
        when = f"{chosen.path} (taken {chosen.taken_at}, at version {chosen.version})"
        if yes:
            return True
        if not _stdin_is_terminal():
            raise VcpMigrateError(
                f"restoring {when} would lose every change made since then, and there is no terminal to ask",
                where=str(manager.db_path),
                hint="pass --yes to restore; nothing was changed",
            )
        progress.stop()
        warning = f"Restoring {when} replaces {manager.db_path}: every change made since then will be lost."
        click.echo(printable(warning))
        return click.confirm("Restore it?", default=False)

    restored, safety = manager.restore(backup, confirm=confirm)
    when = f"taken {restored.taken_at}, at version {restored.version}"
    undo = f"; the state before is in {safety.path}" if safety else ""
    click.echo(printable(f"Restored {manager.db_path} from {restored.path} ({when}){undo}."))
    return 0


@main.command("status")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("--exit-code", is_flag=True, help=f"Exit {EXIT_PENDING} when any migration is pending.")
@_handles_errors
def status_command(db: str | None, directory: str | None, as_json: bool, exit_code: bool, progress: _Progress) -> int:
    """Show every migration: applied, pending, modified, missing, out-of-order or invalid.

    Never runs migration code and never creates the database.

    \b
    Example:
      vcp-migrate status
      vcp-migrate status --json --exit-code
    """
    report = _manager(db, directory, progress).report()
    if as_json:
        import json

        click.echo(json.dumps([row.as_dict() for row in report.rows]))
        if not report.database_exists:
            click.echo(f"Note: {report.database} does not exist yet: every migration is pending.", err=True)
    else:
        from . import render

        progress.console.print(render.status_table(report))
    return EXIT_PENDING if exit_code and report.pending else 0


@main.command("new")
@_common
@click.argument("name")
@click.option("--sql", "sql", is_flag=True, help="Create a .sql file instead of a .py file.")
@_handles_errors
def new_command(db: str | None, directory: str | None, name: str, sql: bool, progress: _Progress) -> int:
    """Create the next migration file, NNN_NAME.py (or .sql), with empty up and down.

    \b
    Example:
      vcp-migrate new add_pnl_column
      vcp-migrate new "Add index on symbol" --sql
      vcp-migrate new "Été données"
    """
    path = _manager(db, directory, progress).new(name, sql=sql)
    click.echo(f"Created {printable(str(path))}")
    return 0


@main.command("validate")
@_common
@click.option("--roundtrip", is_flag=True, help="Also prove every migration reversible on a copy of the database.")
@click.option("--strict", is_flag=True, help="Treat warnings (hazards) as failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@_handles_errors
def validate_command(
    db: str | None, directory: str | None, roundtrip: bool, strict: bool, as_json: bool, progress: _Progress
) -> int:
    """Check that the database is exactly what the migrations say, and that they can be undone.

    The files (names, duplicates, loading, a down for each), the history against them
    (with a diff for edited files), the database (integrity, foreign keys, drift from
    what the applied migrations produce), the schema file, and hazards in pending
    migrations. Runs migrations only on databases in memory. Exits 1 on any error,
    and on warnings too with --strict.

    \b
    Example:
      vcp-migrate validate
      vcp-migrate validate --roundtrip --strict --json
    """
    problems = _manager(db, directory, progress).validate(roundtrip=roundtrip)
    failing = [p for p in problems if p.severity == "error" or strict]
    if as_json:
        import json

        click.echo(json.dumps({"ok": not failing, "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        from . import render

        for problem in problems:
            progress.console.print(render.problem_line(problem))
            if problem.diff:
                progress.console.print(render.diff_text(problem.diff))
        progress.console.print(render.validate_summary(problems, strict=strict))
    return 1 if failing else 0


@main.command("schema")
@_common
@_handles_errors
def schema_command(db: str | None, directory: str | None, progress: _Progress) -> int:
    """Print the database's normalised schema: tables, indexes, views, triggers.

    The same text as the schema file written after every change.

    \b
    Example:
      vcp-migrate schema --db vcp_trading.db
    """
    text = _manager(db, directory, progress).schema_text()
    if progress.console.is_terminal:
        from rich.syntax import Syntax

        progress.console.print(Syntax(text, "sql", background_color="default"))
    else:
        click.echo(text, nl=False)
    return 0


__all__ = ["main"]
