"""Finding migration files and naming their problems; never touches the database.

A migration is ``NNN_name.py`` or ``NNN_name.sql``: the version is the integer prefix, the name
the rest of the stem. Ignored: ``__init__.py``, ``__pycache__/`` and other directories, dotfiles,
and files not ending in .py or .sql (editor backups such as ``001_x.py~`` or ``001_x.sql.orig``).
Any other .py/.sql file is reported, never skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection
from itertools import pairwise
from pathlib import Path

from .errors import MigrationFileError
from .models import Directory, FileProblem, MigrationFile

_NAME = re.compile(r"(\d+)_(.+)\.(py|sql)")
_MAX_VERSION = 2**63 - 1  # SQLite's INTEGER


def checksum(data: bytes) -> str:
    """sha256 of the file content with line endings normalised to LF."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")).hexdigest()


def scan(directory: Path, ignore: Collection[str] = ()) -> Directory:
    """Read the migrations directory: usable files in version order, and every problem found.

    Raises MigrationFileError when the directory itself is missing or unreadable.
    """
    if not directory.exists():
        raise MigrationFileError(
            "migrations directory does not exist",
            where=str(directory),
            hint="check --dir, or create it with 'vcp-migrate new NAME'",
        )
    if not directory.is_dir():
        raise MigrationFileError("is not a directory", where=str(directory), hint="check --dir")
    try:
        with os.scandir(directory) as listing:
            # scandir's entries know whether they are directories or links without a stat each
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        raise MigrationFileError(
            f"cannot be read: {exc.strerror}", where=str(directory), hint="check its permissions"
        ) from None
    root = directory.resolve()
    files: list[MigrationFile] = []
    problems: list[FileProblem] = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name == "__init__.py" or name in ignore:
            continue
        if not name.endswith((".py", ".sql")) or entry.is_dir():
            continue
        found = _read(directory / name, entry.is_symlink(), root)
        if isinstance(found, FileProblem):
            problems.append(found)
        else:
            files.append(found)
    files.sort(key=lambda f: (f.version, f.path.name))
    problems.extend(_duplicates(files))
    return Directory(directory, tuple(files), tuple(problems))


def _read(path: Path, is_link: bool, root: Path) -> MigrationFile | FileProblem:
    match = _NAME.fullmatch(path.name)
    if match is None:
        return FileProblem(
            "name",
            path,
            "name does not match NNN_name.py or NNN_name.sql; rename it, or start it with a dot to ignore it",
        )
    version = int(match[1])
    if not 0 < version <= _MAX_VERSION:
        return FileProblem(
            "name", path, f"version must be between 1 and {_MAX_VERSION} (0 means 'before any migration')"
        )
    if is_link and not path.resolve().is_relative_to(root):
        return FileProblem(
            "unreadable",
            path,
            "is a link to a file outside the migrations directory; copy the file in instead",
            version,
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return FileProblem("unreadable", path, f"cannot be read: {exc.strerror}; check its permissions", version)
    return MigrationFile(version, match[2], path, checksum(data), data)


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
