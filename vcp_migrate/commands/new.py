"""new: create the next migration file with an empty up and down; never overwrites a file.

Normalise the name, read the directory and the history for the next version and the prefix
width, create the file exclusively.
"""

from __future__ import annotations

from pathlib import Path

from .. import discovery, scaffold
from ..errors import MigrationFileError, setting
from ..models import MigrationFile
from .context import Settings, applied, scan


def new(settings: Settings, name: str, *, sql: bool) -> Path:
    """Create the next migration file; return its path."""
    snake = scaffold.normalise_name(name)
    folder = settings.migrations_dir
    files: tuple[MigrationFile, ...] = ()
    if folder.exists():
        files = discovery.without_duplicates(scan(settings)).migrations
    elif not folder.absolute().parent.is_dir():
        raise MigrationFileError(
            f"directory {folder.parent} does not exist", where=str(folder), hint=f"check {setting('migrations_dir')}"
        )
    version = scaffold.next_version([*(f.version for f in files), *(applied(settings) or {})])
    width = scaffold.prefix_width(f.path.name.partition("_")[0] for f in files)
    path = folder / scaffold.file_name(version, snake, width=width, sql=sql)
    try:
        folder.mkdir(exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(scaffold.template(snake, sql=sql))
    except FileExistsError as exc:
        raise MigrationFileError("already exists", where=str(path), hint="nothing was overwritten") from exc
    except OSError as exc:  # a read-only directory, or a file system with shorter names
        raise MigrationFileError(
            f"cannot be created: {exc.strerror}", where=str(path), hint="check the directory and the name"
        ) from exc
    return path
