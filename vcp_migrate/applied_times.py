"""The history's applied_at, which orders its rows as applied (rollback undoes the migration
applied last first): each read as a time whatever form it was written in, the order of
application, and the applied_at a new row takes. Pure: nothing here touches the database.

vcp-migrate writes UTC in ISO 8601 to the millisecond (2026-11-24T12:00:00.000Z). A row written
by hand may hold another form of time, read as the time it is (SQLite's CURRENT_TIMESTAMP,
'2026-11-24 12:00:00', which is UTC; an offset), or no time at all (a number, a BLOB, other text).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from .models import AppliedMigration

# ISO 8601's extended form of a date, which every version of Python reads (from 3.11 it reads the
# basic form too: 20261124).
_DATE = re.compile(r"\d{4}-\d\d-\d\d(?:[Tt ]|$)")


def as_text(value: object) -> str:
    """An applied_at as the history holds it, as text: one edited by hand into a BLOB or a number
    as SQL writes it (x'00ff', 17.5), which is no time."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    return "" if value is None else str(value)


def moment(value: object) -> datetime | None:
    """``value`` as a UTC time: ISO 8601 text, with 'Z', an offset, or none (then UTC, as SQLite's
    date functions write it), a 'T' or a space between date and time; None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _DATE.match(text):
        return None
    if text[-1:] in ("Z", "z"):  # Python before 3.11 reads only an offset
        text = f"{text[:-1]}+00:00"
    try:
        read = datetime.fromisoformat(text)
        return read.replace(tzinfo=timezone.utc) if read.tzinfo is None else read.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: an offset that takes it past year 1 or 9999
        return None


def written(when: datetime) -> str:
    """A time in the form vcp-migrate writes applied_at in."""
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def latest(values: Iterable[object]) -> str:
    """The latest of ``values`` that is a time, in the form vcp-migrate writes ('' when none is)."""
    return max(filter(None, map(_as_written, values)), default="")


def _as_written(value: object) -> str | None:
    """``value`` as vcp-migrate would have written that time, whose text orders as time does
    (years are four digits); None when it is no time. Most are in that form already: they are
    compared as they are, not read (a history of thousands of rows is read by every command)."""
    if isinstance(value, str) and len(value) == 24 and value[10] == "T" and value[23] == "Z":
        return value
    when = moment(value)
    return None if when is None else written(when)


def after(latest: str, now: str) -> str:
    """The applied_at of a new row: ``now``, unless that is not after ``latest`` (a clock set back,
    another host's clock behind, the same millisecond): then a millisecond after ``latest``.
    ``now`` when ``latest`` is no time, or the last millisecond a date can hold."""
    last, current = moment(latest), moment(now)
    if last is None or current is None or current > last:
        return now
    try:
        return written(last + timedelta(milliseconds=1))
    except OverflowError:
        return now


def order(applied: Mapping[int, AppliedMigration]) -> list[int]:
    """The applied versions in the order they were applied, first applied first.

    That is the order of their applied_at as times, then of version (rows an earlier release wrote
    in the same millisecond: one run applies its migrations in version order). A row whose
    applied_at is no time is taken as applied right after every migration below it, as migrate
    applies them: among rows in version order, it keeps its place.
    """
    times = {version: when for version, row in applied.items() if (when := _as_written(row.applied_at)) is not None}
    timed = sorted(times, key=lambda version: (times[version], version))
    # The lowest version from each place on: one with no time goes before the first place from
    # which every version is above it (a whole history of such rows is ordered in O(n log n)).
    lowest_from = list(accumulate(reversed(timed), min))[::-1]
    before: dict[int, list[int]] = {}
    for version in sorted(applied.keys() - times.keys()):
        before.setdefault(bisect_left(lowest_from, version), []).append(version)
    ordered: list[int] = []
    for place, version in enumerate(timed):
        ordered += before.get(place, ())
        ordered.append(version)
    return ordered + before.get(len(timed), [])
