"""The commands that only read, or add a file: status, current, validate, schema, new."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING

import click

from .. import closed_output
from ..printable import json_text, printable, printable_lines, status_lines, unmanaged_note
from .base import EXIT_DISAGREE, EXIT_PENDING, handles_errors, make_manager, reads_only
from .options import common
from .progress import Progress, colour, terminal_columns

if TYPE_CHECKING:
    from ..models import StatusReport


@click.command("status")
@common
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option(
    "--exit-code",
    is_flag=True,
    help=f"Exit {EXIT_PENDING} when any migration is pending, {EXIT_DISAGREE} when any is modified, missing,"
    " invalid or out-of-order.",
)
@reads_only
def status_command(db: str | None, directory: str | None, as_json: bool, exit_code: bool, progress: Progress) -> int:
    """Show every migration: applied, pending, modified, missing, out-of-order or invalid.

    A table on a terminal; otherwise plain aligned lines, one per migration. Never runs
    migration code and never creates the database.

    \b
    Example:
      vcp-migrate status
      vcp-migrate status --json --exit-code
    """
    manager = make_manager(db, directory, progress)
    report = manager.report()
    if report.unmanaged and not progress.quiet:
        click.echo(unmanaged_note(report, allow_existing=manager.allow_existing), err=True)
    if as_json:
        click.echo(json_text([row.as_dict() for row in report.rows]))
        if not report.database_exists and not progress.quiet:
            click.echo(f"Note: {report.database} does not exist yet: every migration is pending.", err=True)
    elif progress.terminal:  # drawn without Rich: loading it takes longer than the rest of status
        from ..status_table import status_table

        click.echo(status_table(report, columns=terminal_columns(), colour=colour(sys.stdout)), color=True)
    else:  # CI logs and pipes: plain aligned lines
        click.echo(status_lines(report))
    if exit_code and report.unmanaged and not manager.allow_existing:
        return EXIT_DISAGREE  # tables and no history: migrate refuses it, as it refuses what disagrees
    return status_exit_code(report) if exit_code else 0


@click.command("current")
@common
@click.option("--json", "as_json", is_flag=True, help='Print {"database": ..., "version": N} instead.')
@reads_only
def current_command(db: str | None, directory: str | None, as_json: bool, progress: Progress) -> int:
    """Print the database's version alone: the highest applied migration, 0 when none.

    Reads only the history: never scans the migrations, never takes the run lock, never
    creates the database (a database that does not exist is an error, exit 1).

    \b
    Example:
      vcp-migrate current
      test "$(vcp-migrate current)" -ge 12 || exit 1
      vcp-migrate current --json
    """
    manager = make_manager(db, directory, progress)
    version = manager.current()
    if as_json:
        click.echo(json_text({"database": manager.database, "version": version}))
    else:
        click.echo(version)
    return 0


@click.command("new")
@common
@click.argument("name")
@click.option("--sql", "sql", is_flag=True, help="Create a .sql file instead of a .py file.")
@handles_errors
def new_command(db: str | None, directory: str | None, name: str, sql: bool, progress: Progress) -> int:
    """Create the next migration file, NNN_NAME.py (or .sql), with empty up and down.

    \b
    Example:
      vcp-migrate new add_pnl_column
      vcp-migrate new "Add index on symbol" --sql
      vcp-migrate new "Été données"
    """
    path = make_manager(db, directory, progress).new(name, sql=sql)
    click.echo(f"Created {printable(str(path))}")
    return 0


@click.command("validate")
@common
@click.option("--roundtrip", is_flag=True, help="Also prove every migration reversible on a copy of the database.")
@click.option("--strict", is_flag=True, help="Treat warnings (hazards not acknowledged) as failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@reads_only
def validate_command(
    db: str | None, directory: str | None, roundtrip: bool, strict: bool, as_json: bool, progress: Progress
) -> int:
    """Check that the database is exactly what the migrations say, and that they can be undone.

    The files (names, duplicates, loading, a down for each), the history against them
    (with a diff for edited files), the database (integrity, foreign keys, drift from
    what the applied migrations produce), the schema file, and hazards in pending
    migrations. Runs migrations only on databases in memory. Exits 1 on any error,
    and on warnings too with --strict. A hazard a migration acknowledges as reviewed
    (-- vcp:allow NAME in SQL, allow_hazards = {"NAME"} in Python) is listed, never a failure.

    \b
    Example:
      vcp-migrate validate
      vcp-migrate validate --roundtrip --strict --json
    """
    manager = make_manager(db, directory, progress)
    missing = manager.db_url is None and not (manager.db_path.exists() or manager.db_path.is_symlink())
    with closed_output.printing_aside() if as_json else nullcontext():  # what a rehearsed migration prints
        problems = manager.validate(roundtrip=roundtrip)
    if missing and not progress.quiet:  # else a mistyped --db passes as "OK", as though it had been checked
        note = f"Note: {manager.db_path} does not exist: only the migrations were checked, not a database."
        click.echo(printable(note), err=True)
    failing = [p for p in problems if p.severity == "error" or (strict and p.severity == "warning")]
    if as_json:
        click.echo(json_text({"ok": not failing, "problems": [p.as_dict() for p in problems]}, indent=2))
    else:
        from .. import render

        for problem in problems:
            progress.console.print(render.problem_line(problem))
            if problem.diff:
                progress.console.print(render.diff_text(problem.diff))
        if failing or not progress.quiet:  # -q: no "OK" line
            progress.console.print(render.validate_summary(problems, strict=strict))
    return 1 if failing else 0


@click.command("schema")
@common
@reads_only
def schema_command(db: str | None, directory: str | None, progress: Progress) -> int:
    """Print the database's normalised schema: tables, indexes, views, triggers.

    The same text as the schema file written after every change.

    \b
    Example:
      vcp-migrate schema --db vcp_trading.db
    """
    text = make_manager(db, directory, progress).schema_text()
    if progress.terminal:
        from rich.syntax import Syntax

        progress.console.print(Syntax(printable_lines(text), "sql", background_color="default"))
    else:
        click.echo(text, nl=False)
    return 0


DISAGREEING_STATES = frozenset({"modified", "missing", "invalid", "out-of-order"})


def status_exit_code(report: StatusReport) -> int:
    """``status --exit-code``: EXIT_DISAGREE when the files and the history disagree (modified,
    missing, invalid, out-of-order: ``migrate`` would refuse or warn), else EXIT_PENDING when
    something is pending, else 0."""
    states = {row.state for row in report.rows}
    if not states.isdisjoint(DISAGREEING_STATES):
        return EXIT_DISAGREE
    return EXIT_PENDING if "pending" in states else 0
