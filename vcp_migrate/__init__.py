"""vcp-migrate: versioned, reversible, atomic schema migrations for SQLite."""

from __future__ import annotations

from .engine import MigrationManager, Observer, Repair
from .errors import (
    DatabaseError,
    LockTimeout,
    MigrationFailed,
    MigrationFileError,
    PlanError,
    UsageError,
    VcpMigrateError,
)
from .models import Backup, DryRun, MigrationRun, Problem, Rehearsal, StatusReport, StatusRow

__version__ = "0.1.0"

__all__ = [
    "Backup",
    "DatabaseError",
    "DryRun",
    "LockTimeout",
    "MigrationFailed",
    "MigrationFileError",
    "MigrationManager",
    "MigrationRun",
    "Observer",
    "PlanError",
    "Problem",
    "Rehearsal",
    "Repair",
    "StatusReport",
    "StatusRow",
    "UsageError",
    "VcpMigrateError",
    "__version__",
]
