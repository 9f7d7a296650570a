"""Which databases a fleet run covers: paths and glob patterns, a file listing them, or the
databases a report says failed or were not started."""

from __future__ import annotations

import codecs
import functools
import glob
import os
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..backends import is_url
from ..backups import is_backup_name
from ..errors import UsageError
from .results import file_key, to_rerun

_MAGIC = frozenset("*?[")


def expand(patterns: Iterable[str], report: str | None = None) -> list[str]:
    """Each pattern's matches in sorted order, or the path itself when it has no glob character
    or names something that exists (``acct[1].db`` is that file, not ``acct1.db``); every file
    once (two names of one file count once, the first kept).

    A pattern that matches nothing is an error: a typo must not make a fleet of none. A plain
    path that does not exist is kept, so the run reports it as failed (missing). A pattern's
    matches leave out folders and backups (``tenants/**/*.db`` reaches each ``<db>.backups`` folder),
    and the run's ``report``, written where 'tenants/*' finds it the next time.
    """
    mine = _report_key(report)
    found: list[str] = []
    for pattern in patterns:
        possible_name(pattern, "a database path")
        if _MAGIC.isdisjoint(pattern) or os.path.lexists(pattern):
            found.append(pattern)
            continue
        matches = sorted(glob.glob(pattern, recursive=True))
        # Never a folder ('t/**' matches 't/' and each folder below it), a backup, nor what SQLite
        # keeps beside a database (its -wal, -shm or -journal).
        databases = [
            match
            for match in matches
            if not os.path.isdir(match)
            and not is_backup(match)
            and not _beside_a_database(match)
            and not (mine is not None and os.path.basename(match) == mine[0] and file_key(match) == mine[1])
        ]
        if not databases:
            but = " but folders, backups and SQLite's own files, which are never targets" if matches else ""
            raise UsageError(
                f"the pattern {pattern!r} matches no file{but}",
                hint="check it, and quote it so that the shell does not expand it first",
            )
        found.extend(databases)
    return once(found)


def listed_in(source: str) -> list[str]:
    """The paths in a file (``-``: standard input), one a line, each taken as it is written (never
    as a pattern, spaces kept); blank lines and ``#`` comments skipped, a UTF-8 byte-order mark
    at the very start dropped."""
    where = "standard input" if source == "-" else source
    if source == "-" and sys.stdin is None:  # closed (<&-)
        raise UsageError("cannot be read: it is closed", where=where, hint="give the list on standard input, or a file")
    try:  # file names as the system gives them: bytes that are not UTF-8 kept
        data = _text_of(source, where)
    except OSError as exc:
        raise UsageError(
            f"cannot be read: {exc.strerror or exc}", where=where, hint="give a file with one path a line"
        ) from exc
    # A byte-order mark that an editor put at the start is no part of the first name (nor of a "#").
    text = os.fsdecode(data.removeprefix(codecs.BOM_UTF8))
    # Lines end at LF (CRLF too); any other character, spaces included, belongs to the name.
    lines = (line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
    paths = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for path in paths:
        if len(path) > _LONGEST_PATH:
            raise UsageError(
                f"a line of {where} is {len(path):,} characters long, longer than any path: {_shown(path)}",
                hint="give a file with one path a line",
            )
        possible_name(path, f"a line of {where}")
    return paths


_LONGEST_PATH = 4096  # PATH_MAX of Linux, the largest there is: a longer line names no file
_CHUNK = 1 << 20


def _text_of(source: str, where: str) -> bytes:
    """The bytes of a list of paths (``-``: standard input, left open)."""
    if source == "-":
        return _read_text(sys.stdin.buffer, where)
    with open(source, "rb") as file:
        return _read_text(file, where)


def _read_text(file: BinaryIO, where: str) -> bytes:
    """A file's bytes, read a chunk at a time: a database or any binary file named by mistake is
    refused at its first NUL byte (which no path holds), never read whole first."""
    chunks = []
    while chunk := file.read(_CHUNK):
        if b"\0" in chunk:
            raise UsageError(
                "is not a list of paths: it holds a NUL character, which no path can (a database?)",
                where=where,
                hint="give a text file with one path a line",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _shown(text: str) -> str:
    """``text`` quoted for a message, its middle left out past 100 characters."""
    return repr(text) if len(text) <= 100 else f"{text[:60]!r}...{text[-30:]!r}"


def _report_key(report: str | None) -> tuple[str, tuple[int, int] | str] | None:
    """The name and file key of a report there is, for a pattern's matches to leave it out."""
    if report is None or not os.path.isfile(report):
        return None
    return os.path.basename(report), file_key(report)


def choose(
    patterns: Iterable[str], targets_from: str | None, only_failed: str | None, command: str, report: str | None = None
) -> list[str]:
    """The databases of a ``command`` run, from its arguments; refuses a run of none, or of a server.
    ``report``: the run's --report, which a pattern's matches leave out."""
    paths = expand(files_only(patterns), report)
    if targets_from is not None:
        paths = once([*paths, *files_only(listed_in(targets_from))])
    if only_failed is not None:
        rerun = to_rerun(Path(only_failed), command)
        paths = once([*paths, *rerun] if paths else rerun)
        if not rerun:
            return []
        keep = {file_key(path) for path in rerun}
        paths = [path for path in paths if file_key(path) in keep]
    if not paths and only_failed is None:
        raise UsageError(
            "no databases given", hint="name them as paths or quoted patterns, or list them in a file, one a line"
        )
    return paths


def is_backup(path: str) -> bool:
    """Whether ``path`` is a backup (named as vcp-migrate names them, or in a ``<db>.backups``
    folder beside its database) or such a folder, itself or through a link: never a target."""
    absolute = os.path.abspath(path)
    folder, name = os.path.split(absolute)
    # What it resolves to: its folder's links resolved once per folder (a fleet's are few), its own if any.
    real = os.path.realpath(absolute) if os.path.islink(absolute) else os.path.join(_resolved(folder), name)
    for candidate in {absolute, real}:
        if is_backup_name(Path(candidate)):
            return True
        holder = candidate if candidate.endswith(".backups") else os.path.dirname(candidate)
        if holder.endswith(".backups") and os.path.isdir(holder) and os.path.isfile(holder[: -len(".backups")]):
            return True
    return False


def _beside_a_database(path: str) -> bool:
    base, dash, kind = path.rpartition("-")
    return bool(dash) and kind in ("wal", "shm", "journal") and os.path.isfile(base)


@functools.lru_cache(maxsize=256)
def _resolved(folder: str) -> str:
    return os.path.realpath(folder)


def files_only(paths: Iterable[str]) -> list[str]:
    """``paths``, or UsageError at the first that is a server's URL (``http://``, ``libsql://``...):
    a fleet runs on database files."""
    paths = list(paths)
    for path in paths:
        if is_url(path):
            parts = urllib.parse.urlsplit(path.strip())
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"  # never a password or token
            raise UsageError(
                "fleets run on database files, not server URLs",
                where=shown,
                hint="migrate a server with 'vcp-migrate migrate --db URL'",
            )
    return paths


def possible_name(path: str, what: str) -> None:
    """UsageError for a path no file can have: one that holds a NUL or a lone surrogate (one
    that stands for no byte, unlike those that carry the bytes of a name that is not UTF-8)."""
    if "\0" in path:
        raise UsageError(f"{what} holds a NUL character, which no file name can: {_shown(path)}", hint="fix the path")
    try:
        os.fsencode(path)
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"{what} holds a lone surrogate ({path[exc.start]!r}), which no file name can: {_shown(path)}",
            hint="fix the path",
        ) from None


def once(paths: list[str]) -> list[str]:
    """``paths`` with each file once: two names of one file (a link, a hard link) count once, the first kept."""
    seen: set[tuple[int, int] | str] = set()
    kept = []
    for path in paths:
        key = file_key(path)
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept
