"""Statement splitting: semicolons end statements only where SQLite says they do."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from vcp_migrate.sqlite import split_statements


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
