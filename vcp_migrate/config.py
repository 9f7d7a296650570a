"""Settings from a ``[tool.vcp-migrate]`` table, and their merge with given values and the environment.

Which file: ``--config PATH`` (or ``path=``), else ``VCP_MIGRATE_CONFIG``, else the first
``pyproject.toml`` with a ``[tool.vcp-migrate]`` table found walking up from the current
directory; the walk stops at the repository root (a folder holding ``.git``) or the file
system root. Paths in the table (``db``, ``dir``, ``schema_file``, ``backup_dir``) are relative to the file.
Precedence: a given value, then the environment, then the table, then the default.

Python 3.11+ reads the file with tomllib; Python 3.10, which has no TOML parser in its
standard library, with the small reader in ``tomltable``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, TypeGuard, TypeVar

from .backends import is_url
from .errors import Parameter, UsageError, setting
from .path_words import not_meant
from .tomltable import TABLE, misplaced_in, near_miss_error, tool_table

KEYS: dict[str, type] = {
    "db": str,
    "dir": str,
    "schema_file": str,
    "lock_timeout": float,
    "backup": bool,
    "keep_backups": int,
    "backup_dir": str,
    "dump": bool,
    "user_version": bool,
    "create": bool,
    "allow_existing": bool,
}
DEFAULTS: dict[str, object] = {
    "db": "vcp_trading.db",
    "dir": "migrations",
    "schema_file": None,  # <dir>/schema.sql
    "lock_timeout": 30.0,
    "backup": True,
    "keep_backups": 5,
    "backup_dir": None,  # <db>.backups/
    "dump": True,
    "user_version": True,
    "create": True,
    "allow_existing": False,
}
ENVIRONMENT = {"db": "VCP_MIGRATE_DB", "dir": "VCP_MIGRATE_DIR", "lock_timeout": "VCP_MIGRATE_LOCK_TIMEOUT"}
CONFIG_VARIABLE = "VCP_MIGRATE_CONFIG"
# The keys that are paths, with MigrationManager's parameter for each (named in messages).
_PATHS: dict[str, Parameter] = {
    "db": "db_path",
    "dir": "migrations_dir",
    "schema_file": "schema_file",
    "backup_dir": "backup_dir",
}
_FILES = ("db", "schema_file")
T = TypeVar("T")


class ManagerSettings(NamedTuple):
    """What a MigrationManager is built from, each value decided: given, else the environment,
    else configured, else the default. ``config`` is the file the table came from, if any."""

    db: str
    directory: str
    schema_file: str | None
    lock_timeout: float
    backup: bool
    keep_backups: int
    dump: bool
    user_version: bool
    create: bool
    allow_existing: bool
    config: Path | None
    backup_dir: str | None = None
    origins: Mapping[str, str] = {}
    """Where each value not given came from, by MigrationManager parameter, for messages to name
    instead of the parameter: ``{"db_path": "VCP_MIGRATE_DB"}``; defaults are not named."""


def find(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path | None:
    """The configuration file: ``explicit``, else $VCP_MIGRATE_CONFIG, else the nearest pyproject.toml
    with a [tool.vcp-migrate] table from ``start`` (the current directory) up to the repository root.

    An explicit file must exist and hold the table. Raises UsageError otherwise, and for a
    pyproject.toml on the way that cannot be read or names the table almost right.
    """
    found = _located(explicit, start)
    return found[0] if found else None


def _located(explicit: str | os.PathLike[str] | None, start: Path | None) -> tuple[Path, dict[str, object]] | None:
    """``find``'s file and its table, as read to find it: the file is read and parsed once."""
    if explicit is not None and not str(explicit):
        raise UsageError(f"{setting('path')} is empty", hint="give a path")
    named, how = (
        (explicit, setting("path")) if explicit is not None else (os.environ.get(CONFIG_VARIABLE), CONFIG_VARIABLE)
    )
    if named:
        path = Path(named)
        if not path.is_file():  # a pipe or a device is never opened: reading one could wait forever
            raise UsageError(f"{how} names {_what_is_at(path)}", where=str(path), hint="give a pyproject.toml")
        table, has_table = _document(path)
        if not has_table:
            raise UsageError(f"has no {TABLE} table", where=str(path), hint=f"add one, or leave {how} out")
        return path, table
    try:
        here = Path.cwd() if start is None else start
    except FileNotFoundError as exc:  # deleted under the shell (a branch switched, a release folder replaced)
        raise UsageError(
            "the current folder no longer exists, so no pyproject.toml can be looked for above it",
            hint="cd into the project again",
        ) from exc
    for folder in (here, *here.absolute().parents):
        candidate = _shortest(folder / "pyproject.toml")
        try:
            if candidate.is_file():
                table, has_table = _document(candidate)
                if has_table:
                    return candidate, table
            if (folder / ".git").exists():
                break
        except PermissionError as exc:  # a folder on the way that cannot be searched (no x bit)
            raise UsageError(
                f"cannot be looked for: {exc.strerror}",
                where=str(candidate),
                hint=f"make its folder searchable, or name the configuration file with {setting('path')}",
            ) from exc
    return None


def _what_is_at(path: Path) -> str:
    """What a path that names no regular file names instead."""
    if path.is_dir():
        return "a folder"
    return "no regular file" if path.exists() else "a file that does not exist"


def _shortest(path: Path) -> Path:
    """``path`` relative to the current directory when it is above it (../../pyproject.toml)."""
    try:
        return Path(os.path.relpath(path))
    except ValueError:  # another drive
        return path


def read_settings(path: Path) -> dict[str, object]:
    """The [tool.vcp-migrate] table of ``path``, checked; empty when there is no such file or table."""
    if not path.is_file():
        return {}
    return _checked(path, _document(path)[0])


def _checked(path: Path, table: dict[str, object]) -> dict[str, object]:
    """``table``, read from ``path``, once its keys and values are checked."""
    for key, value in table.items():
        expected = KEYS.get(key)
        if expected is None:
            raise UsageError(
                f"{TABLE} has an unknown key {key!r}", where=str(path), hint=f"known keys: {', '.join(KEYS)}"
            )
        if not _is_a(value, expected):
            raise _wrong_type(key, expected, value, str(path))
        # Relative to the file: an empty path would name the file's own folder, a blank one a file.
        if key in _PATHS and (wrong := not_meant(str(value), str(path.parent))):
            raise UsageError(f"{TABLE} {key} {wrong[0]}", where=str(path), hint=f"{wrong[1]}, or leave the key out")
        if key in _FILES and _names_a_folder(value):  # checked as written: joined to the file's folder, "." is lost
            raise UsageError(
                f"{TABLE} {key} names a folder, not a file: {value!r}",
                where=str(path),
                hint="give the path of a file, or leave the key out",
            )
    keep = table.get("keep_backups", 1)
    if isinstance(keep, int) and keep < 1:  # of the right type: checked above
        raise UsageError(
            f"keep_backups must be 1 or more, not {table['keep_backups']}",
            where=str(path),
            hint="write backup = false instead, to keep none",
        )
    return table


def manager_settings(
    given: Mapping[str, object] | None = None, config: Path | None = None, *, table: dict[str, object] | None = None
) -> ManagerSettings:
    """Each setting: ``given`` (keys as in the table; None means not given), else the environment,
    else the table of ``config`` (``table`` when it was read already), else the default. Paths
    from the table are made relative to it.

    Raises UsageError for an unknown key, a value of the wrong type, or a bad environment variable.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}", hint=f"known settings: {', '.join(KEYS)}")
    for key in ("db", "dir"):
        if given.get(key) == "":  # Path("") is the current folder, never what was meant
            raise UsageError(f"{setting(_PATHS[key])} is empty", hint="give a path")
    if config is None:
        table = {}
    elif table is None:
        table = read_settings(config)
    else:
        table = _checked(config, table)
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for key, kind in KEYS.items():
        value = given.get(key)
        if value is None and key in ENVIRONMENT and os.environ.get(ENVIRONMENT[key]):
            value = _from_environment(key, os.environ[ENVIRONMENT[key]])
            origins[_PARAMETER.get(key, key)] = ENVIRONMENT[key]
        if value is None:
            if key in table:
                origins[_PARAMETER.get(key, key)] = f"{key} in {TABLE} of {config}"
            value = table.get(key, DEFAULTS[key])
            # With a configuration file, its paths and the default ones are relative to it.
            relative = value is not None and not Path(str(value)).is_absolute() and not is_url(str(value))
            if key in _PATHS and relative and config is not None:
                value = str(config.parent / str(value))
        if value is not None and not _is_a(value, kind):
            raise _wrong_type(key, kind, value, "")  # a given value: the table's were checked when read
        values[key] = float(value) if kind is float and value is not None else value
    _check_lock_timeout(values["lock_timeout"], str(config) if "lock_timeout" in table else None)
    lock_timeout, keep_backups = values["lock_timeout"], values["keep_backups"]
    assert isinstance(lock_timeout, float) and isinstance(keep_backups, int)  # checked by _is_a above
    return ManagerSettings(
        db=str(values["db"]),
        directory=str(values["dir"]),
        schema_file=None if values["schema_file"] is None else str(values["schema_file"]),
        lock_timeout=lock_timeout,
        backup=bool(values["backup"]),
        keep_backups=keep_backups,
        dump=bool(values["dump"]),
        user_version=bool(values["user_version"]),
        create=bool(values["create"]),
        allow_existing=bool(values["allow_existing"]),
        config=config,
        backup_dir=None if values["backup_dir"] is None else str(values["backup_dir"]),
        origins=origins,
    )


# MigrationManager's parameter names for the keys whose names differ.
PARAMETERS = {"db_path": "db", "migrations_dir": "dir", "dump_schema": "dump"}
_PARAMETER = {key: parameter for parameter, key in PARAMETERS.items()}


def settings_from(
    explicit: str | os.PathLike[str] | None, given: Mapping[str, object], *, parameters: bool = False
) -> ManagerSettings:
    """The settings from the configuration file found (see ``find``) and ``given`` values, keyed as
    in the table, or with ``parameters`` as MigrationManager's parameters."""
    if parameters:
        known = {name: name for name in KEYS if name not in PARAMETERS.values()} | PARAMETERS
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise UsageError(f"unknown parameter {unknown[0]!r}", hint=f"known parameters: {', '.join(known)}")
        given = {known[name]: _given(name, known[name], value) for name, value in given.items()}
    found = _located(explicit, None)
    return manager_settings(given, found[0], table=found[1]) if found else manager_settings(given)


def _given(parameter: str, key: str, value: object) -> object:
    """A value given to ``from_config`` as ``parameter``, checked under that name: a path may be
    any the constructor takes (a str, bytes, a path object), and comes back as text."""
    if value is None:
        return None
    if key in _PATHS:
        from .commands.context import path_text

        shown = setting(_PATHS[key])  # the parameter's own name, as the command line spells it
        if value == "":  # here first, so that the command line names its option
            raise UsageError(f"{shown} is empty", hint="give a path")
        return path_text(parameter, value, shown=shown)
    if not _is_a(value, KEYS[key]):
        raise _wrong_type(parameter, KEYS[key], value, "")
    return value


def _from_environment(key: str, raw: str) -> object:
    if KEYS[key] is not float:
        return raw
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(
            f"{ENVIRONMENT[key]}={raw!r} is not a finite number of seconds, 0 or more", hint="give one such as 30"
        )
    return seconds


def _names_a_folder(value: object) -> bool:
    from .commands.context import names_a_folder

    return isinstance(value, str) and not is_url(value) and names_a_folder(value)


def _check_lock_timeout(seconds: object, where: str | None) -> None:
    if not (isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0):
        raise UsageError(
            f"lock_timeout must be a finite number of seconds, 0 or more, not {seconds}",
            where=where,
            hint="give one such as 30",
        )


def _is_a(value: object, kind: type[T]) -> TypeGuard[T]:
    # bool is a subclass of int, and `keep_backups = true` is not a number of backups; an int is a float here.
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _wrong_type(key: str, kind: type, value: object, where: str) -> UsageError:
    # A value of the table is spelled as TOML spells it, a value given as Python does.
    flag = "true or false" if where else "True or False"
    name = {float: "a number", int: "a whole number", str: "a string", bool: flag}.get(kind, kind.__name__)
    what = f"{TABLE} {key}" if where else key
    return UsageError(f"{what} must be {name}, not {value!r}", where=where or None)


def _document(path: Path) -> tuple[dict[str, object], bool]:
    """The table of ``path`` and whether the file has one; a near-miss table name is an error."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot be read: {exc}", where=where, hint=f"fix the file, or name another with {setting('path')}"
        ) from exc
    if text.startswith("\ufeff"):  # TOML refuses it, at "line 1, column 1", where no one sees anything amiss
        raise UsageError(
            "begins with a byte order mark (an invisible U+FEFF, as some editors save UTF-8),"
            " which TOML does not allow",
            where=where,
            hint="save the file as UTF-8 without a BOM",
        )
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"is not valid TOML: {exc}", where=where, hint="fix the file") from exc
        misplaced = misplaced_in(document)
        if misplaced is not None:
            raise near_miss_error(misplaced, where)
        tool = document.get("tool", {})
        tool = tool if isinstance(tool, dict) else {}
        if "vcp-migrate" not in tool:
            return {}, False
        table = tool["vcp-migrate"]
        if not isinstance(table, dict):
            raise UsageError("tool.vcp-migrate must be a table", where=where)
        return table, True
    return tool_table(text, where)  # pragma: no cover - exercised directly on every version
