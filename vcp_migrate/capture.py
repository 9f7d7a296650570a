"""Capturing the statements a migration executes (dry runs and the hazard lint): while a
connection's ``capture`` list is set, its cursors record every statement into it."""

from __future__ import annotations

import sqlite3
from typing import Any

from .sqlite import MigrationConnection


class RecordingCursor(sqlite3.Cursor):
    """A cursor of a connection whose statements are being captured (dry runs)."""

    def execute(self, sql: str, parameters: Any = (), /) -> RecordingCursor:
        captured(self).append(_as_statement(sql, parameters))
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> RecordingCursor:
        counted = _Counted(parameters)
        cursor = super().executemany(sql, counted)
        captured(self).append(f"{_as_statement(sql)} -- executed {counted.count} time(s)")
        return cursor

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        if isinstance(self.connection, MigrationConnection) and self.connection.guarded:
            self.connection.executescript(sql_script)
            return self
        from .sqltext import split_statements

        captured(self).extend(split_statements(sql_script))
        return super().executescript(sql_script)


def captured(cursor: sqlite3.Cursor) -> list[str]:
    """The list a cursor's connection is capturing into (a throw-away one when it is not)."""
    capture = getattr(cursor.connection, "capture", None)
    return capture if capture is not None else []


class _Counted:
    """Counts the parameter sets executemany() consumes, without holding them."""

    def __init__(self, parameters: Any) -> None:
        self._iterator = iter(parameters)
        self.count = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._iterator)
        self.count += 1
        return item


def _as_statement(sql: str, parameters: Any = ()) -> str:
    """A captured statement: ends with a semicolon; parameters follow as a comment."""
    text = sql.strip()
    if not text.endswith(";"):
        text += ";"
    return f"{text} -- parameters: {parameters!r}" if parameters else text
