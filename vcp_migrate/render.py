"""Pure functions from models to Rich renderables; nothing here knows the engine."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .models import MigrationRun, Problem, StatusReport

_STATE_STYLES = {
    "applied": "green",
    "pending": "yellow",
    "modified": "bold red",
    "missing": "bold red",
    "out-of-order": "magenta",
    "invalid": "bold red",
}


def status_table(report: StatusReport) -> Table:
    """Version, name, state and applied_at of every migration, with a caption that sums up."""
    table = Table(title=f"Migrations of {report.database}", title_justify="left")
    table.add_column("Version", justify="right")
    table.add_column("Name")
    table.add_column("State")
    table.add_column("Applied at (UTC)")
    for row in report.rows:
        table.add_row(
            "-" if row.version is None else str(row.version),
            Text(row.name),
            Text(row.state, style=_STATE_STYLES[row.state]),
            row.applied.applied_at if row.applied else "",
        )
    table.caption = status_summary(report)
    return table


def status_summary(report: StatusReport) -> str:
    """One sentence: how many migrations are applied and pending, and whether the database exists."""
    pending = len(report.pending)
    if not report.database_exists:
        return f"{report.database} does not exist yet: all {pending} migration(s) are pending"
    applied = len(report.rows) - pending
    return f"{applied} applied, {pending} pending"


def run_line(run: MigrationRun) -> Text:
    """'Applied 001 create_trades_table (3 ms)' or 'Rolled back ...'."""
    verb = "Applied" if run.direction == "up" else "Rolled back"
    text = Text(f"{verb} ", style="green" if run.direction == "up" else "yellow")
    text.append(f"{run.version} {run.name}", style="bold")
    text.append(f" ({run.duration_ms} ms)")
    return text


def problem_line(problem: Problem) -> Text:
    """One line per problem: where, then what and what to do."""
    text = Text(f"{problem.path}: " if problem.path else "", style="bold")
    text.append(problem.message)
    return text
