"""Frozen values passed between discovery, planning, the engine and the renderers.

They are NamedTuples rather than frozen dataclasses: as immutable and as typed, but a dataclass
costs most of a millisecond to define, and this module is loaded by every ``vcp-migrate status``,
which CI runs as a fresh process thousands of times. For the same reason its annotations are
evaluated, not postponed (no ``from __future__ import annotations`` here): a NamedTuple turns
each postponed one, a string, into a ForwardRef by compiling it, which took half the module's time.
"""

from pathlib import Path
from typing import Literal, NamedTuple

State = Literal["applied", "pending", "modified", "missing", "out-of-order", "invalid"]
Direction = Literal["up", "down"]


class MigrationFile(NamedTuple):
    """A file named NNN_name.py or NNN_name.sql, with the bytes its checksum was taken from."""

    version: int
    name: str
    path: Path
    checksum: str
    source: bytes

    @property
    def kind(self) -> str:
        return self.path.suffix[1:]


class FileProblem(NamedTuple):
    """A file in the migrations directory that cannot be used as it is."""

    kind: Literal["name", "duplicate", "unreadable"]
    path: Path
    reason: str
    version: int | None = None


class Directory(NamedTuple):
    """What discovery found: usable files in version order, and the files it could not use."""

    path: Path
    migrations: tuple[MigrationFile, ...]
    problems: tuple[FileProblem, ...]


class AppliedMigration(NamedTuple):
    """One row of the history table."""

    version: int
    name: str
    checksum: str
    applied_at: str
    execution_ms: int | None  # None in what status shows for a value edited by hand that is no number
    file: str | None = None


class StatusRow(NamedTuple):
    """One migration as ``status`` shows it: a file, a history row, or both."""

    version: int | None
    name: str
    state: State
    path: Path | None
    checksum: str | None
    applied: AppliedMigration | None

    def as_dict(self) -> dict[str, object]:
        """The row as the JSON and Python API present it."""
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state,
            "applied": self.applied is not None,  # its history row: also for a file invalid since it ran
            "applied_at": self.applied.applied_at if self.applied else None,
            "execution_ms": self.applied.execution_ms if self.applied else None,
            "checksum": self.checksum,
            "applied_checksum": self.applied.checksum if self.applied else None,
            "file": str(self.path) if self.path else None,
        }


class StatusReport(NamedTuple):
    """Every migration's state, whether the database exists at all, and, for a database that has
    tables but no history, its tables (``migrate`` refuses it until baseline or allow_existing)."""

    database: Path | str  # a server's: its URL
    database_exists: bool
    rows: tuple[StatusRow, ...]
    unmanaged: tuple[str, ...] = ()  # the tables of a database with no history (made before vcp-migrate)

    @property
    def pending(self) -> tuple[StatusRow, ...]:
        """The migrations migrate would apply (out of order ones once allowed); not invalid files."""
        return tuple(row for row in self.rows if row.state in ("pending", "out-of-order"))


class MigrationRun(NamedTuple):
    """A migration that was applied (up) or rolled back (down), and how long it took."""

    version: int
    name: str
    direction: Direction
    duration_ms: int

    def __str__(self) -> str:
        verb = "Applied" if self.direction == "up" else "Rolled back"
        return f"{verb} {self.version} {self.name} ({self.duration_ms} ms)"


class Problem(NamedTuple):
    """One thing ``validate`` found: an error, a warning (a hazard) that --strict makes one, or a
    hazard the migration acknowledges as reviewed (severity "acknowledged", never a failure).
    ``hazard`` is the hazard's name (``hazards.KINDS``) when the kind is "hazard"."""

    kind: str
    message: str
    path: Path | str | None = None  # a file, or a server's database by its URL
    version: int | None = None
    severity: Literal["error", "warning", "acknowledged"] = "error"
    diff: str | None = None
    hazard: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "version": self.version,
            "file": str(self.path) if self.path else None,
            "message": self.message,
            "diff": self.diff,
            "hazard": self.hazard,
        }


class Backup(NamedTuple):
    """A copy of the database taken before a change: when, at which schema version, how big."""

    path: Path
    taken_at: str
    version: int
    size: int
    seconds: float | None = None  # how long taking it took, when this run took it

    def as_dict(self) -> dict[str, object]:
        return {"file": str(self.path), "taken_at": self.taken_at, "version": self.version, "size": self.size}


class Rehearsal(NamedTuple):
    """What one migration did in a dry run: the SQL it executed, its time, the error it would hit."""

    version: int
    name: str
    path: Path
    direction: Direction
    statements: tuple[str, ...]
    duration_ms: int
    error: str | None = None


class DryRun(NamedTuple):
    """A dry run: each migration rehearsed, and the schema before and after."""

    rehearsals: tuple[Rehearsal, ...]
    schema_before: str
    schema_after: str
    ran_in: str  # "a transaction that was rolled back", "a throw-away copy", ...

    @property
    def failed(self) -> Rehearsal | None:
        return next((r for r in self.rehearsals if r.error is not None), None)


class Repair(NamedTuple):
    """An applied migration whose file changed: what was applied, what is there now, the diff."""

    current: MigrationFile
    applied: AppliedMigration
    diff: str
