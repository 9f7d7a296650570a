"""Naming and templates for ``new``: pure functions, no file system access."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from .errors import UsageError

MAX_FILE_NAME_BYTES = 255  # ext4, XFS, btrfs, APFS; NTFS counts UTF-16 units, never more than UTF-8 bytes

PYTHON_TEMPLATE = '''"""{title}."""


def up(connection):
    """Apply the change. connection is a sqlite3.Connection inside this migration's transaction."""


def down(connection):
    """Undo exactly what up() did."""
'''

# The title follows a fixed word: made from the name alone, '-- Migrate down old rows.' would look
# like a misspelt section marker, and '-- Vcp allowed ips.' like a hazard acknowledgement, which
# the parser refuses.
SQL_TEMPLATE = """-- Purpose: {title}.
-- migrate:up


-- migrate:down

"""


def normalise_name(name: str) -> str:
    """NAME as snake_case: letters and digits of any script, lowercased, in NFC; runs of anything
    else become one underscore. Raises UsageError for an empty name or one that could leave the
    directory."""
    if not isinstance(name, str):
        raise UsageError(f"the migration name must be a str, not {type(name).__name__} ({name!r})")
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise UsageError(
            f"migration name {name!r} contains a path",
            hint="give a plain name such as add_pnl_column",
        )
    kept = []
    previous = ""
    for char in unicodedata.normalize("NFC", name.strip()):
        if char.isupper() and (previous.islower() or previous.isdecimal()):
            kept.append("_")  # AddPnlColumn, v2Index
        # Marks stay: scripts such as Devanagari write vowels as combining marks after a letter.
        kept.append(char if char.isalnum() or unicodedata.category(char).startswith("M") else "_")
        previous = char
    snake = re.sub("_+", "_", unicodedata.normalize("NFC", "".join(kept).lower())).strip("_")
    if not any(char.isalnum() for char in snake):
        raise UsageError(f"migration name {name!r} is empty", hint="give a name such as add_pnl_column")
    return snake


def next_version(versions: Iterable[int]) -> int:
    """One above the highest version in use, files and history together."""
    return max(versions, default=0) + 1


def file_name(version: int, name: str, *, width: int, sql: bool) -> str:
    """``NNN_name.py`` (or .sql), the version zero-padded to ``width``.

    Raises UsageError when it would be longer than common file systems allow.
    """
    prefix, suffix = f"{version:0{width}d}_", f".{'sql' if sql else 'py'}"
    room = MAX_FILE_NAME_BYTES - len(prefix) - len(suffix)
    size = len(name.encode("utf-8"))
    if size > room:
        raise UsageError(
            f"migration name is too long: {size} bytes in UTF-8, at most {room} fit",
            hint=f"a file name holds {MAX_FILE_NAME_BYTES} bytes, {prefix!r} and {suffix!r} included; shorten it",
        )
    return f"{prefix}{name}{suffix}"


def prefix_width(prefixes: Iterable[str]) -> int:
    """The width of the version prefixes already in use; 3 when there are none."""
    return max((len(prefix) for prefix in prefixes), default=3)


def template(name: str, *, sql: bool) -> str:
    """The content of a new migration file that passes ``validate`` as it is."""
    title = name.replace("_", " ").capitalize()
    return (SQL_TEMPLATE if sql else PYTHON_TEMPLATE).format(title=title)
