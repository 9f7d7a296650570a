"""What Hrana's JSON carries, for the client in ``hrana``: a statement's arguments, its result
and its values, and the ``sqlite3`` exceptions a refusal becomes (``ServerError``, or
``ConstraintError`` for a constraint). Nothing of vcp_migrate is imported here either."""

from __future__ import annotations

import base64
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, TypeAlias

Value: TypeAlias = int | float | str | bytes | None
"""A value as Python's sqlite3 module returns it."""

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class ServerError(sqlite3.OperationalError):
    """The server refused a statement or a request; ``code`` is its code (``SQLITE_ERROR``,
    ``SQL_PARSE_ERROR``, ``STREAM_EXPIRED``...), ``server_message`` its message as sent."""

    def __init__(self, message: str, code: str | None, server_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.server_message = server_message
        self.sqlite_errorname = code  # where Python's sqlite3 keeps it (3.11+)


class ConstraintError(sqlite3.IntegrityError):
    """The server refused a statement that broke a constraint (UNIQUE, NOT NULL, FOREIGN KEY...)."""

    def __init__(self, message: str, code: str | None, server_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.server_message = server_message
        self.sqlite_errorname = code


@dataclass(frozen=True)
class Result:
    """What one statement returned: column names, rows of Python values, and its effect."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]
    affected_row_count: int
    last_insert_rowid: int | None


def statement_error(error: object) -> sqlite3.Error:
    """The sqlite3 exception for a statement the server refused, its message as SQLite words it."""
    fields = error if isinstance(error, dict) else {}
    raw = str(fields.get("message") or "the server refused the statement without a message")
    code = fields.get("code") if isinstance(fields.get("code"), str) else None
    message = raw.removeprefix("SQLite error: ")
    if (code or "").startswith("SQLITE_CONSTRAINT"):
        return ConstraintError(message, code, raw)
    return ServerError(message, code, raw)


def encode(value: object, index: int) -> dict[str, Any]:
    """One argument as Hrana sends it; types as sqlite3 accepts them."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, int):  # bool too, as sqlite3 stores it
        if not _INT_MIN <= value <= _INT_MAX:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return {"type": "integer", "value": str(int(value))}
    if isinstance(value, float):
        if math.isnan(value):
            return {"type": "null"}  # as sqlite3 binds NaN
        if math.isinf(value):
            raise sqlite3.ProgrammingError(
                f"argument {index}: {value} cannot be sent to a libSQL server (its protocol has no infinity)"
            )
        return {"type": "float", "value": value}
    if isinstance(value, str):
        value.encode()  # a lone surrogate: UnicodeEncodeError, as sqlite3 raises (JSON would carry it escaped)
        return {"type": "text", "value": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "blob", "base64": base64.b64encode(bytes(value)).decode("ascii")}
    raise sqlite3.ProgrammingError(f"Error binding parameter {index}: type '{type(value).__name__}' is not supported")


def _decode(url: str, value: object) -> Value:
    fields = value if isinstance(value, dict) else {}
    kind = fields.get("type")
    try:
        if kind == "null":
            return None
        if kind == "integer":
            return int(fields["value"])
        if kind == "float":
            number = fields.get("value")
            return None if number is None else float(number)  # the server sends inf and -inf as null
        if kind == "text":
            return str(fields["value"])
        if kind == "blob":
            data = str(fields.get("base64", ""))
            return base64.b64decode(data + "=" * (-len(data) % 4))  # the server leaves out the padding
    except (KeyError, TypeError, ValueError):
        pass
    raise ServerError(f"{url}: the server sent a value this client cannot read: {kind!r}", None, str(kind))


def read_result(url: str, item: dict[str, Any]) -> Result:
    response = item.get("response")
    result = response.get("result") if isinstance(response, dict) else None
    if not isinstance(result, dict):
        raise ServerError(f"{url}: the server's answer to a statement holds no result", None, "")
    try:
        rowid = result.get("last_insert_rowid")
        return Result(
            columns=tuple(str(column.get("name") or "") for column in result.get("cols") or ()),
            rows=tuple(tuple(_decode(url, value) for value in row) for row in result.get("rows") or ()),
            affected_row_count=int(result.get("affected_row_count") or 0),
            last_insert_rowid=None if rowid is None else int(rowid),
        )
    except (AttributeError, TypeError, ValueError) as exc:  # not the shapes of the protocol
        said = "the server's answer to a statement is not a Hrana result (is this a libSQL server?)"
        raise ServerError(f"{url}: {said}", None, said) from exc
