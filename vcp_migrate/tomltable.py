"""The [tool.vcp-migrate] table of a pyproject.toml on Python 3.10, which has no TOML parser in
its standard library: a small reader of that table, written as plain ``key = value`` lines
(strings, numbers, booleans), which is all vcp-migrate's keys need; and the near-miss table
names both readers refuse."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import UsageError

TABLE = "[tool.vcp-migrate]"


def near_miss(name: str) -> bool:
    """A tool table named almost as ours ([tool.vcp_migrate], [tool.vcp-migrations], [tool.vcp-migarte]),
    which would otherwise be ignored without a word."""
    folded = re.sub(r"[-_.\s\"']", "", name.lower())
    ours = folded.startswith("vcp") and any(_edits(folded, spelled) <= 1 for spelled in _OURS)
    return name != "vcp-migrate" and ours


_OURS = ("vcpmigrate", "vcpmigrates", "vcpmigration", "vcpmigrations", "vcpmigrator")  # meant, within one typo


def misplaced(path: list[str]) -> str | None:
    """The table ``path`` (a table's or key's dotted name, from the top of the file) puts ours in
    when it is named almost right, dotted ("tool.vcp_migrate", "vcp-migrate", "tools.vcp-migrate"):
    under ``tool`` misspelt, at the top of the file, or under a ``tool`` one letter off; each would
    be passed by without a word. None for any other table, [tool.vcp-migrate] itself included."""

    def ours(name: str) -> bool:
        return name == "vcp-migrate" or near_miss(name)

    if path and ours(path[0]):
        return path[0]
    if len(path) < 2 or not (near_miss(path[1]) if path[0] == "tool" else _near_tool(path[0]) and ours(path[1])):
        return None
    return f"{path[0]}.{path[1]}"


def misplaced_in(document: Mapping[str, object]) -> str | None:
    """The first table of a whole parsed ``document`` (tomllib's) that ``misplaced`` names, or None."""
    for key, value in document.items():
        for path in ([key], *([key, name] for name in (value if isinstance(value, dict) else ()))):
            if (found := misplaced(path)) is not None:
                return found
    return None


def _near_tool(name: str) -> bool:
    """``tool`` within one typo, case aside ([tools], [Tool], [too]), but not ``tool`` itself."""
    return name != "tool" and _edits(name.lower(), "tool") <= 1


def _edits(one: str, other: str) -> int:
    """How many characters to insert, delete or replace, or pairs to swap, to make ``one`` into ``other``."""
    rows = [list(range(len(other) + 1))]
    for i, a in enumerate(one, 1):
        row = [i] + [0] * len(other)
        for j, b in enumerate(other, 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a != b))
            if i > 1 and j > 1 and a == other[j - 2] and one[i - 2] == b:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def near_miss_error(name: str, where: str) -> UsageError:
    """The error for the table ``name`` (dotted: ``tool.vcp_migrate``), ours named almost right."""
    return UsageError(f"[{name}] is not read by vcp-migrate", where=where, hint=f"name the table {TABLE}")


_PART = r"""\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*"""
# Patterns, compiled (and cached by re) on first use: only Python 3.10 reads a table with them.
_HEADER = rf"(\[\[?)({_PART}(?:\.{_PART})*)\]\]?\s*(?:#.*)?"
_PAIR = rf"({_PART}(?:\.{_PART})*)=\s*(.+)"
_KEY = r"[A-Za-z0-9_-]+"
_BASIC = r"\"((?:[^\"\\]|\\.)*)\"\s*(?:#.*)?"
_LITERAL = r"'([^']*)'\s*(?:#.*)?"


def parse_tool_table(text: str, where: str = "pyproject.toml") -> dict[str, object]:
    """The [tool.vcp-migrate] table, from plain ``key = value`` lines (the Python 3.10 reader)."""
    return tool_table(text, where)[0]


def tool_table(text: str, where: str) -> tuple[dict[str, object], bool]:
    table: dict[str, object] = {}
    inside = found = False
    path: list[str] = []
    declared: dict[tuple[str, ...], int] = {}  # each [table] and the line of its header: TOML allows one
    open_value: tuple[int, str | None] = (0, None)  # a value of another table going on over lines
    for number, raw in enumerate(text.splitlines(), 1):
        if open_value != (0, None):
            open_value = _scan(raw, *open_value)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(_HEADER, line) if line.startswith("[") else None
        if line.startswith("["):
            if header is None or (header[1] == "[[") != line.split("#")[0].rstrip().endswith("]]"):
                raise UsageError(f"line {number}: malformed table header {line!r}", where=where, hint="fix the file")
            path = _dotted(header[2])
            declared = _declare(declared, tuple(path), header[1] == "[[", number, where)
            inside = path == ["tool", "vcp-migrate"] and header[1] == "["
            found = found or inside
            if not inside:
                _not_ours(path, number, where)
            continue
        pair = re.fullmatch(_PAIR, line)
        if pair is None:
            raise UsageError(f"line {number}: expected key = value", where=where, hint="fix the file")
        if not inside:
            _not_ours(path + _dotted(pair[1]), number, where)
            open_value = _scan(pair[2], 0, None)
            continue
        key = pair[1].strip()
        if not re.fullmatch(_KEY, key):
            raise UsageError(f"line {number}: expected key = value", where=where, hint="fix the file")
        if key in table:
            raise UsageError(f"line {number}: {key} is set twice", where=where, hint="fix the file")
        table[key] = _value(pair[2].strip(), number, where)
    return table, found


def _declare(
    declared: dict[tuple[str, ...], int], path: tuple[str, ...], array: bool, number: int, where: str
) -> dict[tuple[str, ...], int]:
    """The tables declared so far, ``path`` added; a [table] declared twice is refused, as tomllib
    refuses it (the second [tool.vcp-migrate] would otherwise add to, or override, the first).
    A new [[array]] element starts afresh the tables under it, which each element may declare."""
    if array:
        return {other: line for other, line in declared.items() if other[: len(path)] != path}
    if path in declared:
        raise UsageError(
            f"line {number}: [{'.'.join(path)}] is declared twice (first on line {declared[path]}),"
            " which TOML does not allow",
            where=where,
            hint="merge the two tables into one",
        )
    return {**declared, path: number}


def _dotted(key: str) -> list[str]:
    """The parts of a dotted key or table name, unquoted: ``tool . "vcp-migrate"`` is tool, vcp-migrate."""
    parts = re.findall(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""", key)
    return [part[1:-1] if part[:1] in "\"'" else part for part in parts]


def _not_ours(path: list[str], number: int, where: str) -> None:
    """Refuse, outside the table, what names it almost right or sets it in a form this reader cannot read."""
    if (name := misplaced(path)) is not None:
        raise near_miss_error(name, where)
    if path[:2] == ["tool", "vcp-migrate"]:
        raise UsageError(
            f"line {number}: {'.'.join(path)} is not read on Python 3.10",
            where=where,
            hint=f"write the settings as key = value lines under {TABLE}",
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
    basic, literal = re.fullmatch(_BASIC, raw), re.fullmatch(_LITERAL, raw)
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
