"""vcp-migrate: versioned, reversible, atomic schema migrations for SQLite.

Names are imported on first use, so ``vcp-migrate status`` in CI loads only what it needs.
"""

from __future__ import annotations

import importlib

# Not typing's: the console script imports this package before it can turn Ctrl-C into an error,
# and importing typing took most of that time.
TYPE_CHECKING = False

__version__ = "0.1.0"

_WHERE = {
    "MigrationManager": "engine",
    "Repair": "engine",
    "Observer": "observer",
    "DatabaseError": "errors",
    "LockTimeout": "errors",
    "MigrationFailed": "errors",
    "MigrationFileError": "errors",
    "PlanError": "errors",
    "UsageError": "errors",
    "VcpMigrateError": "errors",
    "Backup": "models",
    "DryRun": "models",
    "MigrationRun": "models",
    "Problem": "models",
    "Rehearsal": "models",
    "StatusReport": "models",
    "StatusRow": "models",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vcp_migrate' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


if TYPE_CHECKING:
    from typing import Any

    from .engine import MigrationManager, Repair
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
    from .observer import Observer
