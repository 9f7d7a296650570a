"""Defaults from the ``[tool.vcp-migrate]`` table of ./pyproject.toml, and their merge with given values.

Python 3.11+ reads the file with tomllib. Python 3.10 has no TOML parser in its standard
library, so there a small reader takes just that table, written as plain ``key = value``
lines (strings, numbers, booleans), which is all vcp-migrate's keys need.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple, TypeGuard, TypeVar

from .errors import UsageError

KEYS: dict[str, type] = {
    "db": str,
    "dir": str,
    "backup": bool,
    "keep_backups": int,
    "user_version": bool,
    "schema_file": str,
    "dump": bool,
}
_WHERE = "pyproject.toml"
_PYPROJECT = Path(_WHERE)
T = TypeVar("T")


class ManagerSettings(NamedTuple):
    """What a MigrationManager is built from, each value decided: given, else configured, else the default."""

    db: str
    directory: str
    backup: bool
    keep_backups: int
    user_version: bool
    schema_file: str | None
    dump: bool


def read_settings(path: Path = _PYPROJECT) -> dict[str, object]:
    """The [tool.vcp-migrate] table of ``path``, checked; empty when there is no such file or table."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot be read: {exc}", where=str(path), hint="fix the file or pass --db and --dir"
        ) from None
    table = _parse(text, str(path))
    for key, value in table.items():
        expected = KEYS.get(key)
        if expected is None:
            raise UsageError(
                f"[tool.vcp-migrate] has an unknown key {key!r}",
                where=str(path),
                hint=f"known keys: {', '.join(KEYS)}",
            )
        if not _is_a(value, expected):
            raise _wrong_type(key, expected, value, str(path))
    return table


def manager_settings(
    db: str | None = None,
    directory: str | None = None,
    backup: bool | None = None,
    keep_backups: int | None = None,
    dump: bool | None = None,
    path: Path = _PYPROJECT,
) -> ManagerSettings:
    """Given values (None: not given) first, then the [tool.vcp-migrate] table of ``path``, then the defaults.

    Raises UsageError when ``path`` cannot be read, or its table has an unknown key or a value of the wrong type.
    """
    table = read_settings(path)
    where = str(path)
    return ManagerSettings(
        db=_setting(table, "db", str, "vcp_trading.db", where) if db is None else db,
        directory=_setting(table, "dir", str, "migrations", where) if directory is None else directory,
        backup=_setting(table, "backup", bool, True, where) if backup is None else backup,
        keep_backups=_setting(table, "keep_backups", int, 5, where) if keep_backups is None else keep_backups,
        user_version=_setting(table, "user_version", bool, True, where),
        schema_file=_setting(table, "schema_file", str, "", where) if "schema_file" in table else None,
        dump=_setting(table, "dump", bool, True, where) if dump is None else dump,
    )


def _setting(table: dict[str, object], key: str, kind: type[T], default: T, where: str) -> T:
    # read_settings has checked every value already; checking again here is what gives the value
    # its type, and unlike an assert it still holds under python -O.
    value = table.get(key, default)
    if _is_a(value, kind):
        return value
    raise _wrong_type(key, kind, value, where)


def _is_a(value: object, kind: type[T]) -> TypeGuard[T]:
    # bool is a subclass of int, and `keep_backups = true` is not a number of backups.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _wrong_type(key: str, kind: type, value: object, where: str) -> UsageError:
    return UsageError(f"[tool.vcp-migrate] {key} must be a {kind.__name__}, not {value!r}", where=where)


def _parse(text: str, where: str) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"is not valid TOML: {exc}", where=where, hint="fix the file") from None
        table = document.get("tool", {}).get("vcp-migrate", {})
        if not isinstance(table, dict):
            raise UsageError("tool.vcp-migrate must be a table", where=where)
        return table
    return parse_tool_table(text, where)  # pragma: no cover - exercised directly on every version


_HEADER = re.compile(r"\[\s*tool\s*\.\s*(?:vcp-migrate|\"vcp-migrate\")\s*\]\s*(?:#.*)?")
_ANY_HEADER = re.compile(r"(?:\[[^\[\]]+\]|\[\[[^\[\]]+\]\])\s*(?:#.*)?")
_PAIR = re.compile(r"([A-Za-z0-9_-]+)\s*=\s*(.+)")
_BASIC = re.compile(r"\"((?:[^\"\\]|\\.)*)\"\s*(?:#.*)?")
_LITERAL = re.compile(r"'([^']*)'\s*(?:#.*)?")


def parse_tool_table(text: str, where: str = _WHERE) -> dict[str, object]:
    """The [tool.vcp-migrate] table, from plain ``key = value`` lines (the Python 3.10 reader)."""
    table: dict[str, object] = {}
    inside = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            if not _ANY_HEADER.fullmatch(line):
                raise UsageError(f"line {number}: malformed table header {line!r}", where=where, hint="fix the file")
            inside = bool(_HEADER.fullmatch(line))
            continue
        if not inside or not line or line.startswith("#"):
            continue
        pair = _PAIR.fullmatch(line)
        if pair is None:
            raise UsageError(f"line {number}: expected key = value", where=where, hint="fix the file")
        key, value = pair[1], _value(pair[2].strip(), number, where)
        if key in table:
            raise UsageError(f"line {number}: {key} is set twice", where=where, hint="fix the file")
        table[key] = value
    return table


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
