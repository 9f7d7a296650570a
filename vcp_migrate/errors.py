"""The one exception hierarchy of vcp-migrate.

Every message names what happened, where (file, statement, database) and what to do next,
so the CLI can print it as a single ``Error: ...`` line.
"""

from __future__ import annotations


class VcpMigrateError(Exception):
    """Base of every error vcp-migrate raises on purpose; ``exit_code`` is the CLI's exit code."""

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.hint})" if self.hint else text


class UsageError(VcpMigrateError):
    """An argument, setting or environment variable is wrong; nothing was read or changed."""

    exit_code = 2


class MigrationFileError(VcpMigrateError):
    """A file in the migrations directory cannot be used: its name, its content, or loading it."""


class PlanError(VcpMigrateError):
    """History and files disagree (modified, missing, out-of-order, unknown version): the command refuses."""


class MigrationFailed(VcpMigrateError):
    """A migration failed while running; its transaction was rolled back."""

    def __init__(
        self,
        what: str,
        *,
        where: str,
        version: int,
        hint: str,
        statement_index: int | None = None,
        statement: str | None = None,
    ) -> None:
        self.version = version
        self.statement_index = statement_index
        self.statement = statement
        super().__init__(what, where=where, hint=hint)


class DatabaseError(VcpMigrateError):
    """The database cannot be opened, read or written: missing, not a database, corrupt, read-only, locked."""


class LockTimeout(DatabaseError):
    """Another process held the database longer than the lock timeout."""
