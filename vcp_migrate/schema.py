"""Schema snapshots: the database's schema as normalised, deterministic text, and diffs of two.

Tables come first, then indexes, views and triggers, each by name; SQLite's internal objects and
vcp-migrate's own tables are left out. White space outside string literals is folded, and a
table's columns and constraints stand one to a line, so a diff shows the column that changed.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import os
import re
import secrets
import stat
from pathlib import Path

from . import history
from .database import Queries, quoted
from .schema_target import HEADER as DUMP_HEADER

_KIND_ORDER = {"table": 0, "index": 1, "view": 2, "trigger": 3}
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|\[[^\]]*\]|\s+|[(),]|[^\s'\"`\[(),]+")


def snapshot(connection: Queries) -> str:
    """The normalised schema of the main database, one statement per object, ending in a newline."""
    rows = connection.execute(
        "SELECT type, name, sql FROM sqlite_master"
        " WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        " AND tbl_name NOT IN (?, ?, ?)",
        history.OURS,
    ).fetchall()
    rows.sort(key=lambda row: (_KIND_ORDER.get(row[0], 9), row[1]))
    return "".join(normalise(sql) + ";\n" for _, _, sql in rows)


def normalise(sql: str) -> str:
    """Fold white space outside literals; put a CREATE TABLE's definitions one to a line."""
    folded = _fold(_TOKEN.findall(sql.strip()))
    if not re.match(r"CREATE\s+(TEMP\s+|TEMPORARY\s+)?TABLE\b", folded, re.IGNORECASE):
        return folded
    return _table_one_definition_a_line(folded)


# SQLite's keywords: an identifier spelled like one keeps its quotes.
_KEYWORDS = frozenset(
    """ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN
    BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH
    DISTINCT DO DROP EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST
    FOLLOWING FOR FOREIGN FROM FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX
    INDEXED INITIALLY INNER INSERT INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH
    MATERIALIZED NATURAL NO NOT NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER
    PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX
    RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP
    TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW
    VIRTUAL WHEN WHERE WINDOW WITH WITHOUT""".split()
)
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(token: str) -> str:
    """A quoted identifier as plainly as it can be written: SQLite quotes names it rewrites
    (ALTER TABLE ... RENAME), so "trades" and trades must compare equal."""
    if token[:1] not in ('"', "[", "`"):
        return token
    inner = token[1:-1].replace('""', '"') if token[0] == '"' else token[1:-1]
    if _PLAIN.fullmatch(inner) and inner.upper() not in _KEYWORDS:
        return inner
    return quoted(inner)


def _fold(tokens: list[str]) -> str:
    """Join tokens with single spaces, none inside parentheses' edges or before a comma."""
    tokens = [_identifier(token) for token in tokens]
    out: list[str] = []
    for index, token in enumerate(tokens):
        if not token.isspace():
            out.append(token)
            if token == "," and index + 1 < len(tokens) and not tokens[index + 1].isspace():
                out.append(" ")
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else ")"
        if out and out[-1] not in ("(", " ") and following not in ("(", ")", ","):
            out.append(" ")
    return "".join(out)


def _table_one_definition_a_line(sql: str) -> str:
    tokens = _TOKEN.findall(sql)
    depth = 0
    head: list[str] = []
    parts: list[list[str]] = []
    tail: list[str] = []
    for token in tokens:
        if depth == 0 and not parts and token != "(":
            head.append(token)
            continue
        if token == "(":
            depth += 1
            if depth == 1:
                parts.append([])
                continue
        elif token == ")":
            depth -= 1
            if depth == 0:
                tail = []
                continue
        if depth == 0:
            tail.append(token)
        elif depth == 1 and token == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    if not parts:  # CREATE TABLE ... AS SELECT
        return sql
    lines = ",\n".join("  " + "".join(part).strip() for part in parts)
    return f"{''.join(head).strip()} (\n{lines}\n){''.join(tail).rstrip()}"


def diff(before: str, after: str, before_label: str = "before", after_label: str = "after") -> str:
    """A unified diff of two snapshots; empty when they are the same."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=before_label, tofile=after_label, lineterm=""
    )
    return "\n".join(lines)


def table_digests(connection: Queries) -> dict[str, str]:
    """A sha256 of every user table's rows, independent of rowids and of the order they came in."""
    digests = {}
    tables = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT IN (?, ?, ?)",
        history.OURS,
    ).fetchall()
    for (table,) in tables:
        count = len(connection.execute(f"SELECT * FROM {quoted(table)} LIMIT 0").description)
        order = ", ".join(str(i) for i in range(1, count + 1))
        digest = hashlib.sha256()
        for row in connection.execute(f"SELECT * FROM {quoted(table)} ORDER BY {order}"):
            digest.update(repr(row).encode())
        digests[table] = digest.hexdigest()
    return digests


_DUMP_VERSION = re.compile(r"-- version: (\d+)\n")


def dump_text(connection: Queries, version: int) -> str:
    """The schema file's content: a header with the version, then the normalised schema."""
    return DUMP_HEADER.format(version=version) + snapshot(connection)


def write_dump(path: Path, connection: Queries, version: int) -> None:
    """Write the schema file, atomically, unless it is already up to date.

    The text goes to a new file of our own beside it, renamed over it. Nothing found there is
    written through: a link at the schema file's path is replaced, its target left as it is.
    Raises OSError when the file cannot be written; no partial file is left behind.
    """
    text = dump_text(connection, version)
    if _regular_file_text(path) == text:
        return
    partial, handle = _new_file_beside(path)
    try:
        with open(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def not_written(path: Path, exc: BaseException) -> str:
    """The warning for a schema file that could not be written: why, and what to do (not the
    errno of the temporary file beside it)."""
    said = f"{path}: the schema file could not be written"
    if not path.absolute().parent.is_dir():
        return f"{said}: its folder {path.parent} does not exist (create it, or name another schema file)"
    if isinstance(exc, OSError):
        return f"{said}: {exc.strerror or exc} (check the folder's permissions and free space)"
    return f"{said}: {exc}"  # reading the database for it failed


_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _regular_file_text(path: Path) -> str | None:
    """The text of the regular file at ``path``; None for a link, pipe, directory or nothing."""
    try:
        # O_NOFOLLOW refuses a link; O_NONBLOCK keeps the open of a pipe from waiting for a writer.
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _NO_FOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        with open(handle, encoding="utf-8", errors="replace", closefd=False) as file:
            return file.read()
    finally:
        os.close(handle)


def _new_file_beside(path: Path) -> tuple[Path, int]:
    """A file created here and now (O_EXCL: never one found there, nor a link's target), with a
    name no one can plant in advance; its mode is the umask's, like any new file's."""
    for _ in range(10):
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        try:
            return partial, os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused name for the partial schema file", str(path.parent))


def read_dump(path: Path) -> tuple[int, str] | None:
    """(version, schema) from a schema file, or None if it is not one vcp-migrate wrote."""
    header, separator, body = path.read_text(encoding="utf-8", errors="replace").partition("\n\n")
    match = _DUMP_VERSION.search(header + "\n")
    if match is None or not separator:
        return None
    return int(match[1]), body
