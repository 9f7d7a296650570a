"""What a replica must hold before ``--wait-for-replica`` counts it as caught up: the history the
primary had once this run was done, row for row, not only its highest version.

A run that leaves the highest version where it was (a migration applied out of order under it,
``repair``, ``baseline``) would otherwise count a replica as caught up that lacks its change.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import history
from ..database import Queries

# What any run that changes the history changes in it: a row added or removed, a checksum
# rewritten (repair), a migration applied again (its new time).
_ROWS = f"SELECT version, checksum, applied_at FROM {history.TABLE}"


class Applied(NamedTuple):
    """A database's history as the wait compares it: its highest version and its rows."""

    highest: int
    rows: frozenset[tuple[object, ...]]


def read(connection: Queries) -> Applied:
    """The history of the database behind ``connection`` (empty when it has none)."""
    highest = history.highest(connection)
    if highest == 0 and history.layout(connection) == 0:
        return Applied(0, frozenset())
    return Applied(highest, frozenset(tuple(row) for row in connection.execute(_ROWS).fetchall()))


def caught_up(found: Applied, ours: Applied, *, rose: bool) -> bool:
    """Whether a replica whose history is ``found`` has what the run left on the primary
    (``ours``); when the run ``rose`` to its version, a replica that holds all of it and has gone
    further (another run's since) has it too."""
    if found.rows == ours.rows:
        return True
    return rose and found.highest > ours.highest and ours.rows <= found.rows


def said(found: Applied, ours: Applied) -> str:
    """How a replica still behind is described."""
    if found.highest == ours.highest:
        return f"at version {found.highest}, without all of the history the primary has"
    return f"at version {found.highest}"
