"""Finding migration files and naming their problems; never touches the database.

A migration is ``NNN_name.py`` or ``NNN_name.sql``: the version is the integer prefix, the name
the rest of the stem. Ignored: ``__init__.py``, ``__pycache__/`` and other directories, dotfiles,
and files not ending in .py or .sql (editor backups such as ``001_x.py~`` or ``001_x.sql.orig``).
Any other .py/.sql entry is reported, never skipped: a name that is not valid UTF-8, a directory,
pipe, socket or device so named, or a link that loops or leads nowhere, is a problem, and only
regular files are ever opened.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Collection
from itertools import pairwise
from pathlib import Path

from .errors import MigrationFileError, setting
from .models import Directory, FileProblem, MigrationFile

_NAME = re.compile(r"([0-9]+)_(.+)\.(py|sql)")  # not \d: it matches every script's digits
MAX_VERSION = 2**63 - 1  # SQLite's INTEGER


# The interpreter's own SHA-256, named _sha2 from Python 3.12 and _sha256 before.
if sys.version_info >= (3, 12):
    from _sha2 import sha256 as _builtin_sha256  # type: ignore[import-not-found,unused-ignore]
else:
    from _sha256 import sha256 as _builtin_sha256  # type: ignore[import-not-found,unused-ignore]

# hashlib's SHA-256 is OpenSSL's: about 8x faster a byte, but loading it costs about 3 ms, more than
# hashing a directory of a thousand small migrations. The interpreter's own hashes the first
# 256 KB of a scan, OpenSSL's the rest (the digests are the same).
_BUILTIN_UP_TO = 256 * 1024


def is_migration_name(name: str) -> bool:
    """Whether a file of the migrations directory so named would be read as a migration."""
    return _NAME.fullmatch(name) is not None


def checksum(data: bytes, *, hashed_before: int = _BUILTIN_UP_TO) -> str:
    """sha256 of the file content with line endings normalised to LF. ``hashed_before``: how many
    bytes the caller has hashed already (a scan), which decides which SHA-256 does it."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if hashed_before < _BUILTIN_UP_TO:
        return str(_builtin_sha256(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def scan(directory: Path, ignore: Collection[str] = ()) -> Directory:
    """Read the migrations directory: usable files in version order, and every problem found.

    Raises MigrationFileError when the directory itself is missing or unreadable.
    """
    if not directory.exists():
        raise MigrationFileError(
            "migrations directory does not exist",
            where=str(directory),
            hint=f"check {setting('migrations_dir')}, or create it with 'vcp-migrate new NAME'",
        )
    if not directory.is_dir():
        raise MigrationFileError("is not a directory", where=str(directory), hint=f"check {setting('migrations_dir')}")
    try:
        with os.scandir(directory) as listing:
            # scandir's entries know whether they are directories or links without a stat each
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        raise MigrationFileError(
            f"cannot be read: {exc.strerror}", where=str(directory), hint="check its permissions"
        ) from exc
    root = directory.resolve()
    files: list[MigrationFile] = []
    problems: list[FileProblem] = []
    hashed = 0
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name == "__init__.py" or name in ignore:
            continue
        if not name.endswith((".py", ".sql")):
            continue
        found = _read(directory, entry, root, hashed)
        if isinstance(found, FileProblem):
            problems.append(found)
        else:
            files.append(found)
            hashed += len(found.source)
    files.sort(key=lambda f: (f.version, f.path.name))
    problems.extend(_duplicates(files))
    return Directory(directory, tuple(files), tuple(problems))


def _read(directory: Path, entry: os.DirEntry[str], root: Path, hashed: int) -> MigrationFile | FileProblem:
    path = directory / entry.name
    match = _NAME.fullmatch(entry.name)
    if not _is_utf8(entry.name):
        # Its version stays taken (by 'new'), and checks that replay migrations stop at it.
        taken = int(match[1]) if match and 0 < int(match[1]) <= MAX_VERSION else None
        return FileProblem(
            "name",
            path,
            "name is not valid UTF-8, so the history could not record it;"
            " rename it (letters, digits and underscores), then run the command again",
            taken,
        )
    if match is None:
        return FileProblem(
            "name",
            path,
            "name does not match NNN_name.py or NNN_name.sql; rename it, or start it with a dot to ignore it",
        )
    version = int(match[1])
    if not 0 < version <= MAX_VERSION:
        return FileProblem(
            "name",
            path,
            f"version must be between 1 and {MAX_VERSION} (0 means 'before any migration'); renumber it",
        )
    is_link = entry.is_symlink()
    if entry.is_file(follow_symlinks=False):  # a regular file (scandir knew it without a stat): open it
        try:
            data = _read_opened(entry.path)
        except OSError as exc:
            return FileProblem("unreadable", path, _stat_failed(path, exc, False), version)
        if isinstance(data, bytes):
            return MigrationFile(version, match[2], path, checksum(data, hashed_before=hashed), data)
        # it became something else since it was listed: say what, as below
    # realpath, unlike Path.resolve, never raises: a looping link is named by the stat below.
    real = Path(os.path.realpath(path)) if is_link else path
    if is_link and not real.is_relative_to(root):
        return FileProblem(
            "unreadable",
            path,
            "is a link to a file outside the migrations directory; copy the file in instead",
            version,
        )
    try:
        # stat, never open, before knowing what the entry is: opening a named pipe waits for a writer.
        info = os.stat(path)
    except OSError as exc:
        return FileProblem("unreadable", path, _stat_failed(path, exc, is_link), version)
    if not stat.S_ISREG(info.st_mode):
        link = "a link to " if is_link else ""
        return FileProblem(
            "unreadable",
            path,
            f"is {link}{_file_type(info.st_mode)}, not a regular file, so it was not read;"
            " remove it, or start its name with a dot to ignore it",
            version,
        )
    try:
        data = _read_opened(real, info)
    except OSError as exc:
        return FileProblem("unreadable", path, f"cannot be read: {exc.strerror}; check its permissions", version)
    if data is None:
        return FileProblem("unreadable", path, "was replaced while being read; run the command again", version)
    return MigrationFile(version, match[2], path, checksum(data, hashed_before=hashed), data)


def _is_utf8(name: str) -> bool:
    """Whether ``name`` can be written as UTF-8 text (SQLite's): a name that is not valid UTF-8 on
    disk comes from the file system as a str with lone surrogates, which no TEXT column takes."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _read_opened(path: Path | str, expected: os.stat_result | None = None) -> bytes | None:
    """The content of ``path`` if what it opens is a regular file (the one stat gave ``expected``
    for, if given); None otherwise.

    One open, one fstat and the reads: status reads every migration file at every start. Between
    a listing or a stat and the open, the entry may become a pipe or a link: O_NONBLOCK keeps the
    open of a pipe from waiting, O_NOFOLLOW refuses a link, and fstat proves what was opened.
    """
    descriptor = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return None
        if expected is not None and (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
            return None
        # A regular file reads short only at its end: asking for one byte more than its size
        # takes the whole of a file that did not grow in one read, and proves the end.
        data = os.read(descriptor, info.st_size + 1)
        if len(data) == info.st_size:
            return data
        chunks = [data]
        while chunk := os.read(descriptor, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _stat_failed(path: Path, exc: OSError, is_link: bool) -> str:
    if exc.errno == errno.ELOOP:
        return "is a link that loops back on itself; remove it, or point it at a migration file in this directory"
    if is_link and exc.errno == errno.ENOENT:
        try:
            target = os.readlink(path)
        except OSError:  # removed since: say what it was when listed
            target = "a file"
        return f"is a link to {target}, which does not exist; remove the link or restore its file"
    if exc.errno == errno.ENOENT:
        return "was removed while being read; run the command again"
    return f"cannot be read: {exc.strerror}; check its permissions"


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a special file"


def _duplicates(files: list[MigrationFile]) -> list[FileProblem]:
    problems = []
    for first, second in pairwise(files):
        if first.version == second.version:
            problems.append(
                FileProblem(
                    "duplicate",
                    second.path,
                    f"version {second.version} is also used by {first.path.name}; renumber one of them",
                    second.version,
                )
            )
    return problems


def without_duplicates(directory: Directory) -> Directory:
    """Raise MigrationFileError if two files share a version; the directory otherwise."""
    for problem in directory.problems:
        if problem.kind == "duplicate":
            raise MigrationFileError(problem.reason, where=str(problem.path))
    return directory


def usable(directory: Directory) -> Directory:
    """Raise MigrationFileError for the first problem of any kind; the directory otherwise."""
    if directory.problems:
        first = directory.problems[0]
        more = len(directory.problems) - 1
        hint = f"and {more} more; 'vcp-migrate validate' lists them" if more else None
        raise MigrationFileError(first.reason, where=str(first.path), hint=hint)
    return directory
