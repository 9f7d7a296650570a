"""Naming and templates for ``new``: pure functions, no file system access."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import UsageError

PYTHON_TEMPLATE = '''"""{title}."""


def up(connection):
    """Apply the change. connection is a sqlite3.Connection inside this migration's transaction."""


def down(connection):
    """Undo exactly what up() did."""
'''

SQL_TEMPLATE = """-- {title}.
-- migrate:up


-- migrate:down

"""


def normalise_name(name: str) -> str:
    """NAME as snake_case. Raises UsageError for an empty name or one that could leave the directory."""
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise UsageError(
            f"migration name {name!r} contains a path",
            hint="give a plain name such as add_pnl_column",
        )
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    snake = re.sub(r"[^0-9A-Za-z]+", "_", spaced).strip("_").lower()
    if not snake:
        raise UsageError(f"migration name {name!r} is empty", hint="give a name such as add_pnl_column")
    return snake


def next_version(versions: Iterable[int]) -> int:
    """One above the highest version in use, files and history together."""
    return max(versions, default=0) + 1


def file_name(version: int, name: str, *, width: int, sql: bool) -> str:
    """``NNN_name.py`` (or .sql), the version zero-padded to ``width``."""
    return f"{version:0{width}d}_{name}.{'sql' if sql else 'py'}"


def prefix_width(prefixes: Iterable[str]) -> int:
    """The width of the version prefixes already in use; 3 when there are none."""
    return max((len(prefix) for prefix in prefixes), default=3)


def template(name: str, *, sql: bool) -> str:
    """The content of a new migration file that passes ``validate`` as it is."""
    title = name.replace("_", " ").capitalize()
    return (SQL_TEMPLATE if sql else PYTHON_TEMPLATE).format(title=title)
