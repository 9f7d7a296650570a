"""What the fleet commands share: their options, the fleet built from them, and what they print
(a line or a JSON object per database as it finishes, a progress bar on a terminal, a summary)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from .. import closed_output
from ..errors import Interrupted, VcpMigrateError, spelled
from ..printable import json_text, printable
from . import naming
from .base import EXIT_INTERRUPTED, error
from .naming import as_option as _as_option
from .options import finite_seconds

if TYPE_CHECKING:
    from ..fleet import DatabaseResult, Fleet, FleetRun, Summary
    from .progress import Progress

F = TypeVar("F", bound=Callable[..., Any])


def as_option(parameter: str, value: str | None) -> str:
    """Options as the single commands name them, but the databases of a fleet are its arguments."""
    return "the database's path" if parameter == "db_path" else _as_option(parameter, value)


def targets_options(command: F) -> F:
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
                         callback=finite_seconds,
                         help="How long to wait for each database [default: lock_timeout in [tool.vcp-migrate],"
                         " else 30]."),
        )
    ):  # fmt: skip
        command = option(command)
    return command


def stopping_options(command: F) -> F:
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


def make_fleet(progress: Progress, paths: list[str], directory: str | None, **options: Any) -> Fleet:
    """The fleet, its settings as the single commands read them; backups only when asked for."""
    from .. import config
    from ..fleet import Fleet

    backup, backup_dir = bool(options.pop("backup", False)), options.pop("backup_dir", None)
    found = config.settings_from(progress.config, {"dir": directory, **options})
    progress.origins = found.origins  # for messages, where each setting came from
    return Fleet(
        paths,
        found.directory,
        lock_timeout=found.lock_timeout,
        backup=backup,
        keep_backups=found.keep_backups,
        backup_dir=backup_dir if backup_dir is not None else (found.backup_dir if backup else None),
        user_version=found.user_version,
        schema_file=found.schema_file,
        dump_schema=found.dump,
        allow_existing=found.allow_existing,
        observer=progress,
    )


def choose_paths(
    db: str | None,
    patterns: tuple[str, ...],
    targets_from: str | None,
    only_failed: str | None,
    command: str = "",
    report: str | None = None,
) -> list[str]:
    """The databases named; ``command`` (default: this command's name) is what a report given to
    --only-failed must be of."""
    from ..fleet import targets

    if db is not None:
        raise click.UsageError("fleet commands take the databases as arguments, not --db")
    files = {
        "--targets-from": (targets_from, "a file with one path a line ('-': standard input)"),
        "--only-failed": (only_failed, "the report of a fleet run"),
    }
    for option, (value, wanted) in files.items():
        if value == "":  # read as a path, it would be the current folder
            raise click.BadParameter(f"is empty: name {wanted}", param_hint=option)
    if only_failed == "-":  # as --targets-from reads standard input, this would too: it reads a file
        raise click.BadParameter(
            "'-' is not standard input here: the report is a file (name it, as ./- for a file so named)",
            param_hint="--only-failed",
        )
    command = command or click.get_current_context().info_name or ""
    try:  # a list on standard input can take its time
        return targets.choose(patterns, targets_from, only_failed, command, report)
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(_BEFORE) from None


# Ctrl-C before the first database started (the list of them read, the migrations loaded).
_BEFORE = "interrupted before any database was started: nothing was changed"


class _Lines:
    """Prints each database's result as it comes, and on a terminal a progress bar below them."""

    def __init__(
        self, progress: Progress, total: int, as_json: bool, verb: str, show: Callable[[DatabaseResult], bool]
    ):
        self.progress, self.as_json, self.show, self.failed = progress, as_json, show, 0
        self.rehearsal = verb.endswith("--dry-run")  # each line says that nothing was changed
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
            click.echo(json_text(result.as_dict(_spelling(self.progress))))
        elif (self.show(result) or result.warnings) and not self.progress.quiet:
            line = _line(result, _spelling(self.progress), rehearsal=self.rehearsal)
            if self.bar is not None:
                self.bar.console.print(line, markup=False, highlight=False)
            else:
                click.echo(line)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _spelling(progress: Progress) -> Callable[[str, str | None], str]:
    """How this run's messages name a setting: by the option, or by where its value came from."""
    return naming.where_from(progress.origins, as_option)


def _line(result: DatabaseResult, spell: Callable[[str, str | None], str], *, rehearsal: bool = False) -> str:
    versions = "" if result.version_before is None else f"  {result.version_before} -> {result.version_after}"
    if rehearsal and result.state != "failed":
        versions += "  (rehearsed: nothing was changed)"
    if result.problems and result.state != "failed":
        versions += f"  ({', '.join(result.problems)})"
    if result.pending:
        versions += f"  {result.pending} pending"
    error = f"  {result.message(spell)}" if result.error else ""
    warnings = "".join(f"\n  warning: {printable(spelled(warning, spell))}" for warning in result.warnings)
    return printable(f"{result.state:<15} {result.path}{versions}  {result.ms:.0f} ms{error}") + warnings


def _finish(run: FleetRun, lines: _Lines, command: str, report: str | None, stopped: str | None = None) -> None:
    lines.stop()
    summary = run.summary
    states = _counts(summary)
    versions = ", ".join(f"v{version}: {count}" for version, count in sorted(summary.versions.items()))
    warned = f"; {summary.warned} with warnings (under their lines)" if summary.warned else ""
    text = [f"{command}: {summary.total} database(s) in {summary.seconds:.1f} s: {states or 'none'}{warned}"]
    if versions:
        text.append(f"at each version: {versions}")
    if summary.slowest:
        text.append("slowest: " + ", ".join(f"{r.path} ({r.ms:.0f} ms)" for r in summary.slowest))
    for result in summary.failed[:10]:
        message = result.message(_spelling(lines.progress)) or ""
        text.append(f"failed: {message if message.startswith(result.path) else f'{result.path}: {message}'}")
    if len(summary.failed) > 10:
        text.append(f"failed: and {len(summary.failed) - 10} more" + (f" (all in {report})" if report else ""))
    if stopped:
        text.append(stopped)
    if lines.progress.quiet and command != "status":  # -q: only the errors (status's summary is its data)
        text = [line for line in text if line.startswith(("failed: ", "stopped"))]
    for line in text:
        click.echo(printable(line), err=lines.as_json)


class Stopping(NamedTuple):
    """When a run that changes databases stops: its --keep-going, --max-failures and --canary."""

    keep_going: bool
    max_failures: int | None
    canary: int


def _why_stopped(run: FleetRun, stopping: Stopping, report: str | None) -> str | None:
    """Why databases were not started in a run that was not interrupted, and what to do next."""
    left = run.summary.states.get("not-started", 0)
    if not left:
        return None
    again = f"fix the cause and run again with --only-failed {report}" if report else "fix the cause and run again"
    if any(result.state == "failed" for result in run.results[: stopping.canary]):
        return f"stopped: a database among the first {stopping.canary} (--canary) failed: {left} not started; {again}"
    failures = len(run.summary.failed)
    if not failures:  # no failure stopped it: its worker processes ended before they could take them
        return f"stopped: {left} database(s) not started, the worker processes having ended; {again}"
    if stopping.max_failures is not None:
        limit = f"at --max-failures {stopping.max_failures}"
    else:
        limit = "at the first, as by default"
    more = "" if stopping.keep_going or stopping.max_failures is not None else ", or pass --keep-going to run them all"
    return f"stopped after {failures} failure(s) ({limit}): {left} database(s) not started; {again}{more}"


def _counts(summary: Summary) -> str:
    """How many databases ended in each state: "3 migrated, 1 failed"."""
    return ", ".join(f"{count} {state}" for state, count in sorted(summary.states.items()))


def _write(
    run: FleetRun, command: str, report: str, written: str, fleet: Fleet, spell: Callable[[str, str | None], str]
) -> VcpMigrateError | None:
    """Write the report at ``written`` (``report`` made absolute before the run, so that a
    migration that changes the current folder cannot move it), checked again first: something
    that appeared there meanwhile is never replaced (the targets need no second look: the path
    and they are as they were checked). The error to say, if it could not be."""
    from ..fleet import write_report
    from ..fleet.results import replaceable

    why = replaceable(written, (), _own(fleet, written))
    try:
        if why is None:
            write_report(Path(written), command, run.results, run.summary, spell)
    except OSError as exc:
        why = str(exc.strerror or exc)
    if why is None:
        return None
    return VcpMigrateError(
        f"the report could not be written: {why}",
        where=report,
        hint="the databases are as the run left them: 'vcp-migrate fleet status' shows them",
    )


def _own(fleet: Fleet, report: str) -> list[Path]:
    """What of vcp-migrate's own a report must never replace, nor be inside: the backups folders
    too (a report named as one, there or not yet, would fail only once every database ran)."""
    settings = fleet.settings
    if settings.backup_dir is not None or not settings.backup:
        backups = [] if settings.backup_dir is None else [settings.backup_dir]
    else:  # each database's own <db>.backups: only those the report's path could be or be inside
        real = Path(os.path.realpath(report))
        holders = {str(folder) for folder in (real, *real.parents) if folder.name.endswith(".backups")}
        named = (Path(os.path.realpath(path) + ".backups") for path in fleet.paths) if holders else ()
        backups = [folder for folder in named if str(folder) in holders]
    return [settings.migrations_dir, fleet.schema_file, *backups]


def run_and_report(
    progress: Progress, fleet: Fleet, as_json: bool, report: str | None, command: str,
    start: Callable[[Callable[[DatabaseResult], None]], FleetRun], show: Callable[[DatabaseResult], bool] = bool,
    policy: Stopping | None = None, answer: Callable[[FleetRun], int] | None = None,
) -> FleetRun:  # fmt: skip
    """Run ``start`` with a line a result; ``answer`` is the exit code the run gives as an answer
    (status --exit-code), kept when the results could not be printed."""
    from ..fleet import FleetInterrupted
    from ..fleet.results import NOT_STARTED

    written = _writable(report, fleet)
    lines = _Lines(progress, len(fleet.paths), as_json, command, show)
    lines.deferred = command == "status"
    interrupted = stopped_in_flight = False
    stopping = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in stopping}

    def interrupt(signum: int, frame: object) -> None:
        # While databases run, the fleet's own handler has them (those in flight finish). Before,
        # nothing ran: stop. After (results came, the run is ending), the report is written.
        if not lines.done:
            raise Interrupted(_BEFORE)

    for number in stopping:
        signal.signal(number, interrupt)
    try:
        try:
            run = start(lines)
        except FleetInterrupted as stopped:
            run, interrupted, stopped_in_flight = stopped.run, True, stopped.stopped_in_flight
        finally:
            for number in stopping:  # the databases are done: a signal now cannot cut the report short
                signal.signal(number, signal.SIG_IGN)
            lines.stop()
        if lines.deferred:
            for result in run.results:
                lines.emit(result)
        why = _why_stopped(run, policy, report) if policy is not None and not interrupted else None
        _finish(run, lines, command, report, why)
        unwritten = _write(run, command, report, written, fleet, _spelling(progress)) if report and written else None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if unwritten is not None and interrupted:
        error(naming.message(unwritten))
    elif unwritten is not None:
        raise unwritten
    if not interrupted and closed_output.closed():  # the lines and the summary went nowhere: say the gist
        lost = VcpMigrateError(
            f"{closed_output.what_happened()}; the run went on to its end: {_counts(run.summary)}",
            hint=f"every result is in {report}" if report else "pass --report FILE to keep the results",
        )
        lost.exit_code = (answer(run) if answer is not None else 0) or 1  # an answer stays, as status's does
        raise lost
    if interrupted:
        resume = f"run again with --only-failed {report}" if report else "run again"
        in_flight = "were stopped and rolled back" if stopped_in_flight else "finished"
        if stopped_in_flight or any(result.state == NOT_STARTED for result in run.results):
            error(f"interrupted: the databases in flight {in_flight}, the others were not started ({resume})")
        else:  # it came once the last database had finished: it stopped nothing
            error("interrupted after every database had finished: the summary above is the whole run")
        raise SystemExit(EXIT_INTERRUPTED)
    return run


def _writable(report: str | None, fleet: Fleet) -> str | None:
    """Refuse a report that cannot be written, or would replace what is not one, before any
    database is touched, not after; the path it will be written at, made absolute."""
    from ..fleet.results import replaceable

    if report is None:
        return None
    if report == "-":  # as --targets-from reads standard input, this would be standard output: it is a file
        raise click.BadParameter(
            "'-' is not standard output here: the report is a file (name one, as ./- for a file so named);"
            " --json prints the results on standard output",
            param_hint="--report",
        )
    if (why := replaceable(report, fleet.paths, _own(fleet, report))) is not None:
        raise click.BadParameter(f"{report!r} cannot be written: {why}", param_hint="--report")
    return os.path.abspath(report)
