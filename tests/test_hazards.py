"""The hazard lint, pure: statements and a schema summary in, hazards out."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vcp_migrate.hazards import KINDS, SchemaContext, find

EMPTY = SchemaContext({}, {})


@pytest.mark.parametrize(
    ("statements", "transactional", "problems"),
    [
        (("CREATE TABLE t (x)",), True, []),
        (("PRAGMA journal_mode = WAL",), True, ["a PRAGMA inside a transaction is a no-op or an error"]),
        (("PRAGMA journal_mode = WAL",), False, []),
        (("PRAGMA foreign_keys",), True, []),
        # Refused by the guard, which the rehearsal reports as the migration's error: not a hazard to acknowledge.
        (("PRAGMA journal_mode = OFF",), True, []),
        (("pragma /* why */ main.journal_mode = 'Mem'",), True, []),
        (("PRAGMA journal_mode = offline",), True, ["a PRAGMA inside a transaction is a no-op or an error"]),
        (("VACUUM",), True, ["VACUUM fails inside a transaction"]),
        (("VACUUM",), False, []),
        (
            ("ALTER TABLE t ADD COLUMN y INTEGER NOT NULL",),
            True,
            ["ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that has rows"],
        ),
        (("ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 0",), True, []),
        (("ALTER TABLE t DROP COLUMN y",), True, ["dropping column y of t destroys its data"]),
        (('DROP TABLE IF EXISTS "Trades"',), True, ["dropping table trades destroys its data"]),
        (("SELECT 'DROP TABLE t'", "-- DROP TABLE t"), True, []),
        (
            ("CREATE TABLE t_new (x)", "INSERT INTO t_new SELECT * FROM t", "DROP TABLE t"),
            True,
            ["dropping table t destroys its data"],
        ),
    ],
    ids=[
        "plain create",
        "pragma in a transaction",
        "pragma outside one",
        "pragma read",
        "journal off, refused",
        "journal in memory, spelled otherwise, refused",
        "not a journal mode",
        "vacuum in a transaction",
        "vacuum outside one",
        "not null without default",
        "not null with default",
        "drop column",
        "drop quoted table",
        "words in literals and comments",
        "copy then drop, no rename",
    ],
)
def test_hazards_of_plain_statements(statements: tuple[str, ...], transactional: bool, problems: list[str]) -> None:
    found = find(statements, transactional=transactional, context=EMPTY)
    assert [hazard.problem for hazard in found] == problems


REBUILD = (
    "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT)",
    "INSERT INTO parent_new SELECT id, name FROM parent",
    "DROP TABLE parent",
    "ALTER TABLE parent_new RENAME TO parent",
)


def context_of(schema: str) -> SchemaContext:
    connection = sqlite3.connect(":memory:")
    connection.executescript(schema)
    return SchemaContext.read(connection)


@pytest.mark.parametrize(
    ("schema", "problems"),
    [
        ("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);", []),
        (
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);"
            "CREATE TABLE child (p REFERENCES parent(id) ON DELETE CASCADE);",
            [
                "rebuilding parent, a parent of child with ON DELETE actions: with foreign keys on, DROP TABLE"
                " deletes or changes their rows"
            ],
        ),
        (
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);CREATE VIEW names AS SELECT name FROM parent;",
            [
                "renaming or rebuilding parent, which view names reference(s): SQLite checks them during the"
                " rename, which fails or leaves them broken"
            ],
        ),
        (
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);CREATE TABLE child (p REFERENCES parent(id));",
            [],
        ),
    ],
    ids=["no dependents", "cascading child", "view on it", "child without actions"],
)
def test_hazards_of_a_table_rebuild(schema: str, problems: list[str]) -> None:
    found = find(REBUILD, transactional=True, context=context_of(schema))
    assert [hazard.problem for hazard in found] == problems


def test_a_hazard_names_its_statement_and_the_safer_way() -> None:
    (hazard,) = find(("ALTER TABLE t ADD COLUMN y NOT NULL",), transactional=True, context=EMPTY)
    assert str(hazard) == (
        "'ALTER TABLE t ADD COLUMN y NOT NULL': ADD COLUMN ... NOT NULL without a DEFAULT fails on a table that"
        " has rows; give it a DEFAULT, or add it nullable, backfill it, then rebuild the table with NOT NULL"
    )


def test_schema_context_reads_dependents_and_cascades() -> None:
    context = context_of(
        "CREATE TABLE a (id INTEGER PRIMARY KEY);"
        "CREATE TABLE b (a_id REFERENCES a(id) ON DELETE SET NULL);"
        "CREATE TRIGGER t AFTER INSERT ON b BEGIN SELECT 1 FROM a; END;"
    )
    assert context.cascades == {"a": ("b",)}
    assert context.dependents == {"a": ("trigger t",), "b": ("trigger t",)}


@pytest.mark.parametrize(
    ("statements", "schema", "kinds"),
    [
        (("PRAGMA foreign_keys = ON",), "", ["pragma-in-transaction"]),
        (("VACUUM",), "", ["vacuum-in-transaction"]),
        (("ALTER TABLE t ADD y NOT NULL",), "", ["not-null-without-default"]),
        (("ALTER TABLE t DROP COLUMN y",), "", ["drop-column"]),
        (("DROP TABLE t",), "", ["drop-table"]),
        (("ALTER TABLE parent RENAME TO old",), "CREATE VIEW v AS SELECT * FROM parent;", ["rename-referenced"]),
        (
            REBUILD,
            "CREATE VIEW v AS SELECT * FROM parent;CREATE TABLE child (p REFERENCES parent(id) ON DELETE CASCADE);",
            ["rename-referenced", "rebuild-parent"],
        ),
    ],
)
def test_each_hazard_has_a_stable_name(statements: tuple[str, ...], schema: str, kinds: list[str]) -> None:
    """The names are what migrations acknowledge (-- vcp:allow NAME): renaming one breaks them."""
    context = context_of("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);" + schema)
    assert [hazard.kind for hazard in find(statements, transactional=True, context=context)] == kinds


def test_every_hazard_name_is_known_and_documented() -> None:
    assert list(KINDS) == [
        "pragma-in-transaction",
        "vacuum-in-transaction",
        "not-null-without-default",
        "drop-column",
        "drop-table",
        "rename-referenced",
        "rebuild-parent",
        "empty-down",
    ]
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for name, meaning in KINDS.items():
        assert f"| `{name}` | {meaning} |" in readme
