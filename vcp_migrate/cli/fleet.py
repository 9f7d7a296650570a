"""vcp-migrate fleet: migrate, rollback, status and validate over many databases at once.

Each database gets a line as it finishes (a JSON object with --json), then a summary; on a
terminal a progress bar shows databases done, failed, the rate and the time left. What the
commands share is in ``fleet_shared``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .base import EXIT_DISAGREE, EXIT_PENDING, Commands, handles_errors, reads_only
from .fleet_shared import Stopping, choose_paths, make_fleet, run_and_report, stopping_options, targets_options
from .options import common

if TYPE_CHECKING:
    from ..fleet import FleetRun
    from .progress import Progress


@click.group("fleet", cls=Commands)
def fleet_group() -> None:
    """Run a command on many databases at once, in parallel, with one summary.

    Databases are named as paths or glob patterns (quoted, so that vcp-migrate expands them),
    or listed in a file. The migrations are checked once, before any database is touched.

    \b
    Example:
      vcp-migrate fleet migrate 'tenants/*.db' --jobs 4
      vcp-migrate fleet status 'tenants/*.db' --exit-code
      vcp-migrate fleet migrate --only-failed report.json --report report.json
    """


@fleet_group.command("migrate")
@common
@targets_options
@click.option("--to", "target", type=click.IntRange(min=1), metavar="VERSION", help="Stop after this version.")
@click.option("--allow-out-of-order", is_flag=True, help="Apply pending migrations numbered below applied ones.")
@click.option("--atomic", is_flag=True, help="Each database: all its pending migrations in one transaction.")
@click.option("--dry-run", is_flag=True, help="Rehearse on each database and undo: nothing is changed.")
@click.option("--allow-existing", is_flag=True, default=None, help="Migrate databases with tables and no history.")
@stopping_options
@handles_errors
def fleet_migrate(
    db: str | None, directory: str | None, patterns: tuple[str, ...], targets_from: str | None,
    only_failed: str | None, jobs: int | None, as_json: bool, report: str | None, lock_timeout: float | None,
    target: int | None, allow_out_of_order: bool, atomic: bool, dry_run: bool, allow_existing: bool | None,
    keep_going: bool, max_failures: int | None, canary: int, backup: bool, backup_dir: str | None,
    keep_backups: int | None, dump: bool | None, progress: Progress,
) -> int:  # fmt: skip
    """Apply pending migrations to every database, each as 'vcp-migrate migrate' would.

    No database is created. By default no database is started after the first failure (those
    in flight finish); a failed database keeps the migrations it committed before the failure.

    \b
    Example:
      vcp-migrate fleet migrate 'tenants/*.db' --jobs 4 --report run.json
      vcp-migrate fleet migrate --targets-from tenants.txt --canary 10 --keep-going
      vcp-migrate fleet migrate --only-failed run.json --report run.json
    """
    command = "migrate --dry-run" if dry_run else "migrate"  # a rehearsal's report is never a real run's
    paths = choose_paths(db, patterns, targets_from, only_failed, command, report)
    fleet = make_fleet(
        progress,
        paths,
        directory,
        lock_timeout=lock_timeout,
        keep_backups=keep_backups,
        dump=dump,
        backup=backup,
        backup_dir=backup_dir,
        allow_existing=allow_existing,
    )
    run = run_and_report(
        progress,
        fleet,
        as_json,
        report,
        command,
        lambda lines: fleet.migrate(
            target,
            jobs=jobs,
            allow_out_of_order=allow_out_of_order,
            atomic=atomic,
            dry_run=dry_run,
            keep_going=keep_going,
            max_failures=max_failures,
            canary=canary,
            on_result=lines,
        ),
        policy=Stopping(keep_going, max_failures, canary),
    )
    return 0 if run.summary.ok else 1


@fleet_group.command("rollback")
@common
@targets_options
@click.option("--steps", type=click.IntRange(min=1), metavar="N", help="How many to roll back on each [default: 1].")
@click.option("--to", type=click.IntRange(min=0), metavar="VERSION", help="Roll back every migration above VERSION.")
@stopping_options
@handles_errors
def fleet_rollback(
    db: str | None, directory: str | None, patterns: tuple[str, ...], targets_from: str | None,
    only_failed: str | None, jobs: int | None, as_json: bool, report: str | None, lock_timeout: float | None,
    steps: int | None, to: int | None, keep_going: bool, max_failures: int | None, canary: int, backup: bool,
    backup_dir: str | None, keep_backups: int | None, dump: bool | None, progress: Progress,
) -> int:  # fmt: skip
    """Roll back the migrations applied last on every database, each as 'vcp-migrate rollback' would.

    \b
    Example:
      vcp-migrate fleet rollback 'tenants/*.db' --steps 1 --keep-going
    """
    if steps is not None and to is not None:
        raise click.UsageError("--steps and --to cannot be used together")
    paths = choose_paths(db, patterns, targets_from, only_failed, report=report)
    fleet = make_fleet(
        progress,
        paths,
        directory,
        lock_timeout=lock_timeout,
        keep_backups=keep_backups,
        dump=dump,
        backup=backup,
        backup_dir=backup_dir,
    )
    run = run_and_report(
        progress,
        fleet,
        as_json,
        report,
        "rollback",
        lambda lines: fleet.rollback(
            steps, to=to, jobs=jobs, keep_going=keep_going, max_failures=max_failures, canary=canary, on_result=lines
        ),
        policy=Stopping(keep_going, max_failures, canary),
    )
    return 0 if run.summary.ok else 1


@fleet_group.command("status")
@common
@targets_options
@click.option("--exit-code", is_flag=True, help=f"Exit {EXIT_PENDING} when any is behind, {EXIT_DISAGREE} on problems.")
@reads_only
def fleet_status(
    db: str | None, directory: str | None, patterns: tuple[str, ...], targets_from: str | None,
    only_failed: str | None, jobs: int | None, as_json: bool, report: str | None, lock_timeout: float | None,
    exit_code: bool, progress: Progress,
) -> int:  # fmt: skip
    """Count the databases at each version and state; list those behind or with problems.

    Problems: modified, missing, invalid or out-of-order migrations, a database with tables
    and no history, and 'drifted' (its schema differs from most databases at its version).

    \b
    Example:
      vcp-migrate fleet status 'tenants/*.db'
      vcp-migrate fleet status --targets-from tenants.txt --json --exit-code
    """
    paths = choose_paths(db, patterns, targets_from, only_failed, report=report)
    fleet = make_fleet(progress, paths, directory, lock_timeout=lock_timeout)
    run = run_and_report(
        progress,
        fleet,
        as_json,
        report,
        "status",
        lambda lines: fleet.status(jobs=jobs, on_result=lines),
        show=lambda r: r.state == "failed" or bool(r.pending or r.problems),
        answer=lambda run: _status_code(run, exit_code, fleet.settings.allow_existing),
    )
    return _status_code(run, exit_code, fleet.settings.allow_existing)


def _status_code(run: FleetRun, exit_code: bool, allow_existing: bool) -> int:
    """1 if a database failed; with ``exit_code``, 4 for problems, 3 for pending migrations."""
    if run.summary.failed:
        return 1
    if exit_code and any(_counted(r.problems, allow_existing) for r in run.results):
        return EXIT_DISAGREE
    return EXIT_PENDING if exit_code and any(r.pending for r in run.results) else 0


def _counted(problems: tuple[str, ...], allow_existing: bool) -> list[str]:
    """The problems --exit-code counts, as 'status --exit-code' does: tables and no history only
    when migrate refuses such a database (with allow_existing it applies every migration to it)."""
    return [problem for problem in problems if not (allow_existing and problem == "no-history")]


@fleet_group.command("validate")
@common
@targets_options
@click.option("--roundtrip", is_flag=True, help="Also prove every migration reversible on a copy of each database.")
@reads_only
def fleet_validate(
    db: str | None, directory: str | None, patterns: tuple[str, ...], targets_from: str | None,
    only_failed: str | None, jobs: int | None, as_json: bool, report: str | None, lock_timeout: float | None,
    roundtrip: bool, progress: Progress,
) -> int:  # fmt: skip
    """Validate every database, as 'vcp-migrate validate' would; exit 1 if any has errors.

    \b
    Example:
      vcp-migrate fleet validate 'tenants/*.db' --jobs 2
    """
    paths = choose_paths(db, patterns, targets_from, only_failed, report=report)
    fleet = make_fleet(progress, paths, directory, lock_timeout=lock_timeout)
    run = run_and_report(progress, fleet, as_json, report, "validate",
               lambda lines: fleet.validate(roundtrip=roundtrip, jobs=jobs, on_result=lines))  # fmt: skip
    return 0 if run.summary.ok else 1
