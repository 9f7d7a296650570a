"""Hazard lint: SQLite pitfalls in the statements a pending migration executes.

Pure: it reads statements and a summary of the schema they run against, never a database.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from . import journal
from .database import Queries

_LITERAL_OR_COMMENT = re.compile(r"--[^\n]*|/\*.*?(?:\*/|\Z)|'(?:[^']|'')*'", re.DOTALL)
_NAME = r"((?:\w+\.)?(?:\"(?:[^\"]|\"\")+\"|\[[^\]]+\]|`[^`]+`|\w+))"
_PRAGMA_SET = re.compile(r"PRAGMA\s+[\w.]+\s*=", re.IGNORECASE)
# PRAGMA [schema.]journal_mode = value (or (value)), the name and the value quoted in any of SQLite's ways.
_JOURNAL_SET = re.compile(
    r"""PRAGMA\s+(?:[^\s.=(]+\s*\.\s*)?(?:journal_mode|"journal_mode"|`journal_mode`|\[journal_mode\])\s*[=(]\s*"""
    r"""(?:'((?:[^']|'')*)'|"((?:[^"]|"")*)"|`([^`]*)`|\[([^\]]*)\]|([\w+-]+))""",
    re.IGNORECASE,
)
_VACUUM = re.compile(r"VACUUM\b", re.IGNORECASE)
_ADD_COLUMN = re.compile(rf"ALTER\s+TABLE\s+{_NAME}\s+ADD\s+(?:COLUMN\s+)?(.*)", re.IGNORECASE | re.DOTALL)
_DROP_COLUMN = re.compile(rf"ALTER\s+TABLE\s+{_NAME}\s+DROP\s+(?:COLUMN\s+)?{_NAME}", re.IGNORECASE)
_RENAME_TABLE = re.compile(rf"ALTER\s+TABLE\s+{_NAME}\s+RENAME\s+TO\s+{_NAME}", re.IGNORECASE)
_DROP_TABLE = re.compile(rf"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_NAME}", re.IGNORECASE)
_OPT_OUT = "put it in a migration of its own with transaction:false (SQL) or transactional = False (Python)"

# The stable name of each kind of hazard, as a migration acknowledges it (`-- vcp:allow NAME`,
# `allow_hazards = {"NAME"}`), with what it means. Renaming one breaks the files that name it.
KINDS: dict[str, str] = {
    "pragma-in-transaction": "a PRAGMA that sets a value, inside a transactional migration",
    "vacuum-in-transaction": "VACUUM inside a transactional migration",
    "not-null-without-default": "ADD COLUMN ... NOT NULL without a DEFAULT",
    "drop-column": "dropping a column",
    "drop-table": "dropping a table",
    "rename-referenced": "renaming or rebuilding a table that views or triggers reference",
    "rebuild-parent": "rebuilding a parent table whose children have ON DELETE actions",
    "empty-down": "a SQL down section left empty under an up that does something (found by validate)",
}


class Hazard(NamedTuple):
    """One pitfall: its kind (a name of KINDS), the statement, what goes wrong, and the safer alternative."""

    kind: str
    statement: str
    problem: str
    advice: str

    def __str__(self) -> str:
        return f"{short(self.statement)!r}: {self.problem}; {self.advice}"


_SERVER_REFUSES = (
    (re.compile(r"VACUUM\b", re.IGNORECASE), "VACUUM"),
    (re.compile(r"CREATE\s+TEMP(?:ORARY)?\b", re.IGNORECASE), "TEMP tables, views, indexes and triggers"),
    (re.compile(r"(?:ATTACH|DETACH)\b", re.IGNORECASE), "ATTACH and DETACH"),
    (re.compile(r"PRAGMA\s+(?:\w+\.)?journal_mode\s*=", re.IGNORECASE), "PRAGMA journal_mode"),
    (re.compile(r"PRAGMA\s+(?:\w+\.)?legacy_alter_table\s*=", re.IGNORECASE), "PRAGMA legacy_alter_table"),
)


def refused_by_server(statement: str) -> str | None:
    """What a libSQL server (sqld) refuses in ``statement``, which runs on a local file; None if nothing."""
    code = _LITERAL_OR_COMMENT.sub(" ", statement).strip()
    return next((what for pattern, what in _SERVER_REFUSES if pattern.match(code)), None)


class SchemaContext(NamedTuple):
    """What the hazards depend on in the schema a migration starts from."""

    dependents: dict[str, tuple[str, ...]]  # table -> views and triggers whose SQL names it
    cascades: dict[str, tuple[str, ...]]  # parent table -> children whose rows a delete would change

    @classmethod
    def read(cls, connection: Queries) -> SchemaContext:
        objects = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
        ).fetchall()
        tables = [name for kind, name, _, _ in objects if kind == "table" and not name.startswith("sqlite_")]
        dependents: dict[str, list[str]] = {}
        for kind, name, _, sql in objects:
            if kind not in ("view", "trigger"):
                continue
            code = _code(sql)
            for table in tables:
                if re.search(rf"(?<![\w.]){re.escape(table)}(?!\w)", code, re.IGNORECASE):
                    dependents.setdefault(table.lower(), []).append(f"{kind} {name}")
        cascades: dict[str, list[str]] = {}
        for child in tables:
            for row in connection.execute('SELECT "table", on_delete FROM pragma_foreign_key_list(?)', (child,)):
                if str(row[1]).upper() in ("CASCADE", "SET NULL", "SET DEFAULT"):
                    cascades.setdefault(str(row[0]).lower(), []).append(child)
        return cls(
            {k: tuple(v) for k, v in dependents.items()},
            {k: tuple(sorted(set(v))) for k, v in cascades.items()},
        )


def find(statements: tuple[str, ...], *, transactional: bool, context: SchemaContext) -> list[Hazard]:
    """Every hazard in the statements of one migration, in statement order."""
    codes = [_code(statement).strip() for statement in statements]
    rebuilt = {_bare(m[2]) for code in codes if (m := _RENAME_TABLE.match(code))}
    found: list[Hazard] = []
    for statement, code in zip(statements, codes, strict=True):
        found.extend(_hazards(statement, code, transactional, context, rebuilt))
    return found


def _hazards(statement: str, code: str, transactional: bool, context: SchemaContext, rebuilt: set[str]) -> list[Hazard]:
    if transactional and _turns_journal_off(statement):
        return []  # the guard refuses it: the rehearsal reports that as the migration's error
    if transactional and _PRAGMA_SET.match(code):
        return [
            Hazard("pragma-in-transaction", statement, "a PRAGMA inside a transaction is a no-op or an error", _OPT_OUT)
        ]
    if transactional and _VACUUM.match(code):
        return [Hazard("vacuum-in-transaction", statement, "VACUUM fails inside a transaction", _OPT_OUT)]
    added = _ADD_COLUMN.match(code)
    if added and re.search(r"\bNOT\s+NULL\b", added[2], re.I) and not re.search(r"\bDEFAULT\b", added[2], re.I):
        return [
            Hazard(
                "not-null-without-default",
                statement,
                "ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows",
                "give it a DEFAULT, or add it nullable, backfill it, then rebuild the table with NOT NULL",
            )
        ]
    if dropped := _DROP_COLUMN.match(code):
        return [
            Hazard(
                "drop-column",
                statement,
                f"dropping column {_bare(dropped[2])} of {_bare(dropped[1])} destroys its data",
                "make sure nothing reads it any more; the backup taken before migrate is the way back",
            )
        ]
    if dropped := _DROP_TABLE.match(code):
        table = _bare(dropped[1])
        if table in rebuilt:
            return _rebuild_hazards(statement, table, context)
        return [
            Hazard(
                "drop-table",
                statement,
                f"dropping table {table} destroys its data",
                "rename it aside instead, or make sure its data is not needed; the backup taken before migrate"
                " is the way back",
            )
        ]
    if renamed := _RENAME_TABLE.match(code):
        table = _bare(renamed[1])
        if table in context.dependents:
            return [_dependents_hazard(statement, table, context)]
    return []


def _rebuild_hazards(statement: str, table: str, context: SchemaContext) -> list[Hazard]:
    found = []
    if table in context.dependents:
        found.append(_dependents_hazard(statement, table, context))
    if table in context.cascades:
        children = ", ".join(context.cascades[table])
        found.append(
            Hazard(
                "rebuild-parent",
                statement,
                f"rebuilding {table}, a parent of {children} with ON DELETE actions: with foreign keys on,"
                " DROP TABLE deletes or changes their rows",
                "vcp-migrate runs it with foreign key enforcement off, which is safe; never run this SQL with"
                " foreign keys on",
            )
        )
    return found


def _dependents_hazard(statement: str, table: str, context: SchemaContext) -> Hazard:
    names = ", ".join(context.dependents[table])
    return Hazard(
        "rename-referenced",
        statement,
        f"renaming or rebuilding {table}, which {names} reference(s): SQLite checks them during the rename,"
        " which fails or leaves them broken",
        "drop them before the rebuild and create them again after it, in the same migration",
    )


def _turns_journal_off(statement: str) -> bool:
    """Whether ``statement`` sets a journal mode that keeps no journal on disk (``journal``)."""
    without_comments = _LITERAL_OR_COMMENT.sub(lambda m: m.group() if m.group().startswith("'") else " ", statement)
    found = _JOURNAL_SET.match(without_comments.strip())
    return found is not None and journal.unsafe(next(value for value in found.groups() if value is not None))


def _code(sql: str) -> str:
    """The SQL without comments, string literals emptied."""
    return _LITERAL_OR_COMMENT.sub(lambda m: "''" if m.group().startswith("'") else " ", sql)


def _bare(name: str) -> str:
    """A table name without schema prefix or quotes, lower case."""
    name = name.split(".", 1)[1] if re.match(r"\w+\.", name) else name
    if name[:1] in '"[`':
        name = name[1:-1].replace('""', '"')
    return name.lower()


def short(statement: str, width: int = 60) -> str:
    """A statement on one line, cut to ``width`` characters, for error messages."""
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
