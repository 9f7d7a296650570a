"""One statement of the schema as normalised text: white space folded outside string literals,
quoted names and comments (they are kept as written), a quoted name that needs no quotes
unquoted, and a table's columns and constraints one to a line, so a diff shows the column that
changed. Pure text: the snapshot that reads the database is in ``schema``.
"""

from __future__ import annotations

import re
from itertools import islice

from .database import quoted

# SQLite's white space: not \v, nor Unicode spaces, which SQLite reads as part of a name.
_SPACE = " \t\n\f\r"
# One token per lexical unit of SQLite: a string literal ('...', '' inside), a quoted name ("...",
# `...`, [...]), a comment (-- to the end of the line; /* to */ or the end of the text), white
# space, one of ( ) , and a run of anything else. Every character is in exactly one token, an
# unterminated one running to the end: the tokens joined are the text, nothing is dropped (an
# apostrophe in a comment once opened a string that ran on over the literals after it).
_TOKEN = re.compile(
    r"'[^']*(?:''[^']*)*'?"
    r'|"[^"]*(?:""[^"]*)*"?'
    r"|`[^`]*(?:``[^`]*)*`?"
    r"|\[[^\]]*\]?"
    r"|--[^\n]*"
    r"|/\*[\s\S]*?(?:\*/|\Z)"
    r"|[ \t\n\f\r]+"
    r"|[(),]"
    r"|(?:[^ \t\n\f\r'\"`\[(),/-]|-(?!-)|/(?!\*))+"
)
_QUOTED_NAME = re.compile(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]')  # a closed one
_SEPARATORS = (" ", "\n")  # the white space _fold leaves: one space, or one line break


def tokenise(sql: str) -> list[str]:
    """``sql`` cut into SQLite's tokens, white space and comments included: they join back to ``sql``."""
    return _TOKEN.findall(sql)


def normalise(sql: str) -> str:
    """Fold white space outside literals, quoted names and comments, which are kept byte for
    byte (a quoted name that needs no quotes loses them); put a CREATE TABLE's definitions one
    to a line. A line comment always ends a line, so nothing after it is commented out."""
    folded = _fold(tokenise(sql.strip(_SPACE)))
    words = [word.upper() for word in islice((t for t in folded if t not in _SEPARATORS and not _is_comment(t)), 3)]
    if words[:2] == ["CREATE", "TABLE"] or (words[1:2] in (["TEMP"], ["TEMPORARY"]) and words[2:] == ["TABLE"]):
        return _table_one_definition_a_line(folded)
    return _joined(folded, "\n")


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
    if token[:1] not in ('"', "[", "`") or not _QUOTED_NAME.fullmatch(token):
        return token
    inner = token[1:-1] if token[0] == "[" else token[1:-1].replace(token[0] * 2, token[0])
    if _PLAIN.fullmatch(inner) and inner.upper() not in _KEYWORDS:
        return inner
    return quoted(inner)


def _is_comment(token: str) -> bool:
    return token.startswith(("--", "/*"))


def _fold(tokens: list[str]) -> list[str]:
    """The tokens with white space as single separators: none inside parentheses' edges or
    before a comma, one after a comma; a line break after a line comment (it ends at one) and
    before a comment that began a line (the layout keeps it on its own line)."""
    tokens = [_identifier(token) for token in tokens]
    out: list[str] = []
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ")"
        if token[0] not in _SPACE:
            out.append(token)
            if token.startswith("--"):
                out.append("\n")
            elif token == "," and following[0] not in _SPACE:
                out.append(" ")
        elif out and out[-1] not in ("(", *_SEPARATORS):
            if "\n" in token and _is_comment(following):
                out.append("\n")
            elif following not in ("(", ")", ","):
                out.append(" ")
    return out


def _joined(tokens: list[str], line_break: str) -> str:
    """The folded tokens as text, without separators at either end, each line break written
    as ``line_break``; ending in a line break when the last token is a line comment."""
    start, end = 0, len(tokens)
    while start < end and tokens[start] in _SEPARATORS:
        start += 1
    while end > start and tokens[end - 1] in _SEPARATORS:
        end -= 1
    text = "".join(line_break if token == "\n" else token for token in tokens[start:end])
    return text + "\n" if end > start and tokens[end - 1].startswith("--") else text


def _table_one_definition_a_line(tokens: list[str]) -> str:
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
        return _joined(tokens, "\n")
    lines = [_joined(head, "\n") + " ("]
    bodies, notes = _definitions_and_comments(parts)
    for number, (body, note) in enumerate(zip(bodies, notes, strict=True), 1):
        line = "  " + _joined(body, "\n  ") + ("," if number < len(bodies) else "")
        comments = _joined(note, "\n  ").removesuffix("\n")  # the layout's own line break follows
        lines.append(f"{line} {comments}" if comments else line)
    return "\n".join(lines) + "\n)" + (" " if tail[:1] == [" "] else "") + _joined(tail, "\n")


def _definitions_and_comments(parts: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Each definition, and the comment that ends its line after its comma, laid out so that the
    text made of them normalises to itself (a database made from the schema file then shows no
    drift, and its schema file does not change):

    - block comments just before a definition's comma stay there: ``a INT /* key */,``;
    - the first line comment before the comma goes after it (a comma after it would be commented
      out) and ends the line: ``a INT, -- key``; the comments after that one begin the next
      definition, as they would in the text made;
    - a line comment just after the comma ends the line too, unless one already does.

    The last definition has no comma: the comments after it end its line as written.
    """
    bodies: list[list[str]] = []
    notes: list[list[str]] = []
    carried: list[str] = []  # what followed the line comment moved after the previous comma
    for number, part in enumerate(parts, 1):
        start = 1 if part[:1] == [" "] else 0
        if notes and not notes[-1] and part[start : start + 1] and part[start].startswith("--"):
            notes[-1] = [part[start]]
            part = part[start + 1 :]
        if carried:
            lead = 1 if part[:1] and part[0] in _SEPARATORS else 0
            # after a line comment, its own line break; else the white space that was there
            gap = [] if carried[-1] == "\n" else part[:lead] or [" "]
            part = carried + gap + part[lead:]
        end = len(part)
        while end and (part[end - 1] in _SEPARATORS or _is_comment(part[end - 1])):
            end -= 1
        run = part[end:]
        line_comment = next((at for at, token in enumerate(run) if token.startswith("--")), None)
        if number == len(parts) or line_comment is None:
            last = number == len(parts)
            bodies.append(part[:end] if last else part)
            notes.append(run if last else [])
            carried = []
        else:
            bodies.append(part[: end + line_comment])
            notes.append([run[line_comment]])
            carried = run[line_comment + 1 :]
    return bodies, notes
