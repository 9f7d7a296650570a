"""Text safe to show on a terminal: file names and messages are data, never commands to it.

A file may be named ``003_\\x1b]0;title\\x07.sql``: printed as it is, the terminal would obey the
escape sequence (retitle the window, recolour or erase the screen) instead of showing it.

Also the plain text of ``status`` off a terminal (CI logs, pipes): it must not load Rich (nor does
its table on a terminal, in ``status_table``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Backup, StatusReport


def printable(text: str) -> str:
    """TEXT with every character a terminal would act on or hide shown as an escape instead.

    Control characters (C0, DEL, C1), format characters such as bidirectional overrides,
    separators other than the space, surrogates from undecodable file names and unassigned
    code points become ``\\x1b``, ``\\u202e``, ``\\udcff``: what ``str.isprintable`` rejects.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def printable_lines(text: str) -> str:
    """Code or SQL to show as it is laid out: ``printable``, but its line ends and tabs kept (any
    other escape in it could move the cursor and erase the lines shown)."""
    if text.isprintable():
        return text
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join("\t".join(printable(part) for part in line.split("\t")) for line in lines)


def json_text(value: object, *, indent: int | None = None) -> str:
    """``value`` as JSON that strict readers take: a surrogate from a file name that is not UTF-8
    (``\\udce9`` stands for the byte 0xE9) becomes the text of its escape, as ``printable`` shows
    it, where ``json.dumps`` writes an escaped lone surrogate that is no character at all."""
    import json

    return json.dumps(_without_surrogates(value), indent=indent)


def _without_surrogates(value: object) -> object:
    if isinstance(value, str):
        if value.isascii():
            return value
        return "".join(f"\\u{ord(char):04x}" if "\ud800" <= char <= "\udfff" else char for char in value)
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_surrogates(item) for item in value]
    return value


TIME = "Applied at (UTC)"
_SUMMARY_ORDER = ("applied", "pending", "modified", "missing", "out-of-order", "invalid")


def status_summary(report: StatusReport) -> str:
    """One sentence: how many migrations are in each state, and whether the database exists."""
    counts = {state: 0 for state in _SUMMARY_ORDER}
    for row in report.rows:
        counts[row.state] += 1
    # applied and pending always; the other states only when there are some
    parts = [f"{counts[state]} {state}" for state in _SUMMARY_ORDER if state in ("applied", "pending") or counts[state]]
    if not report.database_exists:
        tail = f" ({', '.join(parts[2:])})" if parts[2:] else ""
        return f"{printable(str(report.database))} does not exist yet: {counts['pending']} migration(s) pending{tail}"
    return ", ".join(parts)


def status_lines(report: StatusReport) -> str:
    """``status`` as plain text: a title, a header, one aligned line per migration, the summary.

    The name comes last, so however long it is, it is never cut and pads no other line.
    """
    versions = ["-" if row.version is None else str(row.version) for row in report.rows]
    states: list[str] = [row.state for row in report.rows]
    times = [printable(row.applied.applied_at) if row.applied else "" for row in report.rows]
    v, s, t = (_widest(header, cells) for header, cells in (("Version", versions), ("State", states), (TIME, times)))
    lines = [
        f"Migrations of {printable(str(report.database))}",
        f"{'Version':>{v}}  {'State':<{s}}  {TIME:<{t}}  Name",
    ]
    lines.extend(
        f"{version:>{v}}  {state:<{s}}  {applied_at:<{t}}  {printable(row.name)}"
        for version, state, applied_at, row in zip(versions, states, times, report.rows, strict=True)
    )
    lines.append(status_summary(report))
    return "\n".join(lines)


def _widest(header: str, cells: list[str]) -> int:
    return max([len(header), *map(len, cells)])


def unmanaged_note(report: StatusReport, *, allow_existing: bool) -> str:
    """The note of ``status`` on a database that has tables but no history, and what migrate will do."""
    from .planning import short_list  # here, not at the top: `current` loads this module, never planning

    then = (
        " 'migrate' will apply every migration to it (allow_existing is set)."
        if allow_existing
        else " 'migrate' refuses it; record what it has with 'vcp-migrate baseline VERSION',"
        " or pass --allow-existing to apply every migration to it."
    )
    tables = f"{len(report.unmanaged)} table(s) ({short_list(report.unmanaged)})"
    return printable(f"Note: {report.database} has {tables} and no migration history:{then}")


def size(count: int) -> str:
    """A byte count for people: 512 B, 12.3 kB, 1.0 GB."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def backup_text(backup: Backup) -> str:
    """'Backed up to PATH (12.3 MB in 0.05 s, at version 2)'."""
    took = f" in {backup.seconds:.2f} s" if backup.seconds is not None else ""
    where = printable(str(backup.path))
    return f"Backed up to {where} ({size(backup.size)}{took}, at version {backup.version})"
