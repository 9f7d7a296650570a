"""SQL text by SQLite's lexical rules: statements, and the sections and hazard acknowledgements
of a SQL migration file.

One pass over the text finds string literals ('...', with '' inside), quoted names ("...",
`...`, [...]), comments (-- to the end of the line, /* to */ or the end of the text) and trigger
bodies, so a semicolon, a marker or a line break inside any of them is never taken for
structure. Statements and sections are slices of the original text: every character of a
literal arrives in the database as written.

Only \\n, \\r\\n and \\r end a line here. Python's str.splitlines() also breaks at \\x0b, \\x0c,
\\x1c-\\x1e, \\x85, U+2028 and U+2029, which may sit inside a literal. SQLite itself ends a --
comment at \\n only, so splitting does too, and a file whose -- comment ends at a lone \\r before
more SQL is refused rather than run with that SQL commented out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from .errors import MigrationFileError

# SQLite's white space: what its tokenizer and sqlite3_complete() skip (not \v, not Unicode spaces).
SPACE = " \t\n\f\r"

# The token classes and state machine of SQLite's sqlite3_complete() (complete.c). A semicolon
# ends a statement when it leads back to START. CREATE [TEMP] TRIGGER enters TRIGGER, where only
# "; END ;" leads out: END counts only right after a semicolon, so the END of a CASE inside a
# trigger body (always in the middle of a statement) never ends the trigger.
_SEMI, _WS, _OTHER, _EXPLAIN, _CREATE, _TEMP, _TRIGGER, _END = range(8)
_START, _NORMAL, _AFTER_EXPLAIN, _AFTER_CREATE, _IN_TRIGGER, _TRIGGER_SEMI, _TRIGGER_END = range(7)
_TRANSITIONS: tuple[tuple[int, ...], ...] = (
    # SEMI   WS  OTHER  EXPLAIN  CREATE  TEMP  TRIGGER  END
    (_START, _START, _NORMAL, _AFTER_EXPLAIN, _AFTER_CREATE, _NORMAL, _NORMAL, _NORMAL),  # START
    (_START, _NORMAL, _NORMAL, _NORMAL, _NORMAL, _NORMAL, _NORMAL, _NORMAL),  # NORMAL
    (_START, _AFTER_EXPLAIN, _AFTER_EXPLAIN, _NORMAL, _AFTER_CREATE, _NORMAL, _NORMAL, _NORMAL),  # EXPLAIN
    (_START, _AFTER_CREATE, _NORMAL, _NORMAL, _NORMAL, _AFTER_CREATE, _IN_TRIGGER, _NORMAL),  # CREATE
    (_TRIGGER_SEMI, *[_IN_TRIGGER] * 7),  # inside CREATE TRIGGER
    (_TRIGGER_SEMI, _TRIGGER_SEMI, *[_IN_TRIGGER] * 5, _TRIGGER_END),  # ; inside a trigger
    (_START, _TRIGGER_END, *[_IN_TRIGGER] * 6),  # ; END inside a trigger
)
_KEYWORDS = {
    "explain": _EXPLAIN,
    "create": _CREATE,
    "temp": _TEMP,
    "temporary": _TEMP,
    "trigger": _TRIGGER,
    "end": _END,
}
# A word: ASCII letters, digits, _ and $, and every character above ASCII. Written as "no ASCII
# but those", which compiles in 0.2 ms; the range up to U+10FFFF written out took 3.7 ms, at
# every start of a command that loads a migration.
_WORD = re.compile(r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]+")
_SPACES = re.compile(r"[ \t\n\f\r]+")
# In NORMAL and IN_TRIGGER only a semicolon changes the state: skip to the next character that
# could start a semicolon, a literal, a quoted name or a comment, at the speed of the regex engine.
_PLAIN = re.compile(r"[^;'\"`\[\-/]+")
_SKIPPING = (_NORMAL, _IN_TRIGGER)


def _token(sql: str, pos: int) -> tuple[int, int]:
    """The class of the token at ``pos`` and where it ends, as sqlite3_complete() reads it.

    A '' inside a literal reads as two adjacent literals, which changes no boundary.
    """
    char = sql[pos]
    if char in SPACE:
        match = _SPACES.match(sql, pos)
        assert match is not None
        return _WS, match.end()
    if char == ";":
        return _SEMI, pos + 1
    if char == "-" and sql.startswith("-", pos + 1):
        end = sql.find("\n", pos)  # SQLite ends a -- comment at \n only; see _check_lone_cr
        return _WS, len(sql) if end == -1 else end
    if char == "/" and sql.startswith("*", pos + 1):
        end = sql.find("*/", pos + 2)
        return _WS, len(sql) if end == -1 else end + 2
    if char in "'\"`[":
        end = sql.find("]" if char == "[" else char, pos + 1)
        return _OTHER, len(sql) if end == -1 else end + 1
    word = _WORD.match(sql, pos)
    if word is None:
        return _OTHER, pos + 1
    return _KEYWORDS.get(word.group().lower(), _OTHER) if word.end() - pos <= 9 else _OTHER, word.end()


def statement_spans(sql: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each statement in ``sql``, its ending semicolon included, in one pass.

    A statement runs from just after the previous one; a span holding only white space,
    comments and semicolons is skipped; a last statement without its semicolon is kept.
    """
    state, start, code, pos, size = _START, 0, False, 0, len(sql)
    while pos < size:
        if state in _SKIPPING:
            plain = _PLAIN.match(sql, pos)
            if plain is not None:
                pos = plain.end()
                if pos == size:
                    break
        kind, pos = _token(sql, pos)
        state = _TRANSITIONS[state][kind]
        if kind == _SEMI and state == _START:
            if code:
                yield start, pos
            start, code = pos, False
        elif kind != _WS and kind != _SEMI:
            code = True
    if code:
        yield start, size


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements, as SQLite itself delimits them.

    Semicolons in string literals, quoted names, comments and trigger bodies (BEGIN ... END) are
    kept. Chunks that hold only comments are dropped; a last statement without its semicolon is
    kept. Each statement is the exact text, stripped of white space around it.
    """
    return [sql[start:end].strip(SPACE) for start, end in statement_spans(sql)]


def first_words(sql: str, count: int) -> list[str]:
    """The first ``count`` words of a statement, lower case, white space and comments skipped;
    fewer when something other than a word comes first."""
    words: list[str] = []
    pos, size = 0, len(sql)
    while pos < size and len(words) < count:
        kind, end = _token(sql, pos)
        if kind != _WS:
            if _WORD.fullmatch(sql, pos, end) is None:
                break
            words.append(sql[pos:end].lower())
        pos = end
    return words


def words(sql: str) -> Iterator[str]:
    """The words, names and literals of ``sql`` in order, as written but without their quotes
    (a name may be quoted with "", [], `` or, where SQLite allows it, ''), white space and
    comments skipped; any other character is a word of its own."""
    pos, size = 0, len(sql)
    while pos < size:
        kind, end = _token(sql, pos)
        if kind != _WS:
            quote = sql[pos]
            if quote in "'\"`[":
                closing = "]" if quote == "[" else quote
                inner = sql[pos + 1 : end - 1] if sql.endswith(closing, pos + 1, end) else sql[pos + 1 : end]
                yield inner if quote == "[" else inner.replace(quote * 2, quote)
            else:
                yield sql[pos:end]
        pos = end


class Section(NamedTuple):
    """The up or the down of a SQL migration: its text exactly as written, and its option."""

    text: str
    transactional: bool


class Allowance(NamedTuple):
    """A ``-- vcp:allow NAME ...`` comment: its line, and the hazard names it acknowledges."""

    line: int
    names: tuple[str, ...]


class SqlFile(NamedTuple):
    """A SQL migration file read: its sections keyed "up" and "down", and its acknowledgements."""

    sections: dict[str, Section]
    allowances: tuple[Allowance, ...]


_OPENER = re.compile(r"['\"`\[]|--|/\*")
_LINE_END = re.compile(r"[\r\n]")
_EXACT_MARKER = re.compile(r"-- migrate:(up|down)(?:[ \t]+(.*?))?\s*")
# Lines that are meant as markers but are not ours: misspellings, other spacing or case, and other
# tools' markers. Taken as comments, they would run a down section as part of up.
_NEAR_MARKER = re.compile(r"--\s*(?:\+\s*(?:migrate|goose)\b|migrate\s*(?::|[-_\s]*(?:up|down)\b))", re.IGNORECASE)
_MARKER_HINT = (
    "write '-- migrate:up' or '-- migrate:down' at the start of a line;"
    " other tools' markers such as '-- +goose Down' are not read"
)
_FIX = "fix the file"
# A hazard acknowledgement: a -- comment beginning '-- vcp:allow', then names separated by commas or
# spaces. Anything else that starts like one (other spacing or case, '-- vcp:alow', '-- vcp-allow',
# any '-- vcp:' word) is an error: taken as a comment, a misspelt one would silently not count.
_EXACT_ALLOW = re.compile(r"-- vcp:allow(?:[ \t]+(.*))?")
_NEAR_ALLOW = re.compile(r"--\s*vcp\s*(?::|[-_\s]*allow)", re.IGNORECASE)
_ALLOW_HINT = "write '-- vcp:allow NAME', naming the hazards separated by commas or spaces"


def line_number(text: str, pos: int) -> int:
    """The line ``pos`` is on, counting \\n, \\r\\n and \\r only."""
    return text.count("\n", 0, pos) + text.count("\r", 0, pos) - text.count("\r\n", 0, pos) + 1


def sections(text: str, where: str) -> dict[str, Section]:
    """The sections of a SQL migration file, keyed "up" and "down" (see ``read``)."""
    return read(text, where).sections


def read(text: str, where: str) -> SqlFile:
    """The sections of a SQL migration file and its hazard acknowledgements, in one pass.

    A marker counts only on a line that begins outside any comment, literal or quoted name. An
    acknowledgement is a -- comment beginning '-- vcp:allow', anywhere outside literals, quoted
    names and block comments (a trailing comment too), in either section or before the first.
    Raises MigrationFileError naming ``where`` and the line: a NUL character, a line that looks
    like a marker or an acknowledgement but is not one, an acknowledgement naming nothing, a
    second section of one kind, an unknown option, SQL before the first marker, no up section,
    SQL that SQLite would read as part of a -- comment.
    """
    nul = text.find("\x00")
    if nul != -1:
        raise MigrationFileError(
            f"line {line_number(text, nul)}: holds a NUL character, which SQLite cannot run",
            where=where,
            hint="remove it; write X'00' for a zero byte in a blob",
        )
    markers: list[tuple[str, bool, int, int]] = []  # direction, transactional, line start, body start
    allowances: list[Allowance] = []
    stray: int | None = None  # where the first SQL before any marker is
    pos = 0
    while True:
        opener = _OPENER.search(text, pos)
        gap_end = len(text) if opener is None else opener.start()
        if not markers and stray is None and text[pos:gap_end].strip():
            stray = pos + len(text[pos:gap_end]) - len(text[pos:gap_end].lstrip())
        if opener is None:
            break
        start, kind = opener.start(), opener.group()
        if kind == "--":
            line_end = _LINE_END.search(text, start)
            pos = len(text) if line_end is None else line_end.start()
            marker = _marker(text, start, pos, where)
            if marker is not None:
                direction, transactional, line_start = marker
                if direction in (m[0] for m in markers):
                    raise MigrationFileError(
                        f"line {line_number(text, start)}: a second '-- migrate:{direction}'", where=where, hint=_FIX
                    )
                markers.append((direction, transactional, line_start, _next_line(text, pos)))
            else:
                allowance = _allowance(text, start, pos, where)
                if allowance is not None:
                    allowances.append(allowance)
                _check_lone_cr(text, pos, where)
        elif kind == "/*":
            end = text.find("*/", start + 2)
            pos = len(text) if end == -1 else end + 2
        else:
            if not markers and stray is None:
                stray = start
            end = text.find("]" if kind == "[" else kind, start + 1)
            pos = len(text) if end == -1 else end + 1
    if not any(m[0] == "up" for m in markers):
        raise MigrationFileError("has no '-- migrate:up' section", where=where, hint="add one above the up SQL")
    if stray is not None:
        raise MigrationFileError(
            f"line {line_number(text, stray)}: SQL before the first '-- migrate:up' or '-- migrate:down'",
            where=where,
            hint="move it into a section",
        )
    ends = [m[2] for m in markers[1:]] + [len(text)]
    found = {m[0]: Section(text[m[3] : end], m[1]) for m, end in zip(markers, ends, strict=True)}
    return SqlFile(found, tuple(allowances))


def _allowance(text: str, start: int, end: int, where: str) -> Allowance | None:
    """The acknowledgement the -- comment text[start:end] makes, if it is one.

    Raises MigrationFileError if it looks like one but is not, or names no hazard.
    """
    exact = _EXACT_ALLOW.fullmatch(text, start, end)
    if exact is None and _NEAR_ALLOW.match(text, start, end) is None:
        return None
    number = line_number(text, start)
    if exact is None:
        raise MigrationFileError(
            f"line {number}: {text[start:end].strip()!r} looks like a hazard acknowledgement but is not one",
            where=where,
            hint=_ALLOW_HINT,
        )
    names = tuple(name for name in re.split(r"[\s,]+", exact.group(1) or "") if name)
    if not names:
        raise MigrationFileError(f"line {number}: '-- vcp:allow' names no hazard", where=where, hint=_ALLOW_HINT)
    return Allowance(number, names)


def _marker(text: str, start: int, end: int, where: str) -> tuple[str, bool, int] | None:
    """(direction, transactional, start of its line) if the -- comment text[start:end] is a
    section marker.

    Raises MigrationFileError if it looks like one but is not, or does not begin its line.
    """
    comment = text[start:end]
    near = _NEAR_MARKER.match(comment)
    exact = _EXACT_MARKER.fullmatch(comment)
    if near is None and exact is None:
        return None
    number = line_number(text, start)
    indent = start
    while indent > 0 and text[indent - 1] in " \t":
        indent -= 1
    if indent > 0 and text[indent - 1] not in "\r\n":
        raise MigrationFileError(
            f"line {number}: {comment.strip()!r} looks like a section marker but does not begin the line",
            where=where,
            hint=_MARKER_HINT,
        )
    if exact is None:
        raise MigrationFileError(
            f"line {number}: {comment.strip()!r} looks like a section marker but is not one",
            where=where,
            hint=_MARKER_HINT,
        )
    option = exact.group(2) or ""
    if option not in ("", "transaction:false", "transaction:true"):
        raise MigrationFileError(
            f"line {number}: unknown option {option!r}", where=where, hint="the only option is transaction:false"
        )
    return exact.group(1), option != "transaction:false", indent


def _next_line(text: str, line_end: int) -> int:
    """Where the line after the one ending at ``line_end`` begins."""
    return line_end + (2 if text.startswith("\r\n", line_end) else 1 if line_end < len(text) else 0)


def _check_lone_cr(text: str, comment_end: int, where: str) -> None:
    """Refuse SQL that SQLite would skip: it ends a -- comment at \\n only, so after a comment
    that ends at a carriage return alone (old Mac line endings), the next lines up to a \\n are
    still part of the comment when the statement runs."""
    if not text.startswith("\r", comment_end) or text.startswith("\r\n", comment_end):
        return
    after = comment_end
    while after < len(text) and text[after] in " \t\f\r":
        after += 1
    if after == len(text) or text[after] == "\n" or text.startswith("--", after):
        return
    raise MigrationFileError(
        f"line {line_number(text, after)}: SQLite would read this line as part of the '--' comment before it,"
        " which ends with a carriage return alone",
        where=where,
        hint="save the file with \\n or \\r\\n line endings",
    )
