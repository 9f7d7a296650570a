"""backups and restore: the copies of the database taken before changes, and going back to one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import Interrupted, VcpMigrateError
from ..printable import printable
from .asking import asked
from .base import handles_errors, make_manager, reads_only
from .options import backup_dir_option, common, lock_timeout_option

if TYPE_CHECKING:
    from ..models import Backup
    from .progress import Progress


@click.command("backups")
@common
@backup_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@reads_only
def backups_command(db: str | None, directory: str | None, as_json: bool, progress: Progress) -> int:
    """List the backups taken before changes: time, version, size.

    \b
    Example:
      vcp-migrate backups
      vcp-migrate backups --json
    """
    manager = make_manager(db, directory, progress)
    found = manager.backups()
    if as_json:
        from ..printable import json_text

        click.echo(json_text([backup.as_dict() for backup in found], indent=2))
    elif not progress.terminal:  # a pipe, a file: whole names, a line each (a table would cut them)
        from .. import backups
        from ..printable import size

        where = backups.folder(manager.db_path, manager.backup_dir)
        click.echo(printable(f"Backups of {manager.db_path} in {where}, newest first:"))
        for backup in found:
            click.echo(printable(f"{backup.taken_at}  v{backup.version}  {size(backup.size)}  {backup.path.name}"))
        click.echo(f"{len(found)} backup(s)")
    else:
        from .. import render

        progress.console.print(render.backups_table(manager.db_path, found, manager.backup_dir))
    return 0


@click.command("restore")
@common
@lock_timeout_option
@backup_dir_option
@click.argument("backup", required=False, metavar="[BACKUP]")
@click.option("--yes", is_flag=True, help="Restore without asking (needed when no terminal can answer).")
@handles_errors
def restore_command(
    db: str | None, directory: str | None, lock_timeout: float | None, backup: str | None, yes: bool, progress: Progress
) -> int:
    """Replace the database with a backup: the newest, or the one named.

    Says when the backup was taken and asks first, since every change made
    since then is lost (--yes skips the question). Backs up the current state
    first, so the restore can itself be undone. Refuses a file that is not a
    backup of this database.

    \b
    Example:
      vcp-migrate restore
      vcp-migrate restore 20261124T120000.000Z-v2.3f2a9c1d0b7e.db --yes
    """
    try:
        manager = make_manager(db, directory, progress, lock_timeout)
    except KeyboardInterrupt as exc:
        raise _not_begun(exc, "") from None

    def confirm(chosen: Backup) -> bool:
        when = f"{chosen.path} (taken {chosen.taken_at}, at version {chosen.version})"
        refusal = VcpMigrateError(
            f"restoring {when} would lose every change made since then, and there is no terminal to ask",
            where=str(manager.db_path),
            hint="pass --yes to restore; nothing was changed",
        )
        warning = f"Restoring {when} replaces {manager.db_path}: every change made since then will be lost."
        return asked("Restore it?", yes=yes, refusal=refusal, warning=warning, progress=progress)

    try:
        restored, safety = manager.restore(backup, confirm=confirm)
    except KeyboardInterrupt as exc:
        raise _not_begun(exc, f" of {manager.db_path}") from None
    when = f"taken {restored.taken_at}, at version {restored.version}"
    undo = f"; the state before is in {safety.path}" if safety else ""
    try:
        click.echo(printable(f"Restored {manager.db_path} from {restored.path} ({when}){undo}."))
    except KeyboardInterrupt:
        raise Interrupted(
            printable(f"interrupted once {manager.db_path} was restored from {restored.path}{undo}")
        ) from None
    return 0


def _not_begun(interrupt: KeyboardInterrupt, of: str) -> Interrupted:
    """A Ctrl-C during a restore: what the restore said it left, or (while it was still loading,
    before it began) that nothing was changed."""
    if isinstance(interrupt, Interrupted):
        return interrupt
    return Interrupted(
        f"interrupted before the restore{of} began; nothing was changed (the database and its backups are as they were)"
    )
