"""Pure functions from models to Rich renderables; nothing here knows the engine.

Names and paths come from the file system and the database: they go through ``printable`` so a
terminal shows their escape sequences instead of obeying them, and into ``Text``, never into a
string Rich would read as markup (``[/x].db`` would raise MarkupError); a ``Text`` title or
caption takes no style from the table, hence the explicit ones.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .models import Backup, DryRun, MigrationRun, Problem
from .printable import backup_text, printable, printable_lines, size


def run_line(run: MigrationRun) -> Text:
    """'Applied 001 create_trades_table (3 ms)' or 'Rolled back ...', the verb coloured."""
    verb, _, rest = printable(str(run)).partition(f" {run.version} ")
    text = Text(verb, style="green" if run.direction == "up" else "yellow")
    text.append(f" {run.version} {rest.rpartition(' (')[0]}", style="bold")
    text.append(f" ({run.duration_ms} ms)")
    return text


def problem_line(problem: Problem) -> Text:
    """One line per problem: where, then what and what to do; warnings say so."""
    prefix = {"warning": Text("warning: ", style="yellow"), "acknowledged": Text("acknowledged: ", style="green")}
    text = prefix.get(problem.severity, Text())
    text.append(f"{printable(str(problem.path))}: " if problem.path else "", style="bold")
    text.append(printable(problem.message))
    return text


def validate_summary(problems: list[Problem], *, strict: bool) -> str:
    """The last line of validate: OK, or how many errors and warnings; acknowledged hazards counted apart."""
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = sum(1 for p in problems if p.severity == "warning")
    acknowledged = sum(1 for p in problems if p.severity == "acknowledged")
    if not errors and not warnings:
        return (
            f"OK: no problems found ({acknowledged} hazard(s) acknowledged)."
            if acknowledged
            else "OK: no problems found."
        )
    verdict = "failed" if errors or (warnings and strict) else "OK"
    counts = f"{errors} error(s), {warnings} warning(s)" + (f", {acknowledged} acknowledged" if acknowledged else "")
    return f"{verdict}: {counts}" + (" (--strict)" if strict and warnings else ".")


def backup_line(backup: Backup) -> Text:
    """'Backed up to PATH (12.3 MB in 0.05 s, at version 2)'."""
    return Text(backup_text(backup), style="dim")


def backups_table(database: Path, found: list[Backup], shared: Path | None = None) -> Table:
    """The backups of a database, newest first."""
    table = Table(title=Text(f"Backups of {printable(str(database))}", "table.title"), title_justify="left")
    table.add_column("Taken at (UTC)")
    table.add_column("Version", justify="right")
    table.add_column("Size", justify="right")
    table.add_column("File", overflow="fold")  # whole, to copy into restore
    for backup in found:
        table.add_row(backup.taken_at, str(backup.version), size(backup.size), Text(printable(backup.path.name)))
    from . import backups  # loaded only for this table, not by status

    where = printable(str(backups.folder(database, shared)))
    table.caption = Text(f"{len(found)} backup(s) in {where}", "table.caption")
    return table


def diff_text(diff: str) -> Text:
    """A unified diff, additions green and removals red."""
    text = Text()
    for line in diff.splitlines():
        style = (
            "bold"
            if line.startswith(("+++", "---"))
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "cyan"
            if line.startswith("@@")
            else ""
        )
        text.append(printable_lines(line) + "\n", style=style)  # escapes could erase the lines under review
    return text


def dry_run(report: DryRun) -> Group:
    """Each rehearsed migration with its statements, time and error; then the schema change."""
    parts: list[RenderableType] = [
        Text(f"Dry run: the migrations ran in {report.ran_in}; the database is unchanged.", style="bold")
    ]
    for rehearsal in report.rehearsals:
        verb = "apply" if rehearsal.direction == "up" else "roll back"
        outcome = f"would fail: {printable(rehearsal.error)}" if rehearsal.error else f"{rehearsal.duration_ms} ms"
        line = Text(f"Would {verb} ", style="red" if rehearsal.error else "green")
        line.append(f"{rehearsal.version} {printable(rehearsal.name)}", style="bold")
        line.append(f" ({outcome})")
        parts.append(line)
        parts.extend(Text("    " + printable_lines(statement)) for statement in rehearsal.statements)
    if not report.rehearsals:
        parts.append(Text("Nothing to run."))
    from . import schema  # loaded only for a dry run, not by status

    change = schema.diff(report.schema_before, report.schema_after, "schema before", "schema after")
    parts.append(Text("Schema change:" if change else "Schema change: none.", style="bold"))
    if change:
        parts.append(diff_text(change))
    return Group(*parts)


def sql_only(report: DryRun) -> str:
    """The statements a dry run captured, ready to paste into a review."""
    lines = []
    for rehearsal in report.rehearsals:
        lines.append(f"-- {printable(rehearsal.path.name)} ({rehearsal.direction})")
        lines.extend(rehearsal.statements)
        if rehearsal.error:
            lines.append(f"-- would fail: {rehearsal.error}")
    return "\n".join(lines)
