"""What a run that stopped in a migration says, and whether that migration committed after all
(Ctrl-C just after its COMMIT, a server that failed after it, or whose answer was lost)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import history, transactions
from ..errors import Interrupted, VcpMigrateError

if TYPE_CHECKING:
    from ..loading import LoadedMigration
    from ..models import Direction
    from ..session import Session


def reported(session: Session, error: BaseException, *, partly: bool = False) -> BaseException:
    """What to report for ``error``, which stopped a migration: what the session says instead when
    the run's hold on the database was taken over meanwhile (a server's lease), unless the
    migration partly ran (what it did outside a transaction is then what to say)."""
    return error if partly else session.taken_over(error) or error


def outside(exc: BaseException, migration: LoadedMigration) -> BaseException:
    """Ctrl-C in a migration that runs outside a transaction: what it did until then stays."""
    if not isinstance(exc, KeyboardInterrupt) or isinstance(exc, Interrupted):
        return exc
    return Interrupted(
        f"interrupted while running {migration.file.path}, which runs outside a transaction: what it had"
        " committed until then stays; 'vcp-migrate validate' shows the drift: undo it by hand, or restore the"
        " backup taken before this run if one was ('vcp-migrate restore')"
    )


def committed(session: Session, migration: LoadedMigration, direction: Direction, exc: BaseException) -> bool | None:
    """Whether the migration's transaction committed after all (its history row says so); None
    when that cannot be known: a server's COMMIT was sent and its answer lost, and the server
    cannot be asked again."""
    connection = session.connection
    if transactions.rolled_back(exc):  # a row there now is another run's: one that took the lease meanwhile
        return False
    try:
        return not connection.in_transaction and history.is_recorded(
            connection, migration.file, applied=direction == "up"
        )
    except BaseException:  # cannot ask on this connection (a second Ctrl-C, a broken stream)
        # A file's COMMIT is told by the same connection; a server rolls back the transaction of a
        # lost stream, unless its COMMIT had been sent.
        if not (connection.remote and transactions.may_have_committed(exc)):
            return False
    if isinstance(exc, KeyboardInterrupt):
        return None  # asking on a new stream could wait a whole request timeout after Ctrl-C
    try:
        session.renew()  # a new stream (the schema file is written through it too)
        # In a write transaction: sent to the primary (a replica may not have the COMMIT yet), and
        # after the unanswered transaction (it holds the write lock until it ends either way).
        with transactions.transaction(session.connection, commit=False):
            return history.is_recorded(session.connection, migration.file, applied=direction == "up")
    except BaseException:
        return None


def in_doubt(exc: BaseException, migrations: list[LoadedMigration]) -> BaseException:
    """What stopped a run whose COMMIT on a server got no answer: that is what to say, not "nothing
    was changed"."""
    from ..file_errors import commit_unknown  # loaded only when a COMMIT is in doubt

    said = f"{commit_unknown(_paths(migrations))}; the backup taken before this run, if any, is kept"
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(f"interrupted while the server committed: {said}")
    if isinstance(exc, VcpMigrateError):
        exc.hint = said
    return exc


def after_commit(exc: BaseException, migrations: list[LoadedMigration]) -> BaseException:
    """What stopped a run after its migration's COMMIT (a server that failed just after it): the
    error, saying that the migration is committed."""
    if isinstance(exc, VcpMigrateError):
        exc.hint = f"{_paths(migrations)} was committed before it; 'vcp-migrate status' shows what is applied"
    return exc


def _paths(migrations: list[LoadedMigration]) -> str:
    """The migrations' paths, each once (a redo's down and up are of one migration), as the
    subject of a sentence in the singular: one migration, or the batch of several."""
    paths = list(dict.fromkeys(str(migration.file.path) for migration in migrations))
    return paths[0] if len(paths) == 1 else f"the batch of {', '.join(paths)}"
