"""What a failed migration's error says: the statement that failed, and what stays of the
migration and of those before it (rolled back whole, committed without a history row, left by a
migration that runs outside a transaction)."""

from __future__ import annotations

from .errors import MigrationFailed
from .models import Direction, MigrationFile
from .steps import StepFailed


def migration_failed(
    failed: StepFailed,
    file: MigrationFile,
    direction: Direction,
    *,
    transactional: bool,
    earlier: int,
    batch: bool = False,
) -> MigrationFailed:
    """The error a failed migration stops the run with: what failed, where, and in its hint what
    was (not) changed: by it, and by the migrations before it in the run or the batch."""
    error = _failed_with(failed, file, direction, transactional=transactional, earlier=earlier, batch=batch)
    error.__cause__ = failed.__cause__  # what the migration raised, or SQLite's error for its statement
    return error


def _failed_with(
    failed: StepFailed,
    file: MigrationFile,
    direction: Direction,
    *,
    transactional: bool,
    earlier: int,
    batch: bool,
) -> MigrationFailed:
    if failed.ended_transaction:
        return MigrationFailed(
            failed.what,
            where=str(file.path),
            version=file.version,
            hint=(
                f"what it committed itself (at most the {failed.changes} row change(s) it made, and any schema"
                " change) stays committed without a history row"
                + ("; the transaction it began and left open was rolled back" if failed.left_open else "")
                + ("; so are the migrations before it in the batch" if batch and earlier else "")
                + "; 'vcp-migrate validate' shows the drift: undo it by hand or restore the backup"
            ),
            statement_index=failed.index,
            statement=failed.statement,
        )
    if failed.unrehearsable:
        hint = "run it for real after a backup; nothing was changed"
    elif failed.hint is not None:
        hint = failed.hint
    elif batch:
        hint = "the whole batch was rolled back; nothing was changed"
    elif not transactional:
        hint = "it runs outside a transaction, so what it did before failing stays; make it idempotent and run again"
    elif direction == "up":
        hint = "nothing was applied" if not earlier else "it was rolled back"
    else:
        hint = "its down was undone whole: it is still applied"
    if earlier and not batch:
        stay = "applied" if direction == "up" else "rolled back"
        hint += f"; the {earlier} migration(s) before it in this run stay {stay}"
    return MigrationFailed(
        failed.what,
        where=str(file.path),
        version=file.version,
        hint=hint,
        statement_index=failed.index,
        statement=failed.statement,
    )
