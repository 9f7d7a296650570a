"""Settings from a ``[tool.vcp-migrate]`` table, and their merge with given values and the environment.

Which file: ``--config PATH`` (or ``path=``), else ``VCP_MIGRATE_CONFIG``, else the first
``pyproject.toml`` with a ``[tool.vcp-migrate]`` table found walking up from the current
directory; the walk stops at the repository root (a folder holding ``.git``) or the file
system root. Paths in the table (``db``, ``dir``, ``schema_file``, ``backup_dir``) are relative to the file.
Precedence: a given value, then the environment, then the table, then the default.

Python 3.11+ reads the file with tomllib. Python 3.10 has no TOML parser in its standard
library, so there a small reader takes just that table, written as plain ``key = value``
lines (strings, numbers, booleans), which is all vcp-migrate's keys need.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, TypeGuard, TypeVar

from .errors import UsageError, setting

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
_PATHS = ("db", "dir", "schema_file", "backup_dir")
_TABLE = "[tool.vcp-migrate]"
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


def find(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path | None:
    """The configuration file: ``explicit``, else $VCP_MIGRATE_CONFIG, else the nearest pyproject.toml
    with a [tool.vcp-migrate] table from ``start`` (the current directory) up to the repository root.

    An explicit file must exist and hold the table. Raises UsageError otherwise, and for a
    pyproject.toml on the way that cannot be read or names the table almost right.
    """
    if explicit is not None and not str(explicit):
        raise UsageError(f"{setting('path')} is empty", hint="give a path")
    named, how = (
        (explicit, setting("path")) if explicit is not None else (os.environ.get(CONFIG_VARIABLE), CONFIG_VARIABLE)
    )
    if named:
        path = Path(named)
        if not path.is_file():
            raise UsageError(f"{how} names a file that does not exist", where=str(path), hint="give a pyproject.toml")
        if not _has_table(path):
            raise UsageError(f"has no {_TABLE} table", where=str(path), hint=f"add one, or leave {how} out")
        return path
    here = Path.cwd() if start is None else start
    for folder in (here, *here.absolute().parents):
        candidate = _shortest(folder / "pyproject.toml")
        if candidate.is_file() and _has_table(candidate):
            return candidate
        if (folder / ".git").exists():
            break
    return None


def _shortest(path: Path) -> Path:
    """``path`` relative to the current directory when it is above it (../../pyproject.toml)."""
    try:
        return Path(os.path.relpath(path))
    except ValueError:  # another drive
        return path


def _has_table(path: Path) -> bool:
    return _document(path)[1]


def read_settings(path: Path) -> dict[str, object]:
    """The [tool.vcp-migrate] table of ``path``, checked; empty when there is no such file or table."""
    if not path.is_file():
        return {}
    table, _ = _document(path)
    for key, value in table.items():
        expected = KEYS.get(key)
        if expected is None:
            raise UsageError(
                f"{_TABLE} has an unknown key {key!r}", where=str(path), hint=f"known keys: {', '.join(KEYS)}"
            )
        if not _is_a(value, expected):
            raise _wrong_type(key, expected, value, str(path))
        if key in _PATHS and value == "":  # relative to the file, it would name the file's own folder
            raise UsageError(f"{_TABLE} {key} is empty", where=str(path), hint="give a path, or leave the key out")
    if table.get("keep_backups", 1) < 1:  # type: ignore[operator]
        raise UsageError(
            f"keep_backups must be 1 or more, not {table['keep_backups']}",
            where=str(path),
            hint="write backup = false instead, to keep none",
        )
    return table


def manager_settings(given: Mapping[str, object] | None = None, config: Path | None = None) -> ManagerSettings:
    """Each setting: ``given`` (keys as in the table; None means not given), else the environment,
    else the table of ``config``, else the default. Paths from the table are made relative to it.

    Raises UsageError for an unknown key, a value of the wrong type, or a bad environment variable.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise UsageError(f"unknown setting {unknown[0]!r}", hint=f"known settings: {', '.join(KEYS)}")
    for key, parameter in (("db", "db_path"), ("dir", "migrations_dir")):
        if given.get(key) == "":  # Path("") is the current folder, never what was meant
            raise UsageError(f"{setting(parameter)} is empty", hint="give a path")  # type: ignore[arg-type]
    table = read_settings(config) if config is not None else {}
    values: dict[str, object] = {}
    for key, kind in KEYS.items():
        value = given.get(key)
        if value is None and key in ENVIRONMENT and os.environ.get(ENVIRONMENT[key]):
            value = _from_environment(key, os.environ[ENVIRONMENT[key]])
        if value is None:
            value = table.get(key, DEFAULTS[key])
            # With a configuration file, its paths and the default ones are relative to it.
            if key in _PATHS and value is not None and config is not None and not Path(str(value)).is_absolute():
                value = str(config.parent / str(value))
        if value is not None and not _is_a(value, kind):
            raise _wrong_type(key, kind, value, "")  # a given value: the table's were checked when read
        values[key] = float(value) if kind is float and value is not None else value
    _check_lock_timeout(values["lock_timeout"], str(config) if "lock_timeout" in table else None)
    return ManagerSettings(
        db=str(values["db"]),
        directory=str(values["dir"]),
        schema_file=None if values["schema_file"] is None else str(values["schema_file"]),
        lock_timeout=float(values["lock_timeout"]),  # type: ignore[arg-type]
        backup=bool(values["backup"]),
        keep_backups=int(values["keep_backups"]),  # type: ignore[call-overload]
        dump=bool(values["dump"]),
        user_version=bool(values["user_version"]),
        create=bool(values["create"]),
        allow_existing=bool(values["allow_existing"]),
        config=config,
        backup_dir=None if values["backup_dir"] is None else str(values["backup_dir"]),
    )


# MigrationManager's parameter names for the keys whose names differ.
PARAMETERS = {"db_path": "db", "migrations_dir": "dir", "dump_schema": "dump"}


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
        given = {known[name]: value for name, value in given.items()}
    return manager_settings(given, find(explicit))


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
    name = "number" if kind is float else kind.__name__
    what = f"{_TABLE} {key}" if where else key
    return UsageError(f"{what} must be a {name}, not {value!r}", where=where or None)


def _near_miss(name: str) -> bool:
    return name != "vcp-migrate" and re.sub(r"[-_.\s\"']", "", name.lower()) == "vcpmigrate"


def _near_miss_error(name: str, where: str) -> UsageError:
    return UsageError(f"[tool.{name}] is not read by vcp-migrate", where=where, hint=f"name the table {_TABLE}")


def _document(path: Path) -> tuple[dict[str, object], bool]:
    """The table of ``path`` and whether the file has one; a near-miss table name is an error."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot be read: {exc}", where=where, hint=f"fix the file, or name another with {setting('path')}"
        ) from exc
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"is not valid TOML: {exc}", where=where, hint="fix the file") from exc
        tool = document.get("tool", {})
        tool = tool if isinstance(tool, dict) else {}
        for name in tool:
            if _near_miss(name):
                raise _near_miss_error(name, where)
        if "vcp-migrate" not in tool:
            return {}, False
        table = tool["vcp-migrate"]
        if not isinstance(table, dict):
            raise UsageError("tool.vcp-migrate must be a table", where=where)
        return table, True
    return _tool_table(text, where)  # pragma: no cover - exercised directly on every version


_PART = r"""\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*"""
_HEADER = re.compile(rf"(\[\[?)({_PART}(?:\.{_PART})*)\]\]?\s*(?:#.*)?")
_PAIR = re.compile(rf"({_PART}(?:\.{_PART})*)=\s*(.+)")
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r"\"((?:[^\"\\]|\\.)*)\"\s*(?:#.*)?")
_LITERAL = re.compile(r"'([^']*)'\s*(?:#.*)?")


def parse_tool_table(text: str, where: str = "pyproject.toml") -> dict[str, object]:
    """The [tool.vcp-migrate] table, from plain ``key = value`` lines (the Python 3.10 reader)."""
    return _tool_table(text, where)[0]


def _tool_table(text: str, where: str) -> tuple[dict[str, object], bool]:
    table: dict[str, object] = {}
    inside = found = False
    path: list[str] = []
    open_value: tuple[int, str | None] = (0, None)  # a value of another table going on over lines
    for number, raw in enumerate(text.splitlines(), 1):
        if open_value != (0, None):
            open_value = _scan(raw, *open_value)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.fullmatch(line) if line.startswith("[") else None
        if line.startswith("["):
            if header is None or (header[1] == "[[") != line.split("#")[0].rstrip().endswith("]]"):
                raise UsageError(f"line {number}: malformed table header {line!r}", where=where, hint="fix the file")
            path = _dotted(header[2])
            inside = path == ["tool", "vcp-migrate"] and header[1] == "["
            found = found or inside
            if not inside:
                _not_ours(path, number, where)
            continue
        pair = _PAIR.fullmatch(line)
        if pair is None:
            raise UsageError(f"line {number}: expected key = value", where=where, hint="fix the file")
        if not inside:
            _not_ours(path + _dotted(pair[1]), number, where)
            open_value = _scan(pair[2], 0, None)
            continue
        key = pair[1].strip()
        if not _KEY.fullmatch(key):
            raise UsageError(f"line {number}: expected key = value", where=where, hint="fix the file")
        if key in table:
            raise UsageError(f"line {number}: {key} is set twice", where=where, hint="fix the file")
        table[key] = _value(pair[2].strip(), number, where)
    return table, found


def _dotted(key: str) -> list[str]:
    """The parts of a dotted key or table name, unquoted: ``tool . "vcp-migrate"`` is tool, vcp-migrate."""
    parts = re.findall(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""", key)
    return [part[1:-1] if part[:1] in "\"'" else part for part in parts]


def _not_ours(path: list[str], number: int, where: str) -> None:
    """Refuse, outside the table, what names it almost right or sets it in a form this reader cannot read."""
    if len(path) < 2 or path[0] != "tool":
        return
    if _near_miss(path[1]):
        raise _near_miss_error(path[1], where)
    if path[1] == "vcp-migrate":
        raise UsageError(
            f"line {number}: {'.'.join(path)} is not read on Python 3.10",
            where=where,
            hint=f"write the settings as key = value lines under {_TABLE}",
        )


def _scan(text: str, depth: int, quote: str | None) -> tuple[int, str | None]:
    """Carry the brackets and the multi-line string still open after ``text``, so that the lines of
    a value over several lines (an array of arrays, a string) are never read as headers or keys."""
    at = 0
    while at < len(text):
        if quote is not None:
            if text.startswith(quote, at):
                at, quote = at + len(quote), None
                continue
            at += 2 if text[at] == "\\" and quote[0] == '"' else 1
            continue
        char = text[at]
        if char == "#":
            break
        if char in "\"'":
            quote = char * 3 if text.startswith(char * 3, at) else char
            at += len(quote)
            continue
        depth += (char in "[{") - (char in "]}")
        at += 1
    return depth, quote if quote is not None and len(quote) == 3 else None


def _value(raw: str, number: int, where: str) -> object:
    basic, literal = _BASIC.fullmatch(raw), _LITERAL.fullmatch(raw)
    if basic:
        import json

        try:
            return str(json.loads(f'"{basic[1]}"'))
        except json.JSONDecodeError:
            pass
    elif literal:
        return literal[1]
    else:
        bare = raw.split("#", 1)[0].strip()
        if bare in ("true", "false"):
            return bare == "true"
        for convert in (int, float):
            try:
                return convert(bare.replace("_", ""))
            except ValueError:
                continue
    raise UsageError(
        f"line {number}: cannot read the value {raw!r}",
        where=where,
        hint="write a quoted string, a number or true/false",
    )
