"""The checks before a migration's COMMIT: it left the history tables alone, and the foreign keys
hold, checked over what it touched when the rest is known to be sound (``watching``)."""

from __future__ import annotations

from typing import NamedTuple

from . import references
from .database import Connection
from .references import References
from .steps import StepFailed
from .watching import Known, Watch


class Checked(NamedTuple):
    """What the checks before a commit know once the foreign keys are checked: whether the history
    tables need the whole schema read (``whole_history``), and what will be known after the
    commit if every check passes (None: nothing, the next migration checks everything)."""

    whole_history: bool
    known: Known | None


def foreign_keys(connection: Connection, watch: Watch | None, known: Known | None) -> Checked:
    """Check the foreign keys after a step, over what it touched when the rest is known to be
    sound (see ``watching``), otherwise the whole database. Raises StepFailed on a violation."""
    if watch is None or not watch.trusted:
        _fail_on(references.violations(connection))
        return Checked(True, None)
    version = references.data_version(connection)
    same = known is not None and known.version == version  # no other connection committed since
    if not same or watch.unsure or known is None:
        _fail_on(references.violations(connection))
        return Checked(not same or watch.history, Known(version, None))
    touched = watch.written.keys() | watch.named.keys()
    found = known.references
    if touched:
        if found is None:  # read once a run, after the step: its changes are in it
            found = References.read(connection)
        else:  # a table that had no foreign key and was only dropped has none whether the DROP ran or not
            again = {key: name for key, name in watch.named.items() if key in watch.created or key in found.parents}
            found = found.refreshed(again, references.foreign_keys(connection, again.values()))
        _fail_on(references.violations(connection, found.to_check(touched)))
    return Checked(watch.history, Known(version, found))


def leave_history_alone(watch: Watch | None) -> None:
    """Refuse a step that wrote rows of a history table, remade one, or left a trigger that would
    write them: the history must say exactly what is committed, and a row deleted or rewritten
    there would have a later run apply a migration again, or skip one. (A trigger on a history
    table, and what a watch that did not see the whole step missed, are caught when the row is
    written.)"""
    if watch is not None and (written := watch.history_refusal()) is not None:
        raise StepFailed(written)


def _fail_on(violations: list[str]) -> None:
    if violations:
        raise StepFailed(f"foreign key check failed: {'; '.join(violations)}; fix the data or the migration")
