"""vcp-migrate fleet: migrate, rollback, status and validate over many databases at once.

Each database gets a line as it finishes (a JSON object with --json), then a summary; on a
terminal a progress bar shows databases done, failed, the rate and the time left.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..printable import printable
from .base import EXIT_DISAGREE, EXIT_INTERRUPTED, EXIT_PENDING, common, error, handles_errors
from .naming import as_option as _as_option

if TYPE_CHECKING:
    from ..fleet import DatabaseResult, Fleet, FleetRun
    from .progress import Progress

F = TypeVar("F", bound=Callable[..., Any])


def as_option(parameter: str, value: str | None) -> str:
    """Options as the single commands name them, but the databases of a fleet are its arguments."""
    return "the database's path" if parameter == "db_path" else _as_option(parameter, value)


@click.group("fleet")
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


def _targets(command: F) -> F:
    for option in reversed(
        (
            click.argument("patterns", nargs=-1, metavar="[TARGETS]..."),
            click.option("--targets-from", metavar="FILE",
                         help="Read the databases from FILE, one a line ('-': standard input)."),
            click.option("--only-failed", metavar="REPORT",
                         help="Only the databases REPORT says failed or were not started."),
            click.option("--jobs", type=click.IntRange(min=1), metavar="N",
                         help="Worker processes [default: the number of cores]."),
            click.option("--json", "as_json", is_flag=True,
                         help="One JSON object a database (JSON Lines); the summary on stderr."),
            click.option("--report", metavar="FILE", help="Write every result and the summary to FILE as JSON."),
            click.option("--lock-timeout", type=click.FloatRange(min=0, max=86400), metavar="SECONDS",
                         help="How long to wait for each database [default: lock_timeout in [tool.vcp-migrate],"
                         " else 30]."),
        )
    ):  # fmt: skip
        command = option(command)
    return command


def _stopping(command: F) -> F:
    for option in reversed(
        (
            click.option("--keep-going", is_flag=True,
                         help="Go on after a failure [default: start no database after one]."),
            click.option("--max-failures", type=click.IntRange(min=1), metavar="N", help="Stop after N failures."),
            click.option("--canary", type=click.IntRange(min=0), default=0, metavar="K",
                         help="Run the first K databases first; stop if any of them fails."),
            click.option("--backup", is_flag=True, help="Back up each database before changing it [default: off]."),
            click.option("--backup-dir", metavar="DIR", help="Back up into DIR, one folder for all (means --backup)."),
            click.option("--keep-backups", type=click.IntRange(min=1), metavar="N", help="Backups kept per database."),
            click.option("--dump/--no-dump", "dump", default=None, help="Write the schema file once, after the run."),
        )
    ):  # fmt: skip
        command = option(command)
    return command


def _fleet(progress: Progress, paths: list[str], directory: str | None, **options: Any) -> Fleet:
    """The fleet, its settings as the single commands read them; backups only when asked for."""
    from .. import config
    from ..fleet import Fleet

    backup, backup_dir = bool(options.pop("backup", False)), options.pop("backup_dir", None)
    found = config.settings_from(progress.config, {"dir": directory, **options})
    return Fleet(
        paths,
        found.directory,
        lock_timeout=found.lock_timeout,
        backup=backup,
        keep_backups=found.keep_backups,
        backup_dir=backup_dir or (found.backup_dir if backup else None),
        user_version=found.user_version,
        schema_file=found.schema_file,
        dump_schema=found.dump,
        allow_existing=found.allow_existing,
        observer=progress,
    )


def _paths(db: str | None, patterns: tuple[str, ...], targets_from: str | None, only_failed: str | None) -> list[str]:
    from ..fleet import targets

    if db is not None:
        raise click.UsageError("fleet commands take the databases as arguments, not --db")
    return targets.choose(patterns, targets_from, only_failed, click.get_current_context().info_name or "")


class _Lines:
    """Prints each database's result as it comes, and on a terminal a progress bar below them."""

    def __init__(
        self, progress: Progress, total: int, as_json: bool, verb: str, show: Callable[[DatabaseResult], bool]
    ):
        self.progress, self.as_json, self.show, self.failed = progress, as_json, show, 0
        self.deferred = False  # results printed once all are in (status: drift is known only then)
        self.bar: Any = None
        if progress.terminal and not as_json and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn(verb), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[failed]} failed"),
                TextColumn("{task.fields[rate]}/s"), TimeRemainingColumn(), console=progress.console,
            )  # fmt: skip
            self.task = self.bar.add_task(verb, total=total, failed=0, rate=0)
            self.bar.start()
        self.started, self.done = time.perf_counter(), 0

    def __call__(self, result: DatabaseResult) -> None:
        self.failed += result.state == "failed"
        if not self.deferred:
            self.emit(result)
        self.done += 1
        if self.bar is not None:
            rate = round(self.done / max(time.perf_counter() - self.started, 1e-9))
            self.bar.update(self.task, advance=1, failed=self.failed, rate=rate)

    def emit(self, result: DatabaseResult) -> None:
        if self.as_json:
            click.echo(json.dumps(result.as_dict(as_option)))
        elif self.show(result) and not self.progress.quiet:
            line = _line(result)
            if self.bar is not None:
                self.bar.console.print(line, markup=False, highlight=False)
            else:
                click.echo(line)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _line(result: DatabaseResult) -> str:
    versions = "" if result.version_before is None else f"  {result.version_before} -> {result.version_after}"
    if result.problems and result.state != "failed":
        versions += f"  ({', '.join(result.problems)})"
    if result.pending:
        versions += f"  {result.pending} pending"
    error = f"  {result.message(as_option)}" if result.error else ""
    return printable(f"{result.state:<15} {result.path}{versions}  {result.ms:.0f} ms{error}")


def _finish(run: FleetRun, lines: _Lines, command: str, report: str | None) -> None:
    from ..fleet import write_report

    lines.stop()
    if report is not None:
        write_report(Path(report), command, run.results, run.summary)
    summary = run.summary
    states = ", ".join(f"{count} {state}" for state, count in sorted(summary.states.items()))
    versions = ", ".join(f"v{version}: {count}" for version, count in sorted(summary.versions.items()))
    text = [f"{command}: {summary.total} database(s) in {summary.seconds:.1f} s: {states or 'none'}"]
    if versions:
        text.append(f"at each version: {versions}")
    if summary.slowest:
        text.append("slowest: " + ", ".join(f"{r.path} ({r.ms:.0f} ms)" for r in summary.slowest))
    for result in summary.failed[:10]:
        message = result.message(as_option) or ""
        text.append(f"failed: {message if message.startswith(result.path) else f'{result.path}: {message}'}")
    if len(summary.failed) > 10:
        text.append(f"failed: and {len(summary.failed) - 10} more" + (f" (all in {report})" if report else ""))
    for line in text:
        click.echo(printable(line), err=lines.as_json)


def _run(
    progress: Progress, paths: list[str], as_json: bool, report: str | None, command: str,
    start: Callable[[Callable[[DatabaseResult], None]], FleetRun], show: Callable[[DatabaseResult], bool] = bool,
) -> FleetRun:  # fmt: skip
    from ..fleet import FleetInterrupted

    _writable(report)
    lines = _Lines(progress, len(paths), as_json, command, show)
    lines.deferred = command == "status"
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop as Ctrl-C does: those in flight finish
    try:
        run = start(lines)
    except FleetInterrupted as stopped:
        run, interrupted = stopped.run, True
    finally:
        signal.signal(signal.SIGTERM, previous)
        lines.stop()
    if lines.deferred:
        for result in run.results:
            lines.emit(result)
    _finish(run, lines, command, report)
    if interrupted:
        resume = f"run again with --only-failed {report}" if report else "run again"
        error(f"interrupted: the databases in flight finished, the others were not started ({resume})")
        raise SystemExit(EXIT_INTERRUPTED)
    return run


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _writable(report: str | None) -> None:
    """Refuse a report that cannot be written before any database is touched, not after."""
    folder = os.path.dirname(os.path.abspath(report or "."))
    if report and (os.path.isdir(report) or not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK)):
        message = f"{report!r} cannot be written: name a file in a folder that exists"
        raise click.BadParameter(message, param_hint="--report")


@fleet_group.command("migrate")
@common
@_targets
@click.option("--to", "target", type=click.IntRange(min=1), metavar="VERSION", help="Stop after this version.")
@click.option("--allow-out-of-order", is_flag=True, help="Apply pending migrations numbered below applied ones.")
@click.option("--atomic", is_flag=True, help="Each database: all its pending migrations in one transaction.")
@click.option("--dry-run", is_flag=True, help="Rehearse on each database and undo: nothing is changed.")
@click.option("--allow-existing", is_flag=True, default=None, help="Migrate databases with tables and no history.")
@_stopping
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
    paths = _paths(db, patterns, targets_from, only_failed)
    fleet = _fleet(
        progress,
        paths,
        directory,
        lock_timeout=lock_timeout,
        keep_backups=keep_backups,
        dump=dump,
        backup=backup or backup_dir is not None,
        backup_dir=backup_dir,
        allow_existing=allow_existing,
    )
    run = _run(
        progress,
        paths,
        as_json,
        report,
        "migrate",
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
    )
    return 0 if run.summary.ok else 1


@fleet_group.command("rollback")
@common
@_targets
@click.option("--steps", type=click.IntRange(min=1), metavar="N", help="How many to roll back on each [default: 1].")
@click.option("--to", type=click.IntRange(min=0), metavar="VERSION", help="Roll back every migration above VERSION.")
@_stopping
@handles_errors
def fleet_rollback(
    db: str | None, directory: str | None, patterns: tuple[str, ...], targets_from: str | None,
    only_failed: str | None, jobs: int | None, as_json: bool, report: str | None, lock_timeout: float | None,
    steps: int | None, to: int | None, keep_going: bool, max_failures: int | None, canary: int, backup: bool,
    backup_dir: str | None, keep_backups: int | None, dump: bool | None, progress: Progress,
) -> int:  # fmt: skip
    """Roll back the newest migrations of every database, each as 'vcp-migrate rollback' would.

    \b
    Example:
      vcp-migrate fleet rollback 'tenants/*.db' --steps 1 --keep-going
    """
    if steps is not None and to is not None:
        raise click.UsageError("--steps and --to cannot be used together")
    paths = _paths(db, patterns, targets_from, only_failed)
    fleet = _fleet(
        progress,
        paths,
        directory,
        lock_timeout=lock_timeout,
        keep_backups=keep_backups,
        dump=dump,
        backup=backup or backup_dir is not None,
        backup_dir=backup_dir,
    )
    run = _run(
        progress,
        paths,
        as_json,
        report,
        "rollback",
        lambda lines: fleet.rollback(
            steps, to=to, jobs=jobs, keep_going=keep_going, max_failures=max_failures, canary=canary, on_result=lines
        ),
    )
    return 0 if run.summary.ok else 1


@fleet_group.command("status")
@common
@_targets
@click.option("--exit-code", is_flag=True, help=f"Exit {EXIT_PENDING} when any is behind, {EXIT_DISAGREE} on problems.")
@handles_errors
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
    paths = _paths(db, patterns, targets_from, only_failed)
    fleet = _fleet(progress, paths, directory, lock_timeout=lock_timeout)
    run = _run(progress, paths, as_json, report, "status", lambda lines: fleet.status(jobs=jobs, on_result=lines),
               show=lambda r: r.state == "failed" or bool(r.pending or r.problems))  # fmt: skip
    if run.summary.failed:
        return 1
    if exit_code and any(r.problems for r in run.results):
        return EXIT_DISAGREE
    return EXIT_PENDING if exit_code and any(r.pending for r in run.results) else 0


@fleet_group.command("validate")
@common
@_targets
@click.option("--roundtrip", is_flag=True, help="Also prove every migration reversible on a copy of each database.")
@handles_errors
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
    paths = _paths(db, patterns, targets_from, only_failed)
    fleet = _fleet(progress, paths, directory, lock_timeout=lock_timeout)
    run = _run(progress, paths, as_json, report, "validate",
               lambda lines: fleet.validate(roundtrip=roundtrip, jobs=jobs, on_result=lines))  # fmt: skip
    return 0 if run.summary.ok else 1
