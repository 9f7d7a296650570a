"""status: every migration's state, from the files and the history; never runs migration code,
never creates the database, never takes the run lock."""

from __future__ import annotations

from .. import discovery, planning
from ..models import StatusReport
from .context import Settings, applied, scan


def report(settings: Settings) -> StatusReport:
    """Every migration's state, in version order; unusable files last."""
    directory = discovery.without_duplicates(scan(settings))
    history = applied(settings)
    rows = planning.status_rows(directory, history or {})
    return StatusReport(settings.db_path, history is not None, tuple(rows))
