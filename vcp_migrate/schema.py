"""Schema snapshots: the database's schema as normalised, deterministic text, and diffs of two.

Tables come first, then indexes, views and triggers, each by name; SQLite's internal objects (and
the shadow tables of virtual tables) and vcp-migrate's own tables are left out. Each statement is
normalised by ``schema_text``. Also the schema file: written atomically, read back.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from . import history, partial_files
from .database import Queries, quoted
from .schema_target import HEADER as DUMP_HEADER
from .schema_text import normalise

_KIND_ORDER = {"table": 0, "index": 1, "view": 2, "trigger": 3}


def snapshot(connection: Queries) -> str:
    """The normalised schema of the main database, one statement per object, ending in a newline."""
    rows = connection.execute(
        "SELECT type, name, sql FROM sqlite_master"
        " WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " AND tbl_name NOT IN (?, ?, ?)",
        history.OURS,
    ).fetchall()
    if any(kind == "table" and str(sql).startswith("CREATE VIRTUAL") for kind, _, sql in rows):
        shadows = shadow_tables(connection)
        rows = [row for row in rows if not (row[0] == "table" and row[1] in shadows)]
    rows.sort(key=lambda row: (_KIND_ORDER.get(row[0], 9), row[1]))
    return "".join(normalise(sql) + ";\n" for _, _, sql in rows)


def shadow_tables(connection: Queries) -> set[str]:
    """The tables virtual tables keep their data in (FTS5's docs_data, docs_idx...): each CREATE
    VIRTUAL TABLE makes its own, so listed too, the schema could not be run (they exist already)."""
    return {str(row[1]) for row in connection.execute("PRAGMA main.table_list").fetchall() if row[2] == "shadow"}


def diff(before: str, after: str, before_label: str = "before", after_label: str = "after") -> str:
    """A unified diff of two snapshots; empty when they are the same."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=before_label, tofile=after_label, lineterm=""
    )
    return "\n".join(lines)


def table_digests(connection: Queries) -> dict[str, str]:
    """A sha256 of every user table's rows, independent of rowids and of the order they came in."""
    digests = {}
    tables = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT IN (?, ?, ?)",
        history.OURS,
    ).fetchall()
    for (table,) in tables:
        count = len(connection.execute(f"SELECT * FROM {quoted(table)} LIMIT 0").description)
        order = ", ".join(str(i) for i in range(1, count + 1))
        digest = hashlib.sha256()
        for row in connection.execute(f"SELECT * FROM {quoted(table)} ORDER BY {order}"):
            digest.update(repr(row).encode())
        digests[table] = digest.hexdigest()
    return digests


_DUMP_VERSION = re.compile(r"-- version: (\d+)\n")


def dump_text(connection: Queries, version: int) -> str:
    """The schema file's content: a header with the version, then the normalised schema."""
    return DUMP_HEADER.format(version=version) + snapshot(connection)


def write_dump(path: Path, connection: Queries, version: int) -> None:
    """Write the schema file, atomically, unless it is already up to date.

    The text goes to a new file of our own beside it, renamed over it. Nothing found there is
    written through: a link at the schema file's path is replaced, its target left as it is.
    The file replaced keeps its permission bits (one made read-only stays so); a new one gets
    the umask's.
    Raises OSError when the file cannot be written; no partial file is left behind, and those
    of runs killed while writing it are removed first.
    """
    text = dump_text(connection, version)
    _remove_dead_partials(path)
    if _regular_file_text(path) == text:
        return
    mode = _regular_file_mode(path)
    partial, handle = _new_file_beside(path)
    try:
        if mode is not None and hasattr(os, "fchmod"):  # on our open handle: read-only, it is still written
            os.fchmod(handle, mode)
        elif mode is not None:
            os.chmod(partial, mode)
        with open(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            # On disk before the rename: after a power loss the renamed file could be empty, and
            # an empty schema file (not one vcp-migrate wrote) makes every later change refuse.
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    from .partial_files import sync_folder  # only a change writes the file

    sync_folder(path)  # the rename too: a power loss could bring back the file it replaced


def not_written(path: Path, exc: BaseException) -> str:
    """The warning for a schema file that could not be written: why, and what to do (not the
    errno of the temporary file beside it)."""
    said = f"{path}: the schema file could not be written"
    if not path.absolute().parent.is_dir():
        return f"{said}: its folder {path.parent} does not exist (create it, or name another schema file)"
    if isinstance(exc, IsADirectoryError) or (isinstance(exc, OSError) and path.is_dir()):
        return f"{said}: a folder has its name (move the folder away, or name another schema file)"
    if isinstance(exc, OSError):
        return f"{said}: {exc.strerror or exc} (check the folder's permissions and free space)"
    return f"{said}: {exc}"  # reading the database for it failed


_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _regular_file_text(path: Path) -> str | None:
    """The text of the regular file at ``path``; None for a link, pipe, directory or nothing."""
    try:
        # O_NOFOLLOW refuses a link; O_NONBLOCK keeps the open of a pipe from waiting for a writer.
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NO_FOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        with open(handle, encoding="utf-8", errors="replace", closefd=False) as file:
            return file.read()
    finally:
        os.close(handle)


def _regular_file_mode(path: Path) -> int | None:
    """The permission bits of the regular file at ``path``; None for a link or nothing there."""
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(status.st_mode) if stat.S_ISREG(status.st_mode) else None


def _new_file_beside(path: Path) -> tuple[Path, int]:
    """A file created here and now (O_EXCL: never one found there, nor a link's target), with a
    name no one can plant in advance, holding the writer's pid; its mode is the umask's."""
    for _ in range(10):
        partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
        try:
            return partial, os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused name for the partial schema file", str(path.parent))


# A writer keeps its partial file for the milliseconds it takes to write the text and rename it.
# One found later is a killed run's when the pid in its name is not alive here (a writer stopped
# on this machine keeps its file however old) and it is untouched for a minute (a writer on another
# machine sharing the folder, whose pid means nothing here, renamed its own long before).
def _remove_dead_partials(path: Path) -> None:
    """Delete the partial files of the schema file at ``path`` that killed runs left: regular
    files named as ours for this name (with a pid, or without one as before), never a link."""
    ours = re.compile(rf"\.{re.escape(path.name)}\.(?:([0-9]{{1,10}})\.)?[0-9a-f]{{8}}\.partial")
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # the write that follows fails too, and says why
    try:
        with os.scandir(folder) as entries:
            found = [(entry, match) for entry in entries if (match := ours.fullmatch(entry.name))]
        for entry, match in found:
            with contextlib.suppress(OSError):
                status = entry.stat(follow_symlinks=False)
                old = partial_files.untouched(status)
                if stat.S_ISREG(status.st_mode) and old and not (match[1] and _alive(int(match[1]))):
                    os.unlink(entry.name, dir_fd=folder)
    except OSError:
        pass  # a folder that cannot be listed: nothing is removed
    finally:
        os.close(folder)


def _alive(pid: int) -> bool:
    """Whether a process of that pid runs on this machine (another user's too)."""
    if pid <= 0:
        return False  # never a writer's: kill(0) would ask about our own process group
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or a number no pid can be
        return False
    except PermissionError:
        return True
    return True


def read_dump(path: Path) -> tuple[int, str] | None:
    """(version, schema) from a schema file, or None if it is not one vcp-migrate wrote.

    Raises FileNotFoundError or NotADirectoryError when there is none (a link to nothing too),
    IsADirectoryError for a folder, OSError when it cannot be read (EINVAL: not a regular file; a
    pipe is never waited on), UnicodeDecodeError when it is not the UTF-8 vcp-migrate writes.
    """
    # O_NONBLOCK: the open of a pipe never waits for a writer. A link is read through: reading
    # harms nothing, and a schema file kept as a link to a shared one is checked.
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(handle).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))  # a pipe, a device, a socket
        with open(handle, "rb", closefd=False) as file:
            text = file.read().decode("utf-8")
    finally:
        os.close(handle)
    header, separator, body = text.partition("\n\n")
    match = _DUMP_VERSION.search(header + "\n")
    if match is None or not separator:
        return None
    return int(match[1]), body
