"""Where the schema file may be written: a new file, or one vcp-migrate wrote there before.

Never the database (nor its journal, WAL or shared-memory file), never a file of the migrations
directory named as a migration, and never a file someone else wrote: the schema file is
replaced whole after every change, so a wrong setting would otherwise destroy what it names.
Light on purpose: every changing command checks this before it starts, and a run with nothing
to do must not load the schema writer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .discovery import is_migration_name
from .errors import UsageError, setting

HEADER = "-- Schema written by vcp-migrate after the last change; do not edit.\n-- version: {version}\n\n"
_OURS = HEADER.partition(";")[0].encode()  # how every schema file vcp-migrate wrote begins
_DATABASE_FILES = ("", "-journal", "-wal", "-shm")


def check(schema_file: Path, migrations_dir: Path, database: Path | None) -> None:
    """Raise UsageError when writing the schema file at ``schema_file`` would replace something
    that is not an earlier schema file: checked before the run changes anything."""
    why = refusal(schema_file, migrations_dir, database)
    if why is not None:
        raise UsageError(
            f"{setting('schema_file')} {why}",
            where=str(schema_file),
            hint=f"name another schema file, or turn the dump off with {setting('dump_schema', False)};"
            " nothing was changed",
        )


def skipped(schema_file: Path, why: str) -> str:
    """The warning for a schema file left unwritten after a change, for ``why`` (a ``refusal``)."""
    return f"{schema_file}: the schema file was not written: it {why} (name another schema file, or move that file)"


def refusal(schema_file: Path, migrations_dir: Path, database: Path | None) -> str | None:
    """Why the schema file must not be written at ``schema_file`` (said after the setting's name), or None."""
    real = os.path.realpath(schema_file)
    if database is not None:
        base = os.path.realpath(database)
        if any(real == base + suffix for suffix in _DATABASE_FILES):
            return "names the database itself (or its journal), which writing the schema would destroy"
    if is_migration_name(schema_file.name) and os.path.realpath(schema_file.parent) == os.path.realpath(migrations_dir):
        return "is named as a migration in the migrations directory, which would hide that migration"
    try:
        found = os.lstat(schema_file)
    except (FileNotFoundError, NotADirectoryError):
        return None  # a new file
    except OSError:
        return None  # said by the write's own warning, after the change
    if not stat.S_ISREG(found.st_mode):
        return None  # a link is replaced, never written through; anything else fails the write, said then
    try:
        begins = _beginning(schema_file)
    except FileNotFoundError:
        return None  # removed since: a new file
    except OSError as exc:
        return f"cannot be read ({exc.strerror}), so whether vcp-migrate wrote it cannot be told"
    if begins != _OURS:
        return "is a file vcp-migrate did not write (not an earlier schema file), which the schema would replace"
    return None


def _beginning(path: Path) -> bytes:
    # O_NONBLOCK: a file that became a pipe since the lstat never makes the open wait.
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        return os.read(handle, len(_OURS))
    finally:
        os.close(handle)
