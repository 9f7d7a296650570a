"""Statement splitting: semicolons end statements only where SQLite says they do."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from vcp_migrate.sqltext import sections, split_statements


def test_plain_statements() -> None:
    assert split_statements("CREATE TABLE a(x);\nCREATE TABLE b(y);") == ["CREATE TABLE a(x);", "CREATE TABLE b(y);"]


def test_semicolons_in_strings_comments_and_identifiers_are_kept() -> None:
    sql = """
    INSERT INTO t VALUES ('a;b', 'it''s; fine');  -- trailing; comment
    /* block; comment */ INSERT INTO "we;ird" VALUES (1);
    INSERT INTO [br;acket] VALUES (2);
    INSERT INTO `back;tick` VALUES (3);
    """
    statements = split_statements(sql)
    assert len(statements) == 4
    assert statements[0] == "INSERT INTO t VALUES ('a;b', 'it''s; fine');"
    assert statements[1].endswith('INSERT INTO "we;ird" VALUES (1);')


def test_trigger_body_is_one_statement() -> None:
    sql = """
    CREATE TRIGGER audit AFTER INSERT ON trades BEGIN
        INSERT INTO log VALUES (new.id);
        UPDATE counts SET n = n + 1;
    END;
    SELECT 1;
    """
    statements = split_statements(sql)
    assert len(statements) == 2
    assert statements[0].startswith("CREATE TRIGGER") and statements[0].endswith("END;")


def test_comment_only_chunks_are_dropped_and_last_statement_needs_no_semicolon() -> None:
    sql = "-- only a comment;\n/* and another; */\n;\nCREATE TABLE a(x)\n-- the end"
    assert split_statements(sql) == ["CREATE TABLE a(x)\n-- the end"]


def test_empty_and_comment_only_scripts() -> None:
    assert split_statements("") == []
    assert split_statements("  -- nothing here\n/* nor here */ ;; ") == []


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b;c", "it''s", "--x;", "/*;*/", "END;"]), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_every_generated_statement_is_recovered_and_runs(parts: list[tuple[str, bool]]) -> None:
    """Statements with awkward string literals, split and run one by one, insert every row."""
    script = "".join(
        f"INSERT INTO t VALUES ('{text}');{' -- note; here' if comment else ''}\n" for text, comment in parts
    )
    statements = split_statements(script)
    assert len(statements) == len(parts)
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t(v)")
    for statement in statements:
        connection.execute(statement)
    assert [row[0] for row in connection.execute("SELECT v FROM t")] == [text.replace("''", "'") for text, _ in parts]


def test_case_end_inside_a_trigger_body_does_not_end_the_trigger() -> None:
    """Only END right after a semicolon ends a trigger, as in SQLite's own sqlite3_complete()."""
    sql = """
    CREATE TABLE a(x); CREATE TABLE log(v);
    CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN
        INSERT INTO log VALUES (CASE WHEN new.x > 0 THEN 'pos;' ELSE 'neg' END);
        INSERT INTO log SELECT CASE new.x WHEN 1 THEN 'one' END;
    END;
    INSERT INTO a VALUES (1);
    """
    statements = split_statements(sql)
    assert len(statements) == 4
    assert statements[2].startswith("CREATE TEMP TRIGGER") and statements[2].endswith("END;")
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    assert connection.execute("SELECT v FROM log").fetchall() == [("pos;",), ("one",)]


def test_keywords_inside_words_and_quoted_names_are_not_keywords() -> None:
    sql = 'CREATE TABLE trigger_log("end", [trigger]);\nCREATE TABLE "create trigger"(x);\nSELECT 1;'
    assert split_statements(sql) == [
        'CREATE TABLE trigger_log("end", [trigger]);',
        'CREATE TABLE "create trigger"(x);',
        "SELECT 1;",
    ]


def test_unterminated_literal_and_comment_run_to_the_end() -> None:
    assert split_statements("SELECT 1; SELECT 'a;b") == ["SELECT 1;", "SELECT 'a;b"]
    assert split_statements("SELECT 1; /* open; SELECT 2;") == ["SELECT 1;"]


def test_only_sqlite_white_space_is_stripped() -> None:
    """U+2028 or \\x0b around a statement is not white space to SQLite: it stays, and SQLite says so."""
    assert split_statements("\n\tSELECT 1;\r\n") == ["SELECT 1;"]
    assert split_statements("\u2028SELECT 1;") == ["\u2028SELECT 1;"]


def test_a_megabyte_statement_of_semicolons_is_one_statement_and_runs_intact() -> None:
    value = ";" * 480_000 + "x" * 520_000
    sql = f"CREATE TABLE t(v);\nINSERT INTO t VALUES ('{value}');\n"
    statements = split_statements(sql)
    assert statements == ["CREATE TABLE t(v);", f"INSERT INTO t VALUES ('{value}');"]
    connection = sqlite3.connect(":memory:")
    for statement in statements:
        connection.execute(statement)
    assert connection.execute("SELECT v FROM t").fetchone() == (value,)


ODD = "\u2028\u2029\x85\x0b\x0c\x1c\x1d\x1e\r\n"
_PIECES = [*";'\"`[]-/*\t ", "--", "/*", "*/", "END", "END;", *ODD, "é", "a", "\n-- migrate:down\n", "\n-- +goose Up"]
_texts = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


@st.composite
def _statements(draw: st.DrawFn) -> tuple[str, str]:
    """A statement inserting one random text, written as a literal beside quoted names, or in a
    trigger body; and the value it inserts ('' for the trigger, which inserts nothing)."""
    text = draw(_texts)
    literal = "'" + text.replace("'", "''") + "'"
    form = draw(st.sampled_from(["literal", "names", "trigger"]))
    if form == "names":
        double, backtick = '"' + text.replace('"', '""') + '"', "`" + text.replace("`", "``") + "`"
        return f"INSERT INTO t SELECT {literal} AS {double} FROM (SELECT 1 AS {backtick});", text
    if form == "trigger":
        body = f"INSERT INTO t VALUES (CASE WHEN 1 THEN {literal} END);"
        return f"CREATE TEMP TRIGGER IF NOT EXISTS tr AFTER DELETE ON t BEGIN {body} END;", ""
    return f"INSERT INTO t VALUES ({literal});", text


@given(st.lists(st.tuples(_statements(), st.sampled_from(["", "\n", " ", "\r\n", "\t\n", "\r"])), max_size=6))
def test_split_of_joined_statements_gives_them_back_exactly(parts: list[tuple[tuple[str, str], str]]) -> None:
    """Literals holding ; ' " -- /* and every odd line separator: each statement comes back as
    written, SQLite agrees it is complete, and each value arrives as written."""
    script = "".join(statement + separator for (statement, _), separator in parts)
    statements = split_statements(script)
    assert statements == [statement for (statement, _), _ in parts]
    assert all(sqlite3.complete_statement(statement) for statement in statements)
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t(v)")
    for statement in statements:
        connection.execute(statement)
    expected = [value for (statement, value), _ in parts if not statement.startswith("CREATE")]
    assert [row[0] for row in connection.execute("SELECT v FROM t")] == expected


_joined = st.lists(st.tuples(_statements(), st.sampled_from(["\n", " ", "\r\n", "\r"])), max_size=4)


@given(_joined, _joined)
def test_sections_of_a_file_built_from_statements_give_them_back(
    up: list[tuple[tuple[str, str], str]], down: list[tuple[tuple[str, str], str]]
) -> None:
    """Marker lines, other tools' markers and odd line separators inside literals and quoted
    names are text: each section splits into exactly the statements written."""
    up_text = "".join(statement + separator for (statement, _), separator in up)
    down_text = "".join(statement + separator for (statement, _), separator in down)
    found = sections(f"-- migrate:up\n{up_text}\n-- migrate:down transaction:false\r\n{down_text}", "x.sql")
    assert split_statements(found["up"].text) == [statement for (statement, _), _ in up]
    assert split_statements(found["down"].text) == [statement for (statement, _), _ in down]
    assert found["up"].transactional and not found["down"].transactional


def test_a_word_is_ascii_letters_digits_underscore_dollar_and_every_character_above_ascii() -> None:
    from vcp_migrate.sqltext import _WORD

    word = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
    for code in range(0x80):
        assert (_WORD.fullmatch(chr(code)) is not None) == (chr(code) in word), hex(code)
    for code in (0x80, 0xE9, 0x3000, 0xD800, 0xFFFF, 0x10000, 0x10FFFF):
        assert _WORD.fullmatch(chr(code)) is not None, hex(code)
