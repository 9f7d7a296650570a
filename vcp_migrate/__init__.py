"""vcp-migrate: versioned, reversible, atomic schema migrations for SQLite."""

from __future__ import annotations

from .engine import MigrationManager, Observer
from .errors import (
    DatabaseError,
    LockTimeout,
    MigrationFailed,
    MigrationFileError,
    PlanError,
    UsageError,
    VcpMigrateError,
)
from .models import MigrationRun, Problem, StatusReport, StatusRow

__version__ = "0.1.0"

__all__ = [
    "DatabaseError",
    "LockTimeout",
    "MigrationFailed",
    "MigrationFileError",
    "MigrationManager",
    "MigrationRun",
    "Observer",
    "PlanError",
    "Problem",
    "StatusReport",
    "StatusRow",
    "UsageError",
    "VcpMigrateError",
    "__version__",
]
