"""What every command shares: the group, errors and exit codes, the engine it calls (options: ``options``)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

import click

from .. import closed_output
from ..entry import INTERRUPTED
from ..errors import VcpMigrateError
from ..printable import printable
from . import naming
from .progress import Progress, dumb_terminal, no_colour

if TYPE_CHECKING:
    from ..engine import MigrationManager

EXIT_PENDING = 3
EXIT_DISAGREE = 4
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _colour(stream: Any) -> bool:
    return not no_colour() and hasattr(stream, "isatty") and stream.isatty() and not dumb_terminal()


def error(message: str) -> None:
    """Print ``message`` as one ``Error:`` line on stderr."""
    prefix = click.style("Error:", fg="red", bold=True) if _colour(sys.stderr) else "Error:"
    # One line, but names as they are (as status shows them): a line break or a tab in a file name
    # is shown as its escape, never folded into a space, nor runs of spaces into one. What the core
    # quotes of a statement or a migration's exception is put on one line where it is quoted.
    click.echo(f"{prefix} {printable(message)}", err=True, color=_colour(sys.stderr))


def _said(progress: Progress, debug: bool, message: str) -> None:
    """An error, said as one line (after its traceback with --debug), the progress display ended."""
    progress.stop()
    if debug:
        import traceback

        traceback.print_exc()
    error(message)


class Commands(click.Group):
    """A group whose option errors name its command's own help (``vcp-migrate`` and ``fleet``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # click's parser raises some errors with no context ('--steps' without its value): they
            # pointed at the group's --help, which lists no option of the command. The innermost
            # group that sees it first names its command ('vcp-migrate fleet status --help').
            name = ctx.invoked_subcommand
            if exc.ctx is None and name and (command := self.get_command(ctx, name)) is not None:
                exc.ctx = click.Context(command, info_name=name, parent=ctx)
            raise


class Group(Commands):
    """The command group: aliases (up, down) and one-line usage errors."""

    aliases: ClassVar[dict[str, str]] = {"up": "migrate", "down": "rollback"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Commands by name whose module is imported when one of them is asked for: (module, attribute).
        self.lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self.aliases.get(cmd_name, cmd_name)
        if name not in self.commands and name in self.lazy:
            module, attribute = self.lazy[name]
            self.add_command(getattr(importlib.import_module(f"{__package__}.{module}"), attribute), name)
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            _, command, rest = super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if args and not args[0].startswith("-") and (near := self._nearest(ctx, args[0])):
                raise click.UsageError(f"No such command {args[0]!r}. Did you mean {near!r}?", ctx) from exc
            raise
        return (command.name if command else None), command, rest

    def _nearest(self, ctx: click.Context, name: str) -> str | None:
        """The command (or alias) a mistyped name most likely meant: 'stauts', 'Status', 'migrat'."""
        import difflib

        names = [*self.list_commands(ctx), *self.aliases]
        if name.lower() in names:
            return name.lower()
        found = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
        return found[0] if found else None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        closed_output.guard(errors=True)  # --help, --version: printed before any command (each says it itself)
        try:
            code = self._exit_code(*args, **kwargs)
            if closed_output.closed():
                error(closed_output.what_happened())
                code = code or 1
        finally:
            closed_output.unguard()
        exit_now(code)

    def _exit_code(self, *args: Any, **kwargs: Any) -> int:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as exc:
            if "--no-color" in _arguments(args, kwargs):  # parsing failed before the option could act
                os.environ["NO_COLOR"] = "1"
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                click.echo(exc.ctx.get_help())
            else:
                where = exc.ctx.command_path if exc.ctx else "vcp-migrate"
                error(f"{exc.format_message()} (see '{where} --help')")
            return exc.exit_code
        except click.ClickException as exc:
            error(exc.format_message())
            return exc.exit_code
        except click.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C before the command began
                error(INTERRUPTED)
                return EXIT_INTERRUPTED
            error("aborted: no answer to the question; nothing was changed (pass --yes to skip questions)")
            return 1
        return result if isinstance(result, int) else 0


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    given = kwargs.get("args", args[0] if args else None)
    return list(sys.argv[1:] if given is None else given)


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
        for stream in (sys.stdout, sys.stderr):  # None when closed from the start (>&-)
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.flush()
        os._exit(code)
    sys.exit(code)


class Globals(NamedTuple):
    """The options every command takes, given before the command or after it (after wins)."""

    db: str | None = None
    directory: str | None = None
    config: str | None = None
    debug: bool = False
    quiet: bool = False
    verbose: bool = False
    no_color: bool = False


def _globals(given: dict[str, Any]) -> Globals:
    """Merge this command's global options with those given before it, kept by the group."""
    context = click.get_current_context(silent=True)
    before = context.find_object(Globals) if context is not None else None
    before = before or Globals()
    mine = Globals(**{name: given.pop(name, Globals._field_defaults[name]) for name in Globals._fields})
    # Given after the command wins, even as an empty string (an error, never the default).
    merged = {
        name: getattr(before, name) if getattr(mine, name) in (None, False) else getattr(mine, name)
        for name in Globals._fields
    }
    return Globals(**merged)


def handles_errors(command: F, *, only_reads: bool = False) -> F:
    """Run a command body: VcpMigrateError and Ctrl-C become one line on stderr and an exit code.

    The body gets ``db`` and ``directory`` (from before or after the command name) and a
    ``progress`` argument, the Progress that the engine reports to. A command that ``only_reads``
    (see ``reads_only``) says on Ctrl-C that nothing was changed.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        closed_output.guard(errors=True)  # a reader gone (| head) stops no command halfway: it is said at the end
        try:
            code, said = body(*args, **kwargs)
            # An answer in the exit code (status --exit-code: 3, 4) stays; 0 would say all is well.
            if not said and closed_output.closed():
                error(f"{closed_output.what_happened()}; the command went on to its end")
                return code or 1
            return code
        finally:
            closed_output.unguard()

    def body(*args: Any, **kwargs: Any) -> tuple[int, bool]:
        """The command's exit code, and whether an error line said why already."""
        options = _globals(kwargs)
        if options.quiet and options.verbose:
            raise click.UsageError("-q and -v cannot be used together")
        if options.no_color:
            os.environ["NO_COLOR"] = "1"  # Rich and the error line both honour it
        progress = Progress(quiet=options.quiet, verbose=options.verbose)
        progress.config = options.config
        debug = options.debug
        try:
            result = command(*args, db=options.db, directory=options.directory, progress=progress, **kwargs)
            return int(result or 0), False
        except (click.ClickException, click.Abort):
            raise
        except VcpMigrateError as exc:
            # options (or where a value came from), where str(exc) names Python's parameters
            _said(progress, debug, naming.message(exc, progress.origins))
            return exc.exit_code, True
        except Exception as exc:
            if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):  # wrapped, as in making a class
                return _interrupted(progress, None, only_reads), True
            _said(progress, debug, unexpected(exc))
            return 1, True
        except KeyboardInterrupt as exc:
            return _interrupted(progress, getattr(exc, "said", None), only_reads), True
        finally:
            progress.stop()

    return wrapper  # type: ignore[return-value]


def unexpected(exc: Exception) -> str:
    """How an error vcp-migrate did not raise on purpose (a defect) is said: its type and text."""
    return f"unexpected {type(exc).__name__}: {exc} (run again with --debug and report it)"


def reads_only(command: F) -> F:
    """``handles_errors`` for a command that never changes the database nor any file (status,
    current, validate, schema, backups): interrupted, it says that nothing was changed."""
    return handles_errors(command, only_reads=True)


_DONE = "'vcp-migrate status' shows what is applied"
_READ = "interrupted; nothing was changed (this command only reads)"


def _interrupted(progress: Progress, said: str | None = None, only_reads: bool = False) -> int:
    progress.stop()
    current = f" while running {progress.current.path}" if progress.current else ""
    generic = _READ if only_reads else f"interrupted{current} (a transactional migration is rolled back whole; {_DONE})"
    error(said or generic)
    return EXIT_INTERRUPTED


def make_manager(
    db: str | None,
    directory: str | None,
    progress: Progress,
    lock_timeout: float | None = None,
    backup: bool | None = None,
    keep_backups: int | None = None,
    dump: bool | None = None,
    **more: bool | None,
) -> MigrationManager:
    """The engine as ``MigrationManager.from_config`` builds it: options given here first, then
    the environment, then [tool.vcp-migrate] of --config or the nearest pyproject.toml, then defaults."""
    from ..config import settings_from
    from ..engine import MigrationManager

    given = dict(
        db_path=db,
        migrations_dir=directory,
        lock_timeout=lock_timeout,
        backup=backup,
        keep_backups=keep_backups,
        dump_schema=dump,
        **more,
    )
    context = click.get_current_context(silent=True)
    if context is not None and "backup_dir" not in given:
        given["backup_dir"] = context.meta.get("vcp_migrate.backup_dir")
    found = settings_from(progress.config, given, parameters=True)
    progress.origins = found.origins  # for the message of an error, the settings' sources
    if context is not None:  # and how to set those the command has no option for
        progress.origins = {**naming.without_options(p.name or "" for p in context.command.params), **found.origins}
    manager = MigrationManager.from_settings(found, observer=progress)
    if context is not None:  # for a database on a server
        manager.replicas = tuple(context.meta.get("vcp_migrate.replicas", ()))
        manager.replica_timeout = context.meta.get("vcp_migrate.replica_timeout", manager.replica_timeout)
        manager.lease = context.meta.get("vcp_migrate.lease", manager.lease)
    return manager
