"""The commands that change the database, or put a backup back: migrate, rollback, redo,
baseline, repair, backups, restore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from .. import closed_output
from ..errors import PlanError, VcpMigrateError
from ..printable import json_text, printable
from . import naming
from .asking import asked
from .base import handles_errors, make_manager, unexpected
from .options import backup_options, common, lock_timeout_option, run_options

if TYPE_CHECKING:
    from ..engine import MigrationManager, Repair
    from ..models import DryRun
    from .progress import Progress


def _show_dry_run(report: DryRun, progress: Progress, sql: bool) -> int:
    from .. import render

    progress.stop()
    if sql:
        click.echo(render.sql_only(report))
    else:
        progress.console.print(render.dry_run(report))
    failed = report.failed
    if failed is None:
        return 0
    # Raised, not printed here: the command's error is said once, the output lost (if it was) beside it.
    raise VcpMigrateError(failed.error or "failed", where=str(failed.path), hint="dry run: nothing was changed")


@click.command("migrate")
@common
@lock_timeout_option
@click.option("--to", "target", type=click.IntRange(min=1), metavar="VERSION", help="Stop after this version.")
@click.option("--allow-out-of-order", is_flag=True, help="Apply pending migrations numbered below applied ones.")
@click.option("--atomic", is_flag=True, help="Apply every pending migration in one transaction: all or none.")
@click.option(
    "--create/--no-create",
    "create",
    default=None,
    help="Create the database if it does not exist [default: yes, or create in [tool.vcp-migrate]].",
)
@click.option(
    "--allow-existing",
    is_flag=True,
    default=None,
    help="Apply every migration to a database that has tables but no history (otherwise: see baseline).",
)
@click.option("--json", "as_json", is_flag=True, help="Print what ran, the backup and the versions as JSON.")
@run_options
@handles_errors
def migrate_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float | None,
    target: int | None,
    allow_out_of_order: bool,
    atomic: bool,
    create: bool | None,
    allow_existing: bool | None,
    as_json: bool,
    dry_run: bool,
    sql_only: bool,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: Progress,
) -> int:
    """Apply pending migrations in version order (alias: up).

    Each migration commits together with its history row, or not at all.
    Creates the database if it does not exist (and says so), unless --no-create;
    backs up an existing one first. Refuses a database that has tables but no
    history (made before vcp-migrate): record it with baseline, or --allow-existing.

    \b
    Example:
      vcp-migrate up
      vcp-migrate migrate --to 2 --db vcp_trading.db
      vcp-migrate migrate --dry-run
      vcp-migrate migrate --atomic --keep-backups 10
      vcp-migrate up --no-create --json
    """
    if as_json and (dry_run or sql_only):
        raise click.UsageError("--json cannot be used with --dry-run or --sql")
    manager = make_manager(
        db, directory, progress, lock_timeout, backup, keep_backups, dump, create=create, allow_existing=allow_existing
    )
    if dry_run or sql_only:
        return _show_dry_run(manager.dry_run_migrate(target, allow_out_of_order=allow_out_of_order), progress, sql_only)
    with _reporting(manager, progress, as_json):
        runs = manager.migrate(target, allow_out_of_order=allow_out_of_order, atomic=atomic)
    if not runs:
        progress.say(f"Nothing to apply: {printable(manager.database)} is up to date.")
    else:
        total = sum(run.duration_ms for run in runs)
        progress.say(f"Applied {len(runs)} migration(s) in {total} ms.")
    return 0


@contextmanager
def _reporting(manager: MigrationManager, progress: Progress, as_json: bool) -> Iterator[None]:
    """With --json, print what ran (even if the run failed part way), the backup, the versions."""
    if not as_json:
        yield
        progress.stop()
        return
    progress.lines = False
    progress.wants_history = True  # the version before is the one the run found under its lock
    failure: str | None = None
    try:
        with closed_output.printing_aside():  # what a migration prints must not break the JSON
            yield
    except VcpMigrateError as exc:
        failure = naming.message(exc, progress.origins)  # as the error line names the settings
        raise
    except KeyboardInterrupt as exc:
        failure = getattr(exc, "said", None) or "interrupted"
        raise
    except Exception as exc:  # a defect: the error line says it, and so must the JSON
        wrapped = isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt)  # as handles_errors says it
        failure = "interrupted" if wrapped else unexpected(exc)
        raise
    finally:
        after = _version(manager)
        # A run stopped before it read the history changed nothing: the version before is the one after.
        before = after if progress.version_found is None else progress.version_found
        click.echo(json_text(_result(manager, progress, before, after, failure), indent=2))


def _version(manager: MigrationManager) -> int | None:
    """For --json: 0 when the database does not exist, None when it cannot be read (the run says why)."""
    try:
        return manager.current() if manager.db_url or manager.db_path.exists() else 0
    except VcpMigrateError:
        return None


def _result(
    manager: MigrationManager, progress: Progress, before: int | None, after: int | None, failure: str | None
) -> dict[str, object]:
    return {
        "database": manager.database,
        "created": progress.made is not None,
        "version_before": before,
        "version_after": after,
        "ran": [
            {"version": run.version, "name": run.name, "direction": run.direction, "ms": run.duration_ms}
            for run in progress.ran
        ],
        "backup": progress.taken.as_dict() if progress.taken and progress.taken.path.exists() else None,  # kept
        "error": failure,
    }


@click.command("rollback")
@common
@lock_timeout_option
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
@click.option("--json", "as_json", is_flag=True, help="Print what ran, the backup and the versions as JSON.")
@run_options
@handles_errors
def rollback_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float | None,
    steps: int | None,
    to: int | None,
    from_history: bool,
    yes: bool,
    as_json: bool,
    dry_run: bool,
    sql_only: bool,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: Progress,
) -> int:
    """Roll back applied migrations, the last applied first (alias: down).

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
    if as_json and (dry_run or sql_only):
        raise click.UsageError("--json cannot be used with --dry-run or --sql")

    def confirm(title: str, code: str) -> bool:
        progress.showing(title, code)
        refusal = PlanError(
            "--from-history runs code kept in the database, and there is no terminal to confirm it",
            hint="review the source shown above and pass --yes; nothing was rolled back",
        )
        return asked("Run it?", yes=yes, refusal=refusal)

    manager = make_manager(db, directory, progress, lock_timeout, backup, keep_backups, dump)
    if dry_run or sql_only:
        report = manager.dry_run_rollback(steps, to=to, from_history=from_history, confirm=confirm)
        return _show_dry_run(report, progress, sql_only)
    with _reporting(manager, progress, as_json):
        runs = manager.rollback(steps, to=to, from_history=from_history, confirm=confirm)
    progress.say(f"Rolled back {len(runs)} migration(s)." if runs else "Nothing to roll back.")
    return 0


@click.command("redo")
@common
@lock_timeout_option
@backup_options
@handles_errors
def redo_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float | None,
    backup: bool | None,
    keep_backups: int | None,
    dump: bool | None,
    progress: Progress,
) -> int:
    """Roll back the migration applied last and apply it again, as its file is now.

    The loop while writing a migration. In one transaction when the migration is
    transactional: if its up fails, it stays applied as it was.

    \b
    Example:
      vcp-migrate redo
    """
    make_manager(db, directory, progress, lock_timeout, backup, keep_backups, dump).redo()
    return 0


@click.command("baseline")
@common
@lock_timeout_option
@click.argument("version", type=click.IntRange(min=1))
@handles_errors
def baseline_command(
    db: str | None, directory: str | None, lock_timeout: float | None, version: int, progress: Progress
) -> int:
    """Record migrations up to VERSION as applied, without running them.

    For a database created before vcp-migrate: its schema already holds what these
    migrations would create. Refuses if the history already goes beyond VERSION.

    \b
    Example:
      vcp-migrate baseline 2
    """
    recorded = make_manager(db, directory, progress, lock_timeout).baseline(version)
    listed = ", ".join(map(str, recorded)) or "none (already recorded)"
    progress.say(f"Recorded as applied without running them: {listed}.")
    return 0


@click.command("repair")
@common
@lock_timeout_option
@click.argument("versions", type=click.IntRange(min=1), nargs=-1)
@click.option("--yes", is_flag=True, help="Record without asking.")
@handles_errors
def repair_command(
    db: str | None,
    directory: str | None,
    lock_timeout: float | None,
    versions: tuple[int, ...],
    yes: bool,
    progress: Progress,
) -> int:
    """Accept reviewed edits to applied migrations: record their new checksums.

    Shows the diff between what was applied and the file now, and asks before
    recording each one (unless --yes). Without VERSIONS: every modified migration.

    \b
    Example:
      vcp-migrate repair
      vcp-migrate repair 3 --yes
    """
    from .. import render

    def confirm(repair: Repair) -> bool:
        if progress.lines or not yes:  # the diff is what is asked about
            progress.console.print(render.diff_text(repair.diff))
        refusal = PlanError(
            f"recording the new checksum of {repair.current.path} accepts an edit to an applied migration,"
            " and there is no terminal to ask",
            hint="review the diff shown above and pass --yes; nothing was recorded",
        )
        return asked(f"Record the new checksum of {repair.current.path}?", yes=yes, refusal=refusal)

    manager = make_manager(db, directory, progress, lock_timeout)
    repaired = manager.repair(list(versions) or None, confirm=confirm)
    listed = ", ".join(map(str, repaired)) or "nothing"
    progress.say(f"Recorded new checksums: {listed}.")
    return 0
