"""validate: every problem with the files, drift, the schema file, round trips and hazard lint;
each bad case is built for real and must be reported, and validate never writes a file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from .conftest import (
    TRADES,
    Project,
    applied_1_3_then_2,
    blobs,
    console_script,
    five_thousand_rows,
    modified_missing_and_out_of_order,
    still_five_thousand_rows,
    trading,
    trigger_on_the_history,
    with_output_closed,
    with_output_missing,
)


def populate(project: Project) -> None:
    connection = sqlite3.connect(project.db)
    connection.executemany("INSERT INTO trades (symbol, quantity) VALUES (?, ?)", [("AAPL", 1), ("MSFT", 2)])
    connection.commit()
    connection.close()


def kinds(problems: list) -> list[tuple[str, str, int | None]]:  # type: ignore[type-arg]
    return [(p.kind, p.severity, p.version) for p in problems]


def test_validate_finds_every_kind_of_problem(project: Project) -> None:
    modified_missing_and_out_of_order(project)
    project.write("005_e.py", "def up(c): pass\n")
    project.write("006_f.py", "def up(c) pass\n")
    project.write("007_g.sql", "-- migrate:up\n")
    project.write("7_h.sql", "-- migrate:up\n-- migrate:down\n")
    project.write("junk.sql", "")
    problems = project.manager().validate()
    kinds = sorted((p.kind, p.version) for p in problems)
    assert kinds == [
        ("drift", None),  # cannot be checked: 2's file is missing
        ("duplicate", 7),
        ("empty-down", 3),
        ("load", 6),
        ("missing", 2),
        ("modified", 1),
        ("name", None),
        ("no-down", 5),
        ("no-down", 7),
        ("not-checked", 6),  # hazards: 3 and 5 were linted, not 6 and after
        ("out-of-order", 3),
        ("schema-file", None),  # cannot be checked: 2's file is missing
    ]
    assert all(str(p).count("\n") == 0 for p in problems)


def test_validate_checks_integrity_and_foreign_keys(project: Project) -> None:
    project.sql(
        "001_a.sql",
        "CREATE TABLE p(id INTEGER PRIMARY KEY);\nCREATE TABLE c(id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));",
        "DROP TABLE c;\nDROP TABLE p;",
    )
    project.manager().migrate()
    assert project.manager().validate() == []
    connection = sqlite3.connect(project.db)
    connection.execute("INSERT INTO c VALUES (1, 99)")
    connection.commit()
    connection.close()
    (problem,) = project.manager().validate()
    assert problem.kind == "foreign-key"
    assert str(problem) == f"{project.db}: foreign_key_check: table c row 1 references a missing row in p"


def test_validate_without_database_checks_only_files(project: Project) -> None:
    project.sql("001_a.sql", "SELECT 1;", "SELECT 1;")
    assert project.manager().validate() == []
    assert not project.db.exists()


# -- drift and the schema file --------------------------------------------------------------------


def test_index_added_by_hand_in_production_is_drift(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    connection = sqlite3.connect(project.db)
    connection.execute("CREATE INDEX by_hand ON trades(quantity)")
    connection.commit()
    connection.close()
    result = project.cli("validate")
    assert result.exit_code == 1
    assert "the schema differs from what the applied migrations produce (drift" in result.stdout
    assert "+CREATE INDEX by_hand ON trades(quantity);" in result.stdout
    data = json.loads(project.cli("validate", "--json").stdout)
    (drift,) = [p for p in data["problems"] if p["kind"] == "drift"]
    assert "+CREATE INDEX by_hand ON trades(quantity);" in drift["diff"]


def test_column_altered_outside_migrations_is_drift(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    connection = sqlite3.connect(project.db)
    connection.execute("ALTER TABLE trades ADD COLUMN note TEXT")
    connection.commit()
    connection.close()
    (problem,) = project.manager().validate()
    assert problem.kind == "drift" and problem.diff is not None and "+  note TEXT" in problem.diff


def test_edited_applied_file_shows_its_diff_and_the_drift_it_implies(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    project.sql("002_index.sql", "CREATE INDEX trades_symbol ON trades(symbol, quantity);", "DROP INDEX trades_symbol;")
    problems = project.manager().validate()
    assert kinds(problems) == [("modified", "error", 2), ("drift", "error", None), ("schema-file", "error", None)]
    # The database was not changed outside migrations: the edit may be the difference, and they say so.
    assert "changed outside migrations)" not in problems[1].message
    assert "now that version 2 changed since it ran: that edit, or a change outside migrations" in problems[1].message
    assert "(version 2 changed since it ran: that edit may be the difference): restore what" in problems[2].message
    assert problems[0].diff is not None
    assert "-CREATE INDEX trades_symbol ON trades(symbol);" in problems[0].diff
    assert "+CREATE INDEX trades_symbol ON trades(symbol, quantity);" in problems[0].diff


def test_an_applied_migration_that_cannot_be_replayed_says_which_check_it_stopped(project: Project) -> None:
    """One that needed a table made by hand fails on an empty database: drift and the schema
    file each say they could not be checked, and what to do (two lines that differ)."""
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TABLE legacy (x)")
    project.sql("001_a.sql", "CREATE TABLE a AS SELECT x FROM legacy;", "DROP TABLE a;")
    project.manager(allow_existing=True).migrate()
    messages = [problem.message for problem in project.manager().validate()]
    failed = "replaying it on an empty database fails: statement 1 failed: no such table: legacy, so"
    fix = "could not be done; make it run on what the migrations before it build"
    assert messages == [f"{failed} the check for drift {fix}", f"{failed} the check of the schema file {fix}"]


def test_a_trigger_put_on_the_history_table_by_hand_is_an_error(project: Project) -> None:
    """A snapshot leaves the history tables' objects out, so drift cannot see it; every command
    that writes the history refuses to run while it is there, so validate says so and what to do.
    The pending migration is checked as it will run once the trigger is dropped, not blamed for it."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    trigger_on_the_history(project)
    project.sql("003_c.sql", "CREATE TABLE c (x);", "DROP TABLE c;")
    before = project.digest()
    result = project.cli("validate", "--roundtrip")
    assert result.exit_code == 1
    assert result.stdout == (
        f"{project.db}: trigger(s) on the history tables that are not vcp-migrate's (hand_trg) could rewrite the"
        " history, and migrate, rollback, redo, baseline and repair refuse to run while they are there; drop them"
        ' with DROP TRIGGER "hand_trg": vcp-migrate\'s history must be written only by vcp-migrate\n'
        "failed: 1 error(s), 0 warning(s).\n"
    )
    (problem,) = json.loads(project.cli("validate", "--json").stdout)["problems"]
    assert (problem["kind"], problem["severity"], problem["file"]) == ("history-trigger", "error", str(project.db))
    assert project.digest() == before and project.history() == [1, 2]
    trigger_on_the_history(project, drop=True)
    assert project.manager().validate(roundtrip=True) == []


def test_a_migration_without_a_down_does_not_stop_the_checks_that_replay_ups(project: Project) -> None:
    """Drift, the schema file and the lint replay ups only: a missing down (an error of its own)
    used to skip them all silently, hiding an index made by hand."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.write("003_p.py", "def up(c):\n    c.execute('CREATE TABLE p (x)')\n")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE INDEX hand ON a(x)")
        connection.commit()
    project.sql("004_d.sql", "DROP TABLE b;", "CREATE TABLE b (x);")
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{project.dir / '003_p.py'}: has no down, so it cannot be rolled back; add one"
    assert lines[1] == (
        f"{project.db}: the schema differs from what the applied migrations produce (drift: changed outside migrations)"
    )
    assert "+CREATE INDEX hand ON a(x);" in lines
    assert any(line.startswith(f"warning: {project.dir / '004_d.sql'}: drop-table:") for line in lines)
    assert lines[-1] == "failed: 2 error(s), 1 warning(s)."
    problems = json.loads(project.cli("validate", "--json", "--roundtrip").stdout)["problems"]
    assert [(p["kind"], p["severity"], p["version"]) for p in problems] == [
        ("no-down", "error", 3),
        ("drift", "error", None),
        ("hazard", "warning", 4),
        ("not-checked", "warning", 3),
    ]
    assert "+CREATE INDEX hand ON a(x);" in problems[1]["diff"]
    assert problems[3]["message"] == (
        "round trips not checked: it has no down, and they run every migration up and down; fix the file, then"
        " validate again"
    )
    assert project.digest() == before and project.history() == [1, 2, 3]


def test_a_check_that_cannot_replay_a_file_says_so_and_the_others_still_run(project: Project) -> None:
    """An applied file that no longer loads stops drift and the schema file, which say so (text and
    --json), naming it; the pending migration after it is still linted on the database's copy."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    broken = project.write("002_b.py", "def up(c) pass\n")
    (project.dir / "002_b.sql").unlink()
    project.sql("003_c.sql", "DROP TABLE a;", "CREATE TABLE a (x);")
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 1
    said = "it cannot be loaded (see its error), and the check replays"
    assert f"warning: {broken}: drift not checked: {said} the up of every applied migration; fix the file," in (
        result.stdout
    )
    assert f"warning: {broken}: the schema file not checked: {said} every migration up to 2; fix the file" in (
        result.stdout
    )
    assert f"warning: {project.dir / '003_c.sql'}: drop-table:" in result.stdout
    problems = json.loads(project.cli("validate", "--json").stdout)["problems"]
    assert [(p["kind"], p["version"], p["file"]) for p in problems if p["kind"] == "not-checked"] == [
        ("not-checked", 2, str(broken)),
        ("not-checked", 2, str(broken)),
    ]
    assert project.digest() == before and project.history() == [1, 2]


def test_hand_edited_schema_file_disagrees_with_the_migrations(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    dump = project.dir / "schema.sql"
    dump.write_text(dump.read_text().replace("symbol TEXT", "symbol VARCHAR(8)"))
    (problem,) = project.manager().validate()
    assert (problem.kind, str(problem.path)) == ("schema-file", str(dump))
    assert problem.message == (
        "disagrees with the migrations up to version 2: restore what was edited (this file or a migration) from"
        " version control, or write the file again from a database at version 2 that shows no drift:"
        " vcp-migrate baseline 2"
    )
    assert project.cli("baseline", "2").exit_code == 0  # what the message says: the database has no drift
    assert project.manager().validate() == [] and project.history() == [1, 2]
    dump.write_text("CREATE TABLE whatever(x);\n")
    (problem,) = project.manager().validate()
    assert "has no '-- version: N' header" in problem.message


def test_a_schema_file_whose_comments_an_earlier_release_laid_out_otherwise_is_a_warning(project: Project) -> None:
    """Releases before 2026-12-07 put a block comment before a comma after it (a layout that did not
    normalise to itself): such a file, the same schema, made validate fail (exit 1) until the next
    change rewrote it. A difference in the SQL itself is still an error."""
    project.sql("001_t.sql", "CREATE TABLE t (a INT /* key */, b INT -- two\n -- three\n, c INT);", "DROP TABLE t;")
    project.manager().migrate()
    dump = project.dir / "schema.sql"
    written = dump.read_text()
    assert "  a INT /* key */,\n" in written
    dump.write_text(written.replace("  a INT /* key */,\n", "  a INT, /* key */\n"))  # as the earlier release wrote it
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 0, result.output
    assert (
        "only in where comments are; the next change writes it again, or now: vcp-migrate baseline 1" in result.output
    )
    assert project.cli("validate", "--strict").exit_code == 1
    kept = dump.read_text()
    dump.write_text(written.replace("  a INT /* key */,\n", "  a TEXT, /* key */\n"))
    (problem,) = project.manager().validate()
    assert problem.severity == "error"
    assert problem.message.startswith("disagrees with the migrations up to version 1: restore what was edited")
    assert project.digest() == before and project.history() == [1]
    dump.write_text(kept)
    assert project.cli("baseline", "1").exit_code == 0  # what the warning says: it records nothing
    assert dump.read_text() == written and project.manager().validate() == []
    assert project.history() == [1]


# -- round trips ----------------------------------------------------------------------------------


def test_reversible_migrations_pass_the_round_trip_and_the_database_is_untouched(project: Project) -> None:
    trading(project)
    project.manager().migrate(1)
    populate(project)
    project.sql(
        "003_fees.sql",
        "ALTER TABLE trades ADD COLUMN fees REAL NOT NULL DEFAULT 0;\nUPDATE trades SET fees = quantity * 0.5;",
        "ALTER TABLE trades DROP COLUMN fees;",
    )
    before = project.digest()
    assert project.manager().validate(roundtrip=True) == []
    assert project.digest() == before


def test_down_that_does_not_undo_up_is_reported_with_the_diff(project: Project) -> None:
    trading(project)
    project.sql("003_forgetful.sql", "CREATE INDEX trades_quantity ON trades(quantity);", "SELECT 1;")
    result = project.cli("validate", "--roundtrip")
    assert result.exit_code == 1
    assert (
        f"{project.dir / '003_forgetful.sql'}: down does not undo up: the schema is not back as it was" in result.stdout
    )
    assert "+CREATE INDEX trades_quantity ON trades(quantity);" in result.stdout


def test_down_that_loses_rows_of_an_existing_table(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    populate(project)
    project.sql("003_archive.sql", "DELETE FROM trades WHERE quantity > 1;", "SELECT 1;")
    (problem,) = [p for p in project.manager().validate(roundtrip=True) if p.kind == "roundtrip"]
    assert problem.message == "down does not undo up: the rows of trades are not back as they were"


def test_not_null_column_that_passes_on_an_empty_table_fails_on_a_populated_one(project: Project) -> None:
    trading(project)
    project.sql(
        "003_venue.sql", "ALTER TABLE trades ADD COLUMN venue TEXT NOT NULL;", "ALTER TABLE trades DROP COLUMN venue;"
    )
    assert [p.kind for p in project.manager().validate(roundtrip=True)] == ["hazard"]  # empty: only the warning
    project.manager().migrate(2)
    populate(project)
    problems = project.manager().validate(roundtrip=True)
    assert kinds(problems) == [("hazard", "warning", 3), ("fails", "error", 3)]
    assert "Cannot add a NOT NULL column with default value NULL" in problems[1].message
    assert project.history() == [1, 2] and "venue" not in project.columns("trades")


def test_applied_migration_whose_down_breaks_the_up_is_caught_going_back(project: Project) -> None:
    project.sql("001_trades.sql", TRADES, "DROP TABLE trades;")
    project.sql("002_view.sql", "CREATE VIEW big AS SELECT * FROM trades WHERE quantity > 1;", "DROP TABLE trades;")
    project.manager().migrate()
    problems = [p for p in project.manager().validate(roundtrip=True) if p.kind == "roundtrip"]
    assert [(p.version, p.message.split(":")[0]) for p in problems] == [(2, "up fails on the copy of the database")]


def test_round_trip_without_a_database_starts_from_an_empty_one(project: Project) -> None:
    trading(project)
    project.sql("003_bad_down.sql", "CREATE TABLE extra(x);", "SELECT 1;")
    problems = project.manager().validate(roundtrip=True)
    assert [(p.kind, p.version) for p in problems] == [("roundtrip", 3)]
    assert not project.db.exists()


# -- hazard lint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "expected"),
    [
        ("PRAGMA foreign_keys = ON;", "a PRAGMA inside a transaction is a no-op or an error"),
        ("ALTER TABLE trades ADD COLUMN venue TEXT NOT NULL;", "NOT NULL without a DEFAULT"),
        ("DROP TABLE trades;", "dropping table trades destroys its data"),
        ("ALTER TABLE trades DROP COLUMN quantity;", "dropping column quantity of trades destroys its data"),
    ],
)
def test_hazards_in_sql_files_name_file_statement_and_alternative(project: Project, up: str, expected: str) -> None:
    trading(project)
    project.manager().migrate()
    project.sql("003_risky.sql", up, "SELECT 1;")
    result = project.cli("validate", "--json")
    hazards = [p for p in json.loads(result.stdout)["problems"] if p["kind"] == "hazard"]
    assert len(hazards) == 1 and hazards[0]["severity"] == "warning"
    assert hazards[0]["file"] == str(project.dir / "003_risky.sql")
    assert expected in hazards[0]["message"] and up.rstrip(";") in hazards[0]["message"]
    assert result.exit_code == 0
    assert project.cli("validate", "--strict").exit_code == 1


def test_rename_under_a_view_and_rebuild_of_a_parent_with_cascades(project: Project) -> None:
    trading(project)
    project.sql(
        "003_children.sql",
        "CREATE TABLE fills (id INTEGER PRIMARY KEY, trade_id INTEGER REFERENCES trades(id) ON DELETE CASCADE);\n"
        "CREATE VIEW big_trades AS SELECT * FROM trades WHERE quantity > 100;",
        "DROP VIEW big_trades;\nDROP TABLE fills;",
    )
    project.manager().migrate()
    project.sql(
        "004_rebuild.sql",
        "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL DEFAULT '', quantity INTEGER);\n"
        "INSERT INTO trades_new SELECT * FROM trades;\n"
        "DROP TABLE trades;\n"
        "ALTER TABLE trades_new RENAME TO trades;",
        "SELECT 1;",
    )
    messages = [p.message for p in project.manager().validate() if p.kind in ("hazard", "fails")]
    assert any("rebuilding trades, which view big_trades reference(s)" in m for m in messages)
    assert any("rebuilding trades, a parent of fills with ON DELETE actions" in m for m in messages)
    assert not any("destroys its data" in m for m in messages)  # a rebuild keeps the data


def test_hazards_in_the_sql_a_python_migration_executes(project: Project) -> None:
    trading(project)
    project.write(
        "003_py.py",
        "def up(connection):\n    connection.execute('PRAGMA journal_mode = WAL')\ndef down(connection):\n    pass\n",
    )
    (problem,) = [p for p in project.manager().validate() if p.kind == "hazard"]
    assert "'PRAGMA journal_mode = WAL;': a PRAGMA inside a transaction" in problem.message
    assert "transactional = False" in problem.message


def test_pragma_in_a_non_transactional_migration_is_fine(project: Project) -> None:
    trading(project)
    project.write(
        "003_wal.sql",
        "-- migrate:up transaction:false\nPRAGMA journal_mode = WAL;\n"
        "-- migrate:down transaction:false\nPRAGMA journal_mode = DELETE;\n",
    )
    assert project.manager().validate() == []


def test_applied_migrations_are_not_linted(project: Project) -> None:
    trading(project)
    project.sql(
        "003_drop.sql",
        "DROP INDEX trades_symbol;\nCREATE TABLE gone(x);\nDROP TABLE gone;",
        "CREATE INDEX trades_symbol ON trades(symbol);",
    )
    assert [p.kind for p in project.manager().validate()] == ["hazard"]
    project.manager().migrate()
    assert project.manager().validate() == []


def test_rebuilt_and_renamed_objects_are_not_drift(project: Project) -> None:
    """SQLite quotes the names it rewrites on RENAME: "trades" and trades are the same table."""
    trading(project)
    project.sql(
        "003_rename_column.sql",
        "ALTER TABLE trades RENAME COLUMN quantity TO qty;",
        "ALTER TABLE trades RENAME COLUMN qty TO quantity;",
    )
    project.sql(
        "004_rebuild.sql",
        "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT, qty INTEGER CHECK (qty > 0));\n"
        "INSERT INTO trades_new SELECT * FROM trades;\nDROP TABLE trades;\nALTER TABLE trades_new RENAME TO trades;\n"
        "CREATE INDEX trades_symbol ON trades(symbol);",
        "CREATE TABLE trades_old (id INTEGER PRIMARY KEY, symbol TEXT, qty INTEGER);\n"
        "INSERT INTO trades_old SELECT * FROM trades;\nDROP TABLE trades;\nALTER TABLE trades_old RENAME TO trades;\n"
        "CREATE INDEX trades_symbol ON trades(symbol);",
    )
    project.manager().migrate(2)
    populate(project)
    assert project.manager().validate(roundtrip=True) == []
    project.manager().migrate()
    assert 'CREATE TABLE "trades"' in project.query("SELECT sql FROM sqlite_master WHERE name = 'trades'")[0][0]  # type: ignore[operator]
    assert project.manager().validate(roundtrip=True) == []


def test_validate_reads_one_snapshot_while_another_process_migrates(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the concurrency campaign: history and schema must come from one read transaction,
    or a migration committed between the two reads looks like drift."""
    from vcp_migrate import history

    trading(project)
    project.manager().migrate(1)
    sqlite3.connect(project.db).execute("PRAGMA journal_mode = WAL").connection.close()
    real_read = history.read_current

    def read_then_someone_migrates(connection: sqlite3.Connection, *, with_id: bool) -> object:
        found = real_read(connection, with_id=with_id)
        monkeypatch.setattr(history, "read_current", real_read)
        project.manager().migrate()  # another process, between our history and schema reads
        return found

    monkeypatch.setattr(history, "read_current", read_then_someone_migrates)
    problems = project.manager().validate()
    assert [p.kind for p in problems if p.kind == "drift"] == []
    assert project.history() == [1, 2]


# -- validate rehearses without writing any file --------------------------------------------------


def test_validate_does_not_let_a_migration_write_another_file(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql(
        "002_side.sql",
        "ATTACH 'side.db' AS side;\nCREATE TABLE side.t (x);\nINSERT INTO side.t VALUES (1);",
        "SELECT 1;",
    )
    project.sql("003_self.sql", f"ATTACH '{project.db}' AS live;\nINSERT INTO live.a VALUES (1);", "SELECT 1;")
    before = project.digest()
    result = project.cli("validate", "--roundtrip", "--json")
    assert not (project.root / "side.db").exists()
    assert project.digest() == before and project.query("SELECT count(*) FROM a") == [(0,)]
    import json

    problems = json.loads(result.output)["problems"]
    unrehearsable = [p for p in problems if p["kind"] == "unrehearsable"]
    assert unrehearsable and all(p["severity"] == "warning" for p in unrehearsable)
    assert unrehearsable[0]["version"] == 2
    assert "statement 1 cannot be rehearsed: it would write to the file 'side.db'" in unrehearsable[0]["message"]
    strict = project.cli("validate", "--strict")
    assert strict.exit_code == 1 and not (project.root / "side.db").exists()


def test_validate_warns_when_an_applied_migration_cannot_be_replayed(project: Project) -> None:
    project.write(
        "001_copy.sql",
        "-- migrate:up transaction:false\nCREATE TABLE a (x);\nVACUUM INTO 'snapshot.db';\n"
        "-- migrate:down\nDROP TABLE a;\n",
    )
    project.manager(backup=False).migrate()
    (project.root / "snapshot.db").unlink()
    problems = project.manager().validate()
    assert [(p.kind, p.severity) for p in problems] == [("unrehearsable", "warning")] * len(problems)
    assert problems and not (project.root / "snapshot.db").exists()


def test_validate_reports_a_file_attached_past_the_guards(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_past.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
        "    connection.execute(\"ATTACH 'past.db' AS past\")\n\n"
        "def down(connection):\n    pass\n",
    )
    before = project.digest()
    problems = project.manager().validate()
    assert [(p.kind, p.severity, p.version) for p in problems] == [("unrehearsable", "warning", 2)]
    assert "it attached the file" in problems[0].message and "past vcp-migrate's guards" in problems[0].message
    assert project.digest() == before and project.history() == [1]


# -- acknowledged hazards: '-- vcp:allow NAME' and allow_hazards ----------------------------------

REBUILD_TRADES = (
    "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL DEFAULT '', quantity INTEGER);\n"
    "INSERT INTO trades_new SELECT * FROM trades;\n"
    "DROP TABLE trades;\n"
    "ALTER TABLE trades_new RENAME TO trades;"
)
REBUILD_WARNING = (
    "rebuild-parent: 'DROP TABLE trades;': rebuilding trades, a parent of fills with ON DELETE actions:"
    " with foreign keys on, DROP TABLE deletes or changes their rows; vcp-migrate runs it with foreign key"
    " enforcement off, which is safe; never run this SQL with foreign keys on"
)


def with_children(project: Project) -> None:
    """trades and its index applied, then fills whose rows a delete of a trade cascades to."""
    trading(project)
    project.sql(
        "003_fills.sql",
        "CREATE TABLE fills (id INTEGER PRIMARY KEY, trade_id INTEGER REFERENCES trades(id) ON DELETE CASCADE);",
        "DROP TABLE fills;",
    )
    project.manager().migrate()


def test_an_acknowledged_rebuild_is_listed_and_strict_passes(project: Project) -> None:
    with_children(project)
    path = project.sql("004_rebuild.sql", f"-- vcp:allow rebuild-parent\n{REBUILD_TRADES}", "SELECT 1;")
    before = project.digest()
    result = project.cli("validate", "--strict")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"acknowledged: {path}: {REBUILD_WARNING}",
        "OK: no problems found (1 hazard(s) acknowledged).",
    ]
    data = json.loads(project.cli("validate", "--strict", "--json").stdout)
    assert data["ok"] is True
    (problem,) = data["problems"]
    assert (problem["kind"], problem["severity"], problem["hazard"], problem["version"]) == (
        "hazard",
        "acknowledged",
        "rebuild-parent",
        4,
    )
    assert project.digest() == before and project.history() == [1, 2, 3]


def test_the_same_rebuild_unacknowledged_fails_strict_and_says_how_to_acknowledge(project: Project) -> None:
    with_children(project)
    path = project.sql("004_rebuild.sql", REBUILD_TRADES, "SELECT 1;")
    assert project.cli("validate").exit_code == 0
    result = project.cli("validate", "--strict")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"warning: {path}: {REBUILD_WARNING} (if reviewed and safe, acknowledge it in the file:"
        " '-- vcp:allow rebuild-parent')",
        "failed: 0 error(s), 1 warning(s) (--strict)",
    ]
    data = json.loads(project.cli("validate", "--strict", "--json").stdout)
    assert data["ok"] is False
    assert [(p["severity"], p["hazard"]) for p in data["problems"]] == [("warning", "rebuild-parent")]


@pytest.mark.parametrize(("allowed", "code"), [("{'rebuild-parent'}", 0), ("['drop-table']", 1), ("()", 1)])
def test_a_python_migration_acknowledges_with_allow_hazards(project: Project, allowed: str, code: int) -> None:
    with_children(project)
    statements = REBUILD_TRADES.split("\n")
    project.write(
        "004_rebuild.py",
        f"allow_hazards = {allowed}\n\ndef up(connection):\n"
        + "".join(f"    connection.execute({s.rstrip(';')!r})\n" for s in statements)
        + "\ndef down(connection):\n    pass\n",
    )
    result = project.cli("validate", "--strict")
    assert result.exit_code == code, result.output
    (problem,) = [p for p in project.manager().validate() if p.kind == "hazard"]
    assert problem.hazard == "rebuild-parent"
    assert problem.severity == ("acknowledged" if code == 0 else "warning")
    if code:
        assert "acknowledge it in the file: allow_hazards = {'rebuild-parent'})" in problem.message


def test_a_hazard_not_acknowledged_still_fails_strict_beside_one_that_is(project: Project) -> None:
    with_children(project)
    path = project.sql(
        "004_rebuild.sql",
        f"-- vcp:allow rebuild-parent\n{REBUILD_TRADES}\nALTER TABLE trades DROP COLUMN quantity;",
        "ALTER TABLE trades ADD COLUMN quantity INTEGER;",
    )
    result = project.cli("validate", "--strict")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"acknowledged: {path}: {REBUILD_WARNING}"
    assert lines[1].startswith(f"warning: {path}: drop-column: 'ALTER TABLE trades DROP COLUMN quantity;'")
    assert lines[1].endswith("(if reviewed and safe, acknowledge it in the file: '-- vcp:allow drop-column')")
    assert lines[2:] == ["failed: 0 error(s), 1 warning(s), 1 acknowledged (--strict)"]
    assert project.cli("validate").exit_code == 0


@pytest.mark.parametrize(
    "hidden",
    ["SELECT '\n-- vcp:allow rebuild-parent\n';", "/*\n-- vcp:allow rebuild-parent\n*/"],
    ids=["string literal", "block comment"],
)
def test_an_acknowledgement_in_a_literal_or_block_comment_does_not_count(project: Project, hidden: str) -> None:
    with_children(project)
    project.sql("004_rebuild.sql", f"{hidden}\n{REBUILD_TRADES}", "SELECT 1;")
    result = project.cli("validate", "--strict")
    assert result.exit_code == 1
    assert "warning: " in result.stdout and "acknowledged" not in result.stdout.splitlines()[-1]


def test_validate_says_what_to_do_as_migrate_does(project: Project) -> None:
    """A near-miss acknowledgement and a version 0: each line says what to do."""
    project.write("001_a.sql", "-- migrate:up\n-- vcp: allow drop-column\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    project.write("000_x.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    lines = project.cli("validate").stdout.splitlines()
    assert any(line.endswith("naming the hazards separated by commas or spaces)") for line in lines)
    assert any("000_x.sql: version must be between 1 and" in line and line.endswith("; renumber it") for line in lines)


def test_quiet_validate_prints_no_ok_line_but_still_the_failures(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert project.cli("validate").stdout == "OK: no problems found.\n"
    assert project.cli("-q", "validate").stdout == ""
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b(x);\n")  # no down
    failed = project.cli("-q", "validate")
    assert failed.exit_code == 1 and failed.stdout.splitlines()[-1] == "failed: 1 error(s), 0 warning(s)."


def test_an_unknown_hazard_name_fails_validate_and_changes_nothing(project: Project) -> None:
    with_children(project)
    path = project.sql("004_rebuild.sql", f"-- vcp:allow rebuild-parnet\n{REBUILD_TRADES}", "SELECT 1;")
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}: line 2: '-- vcp:allow' names an unknown hazard 'rebuild-parnet'; the known hazards are"
        " pragma-in-transaction, vacuum-in-transaction, not-null-without-default, drop-column, drop-table,"
        " rename-referenced, rebuild-parent, empty-down (fix the name)",
        f"warning: {path}: hazards not checked: it cannot be loaded (see its error), and each pending migration"
        " is linted on what the ones before it leave, so none from it on was; fix the file, then validate again",
        "failed: 1 error(s), 1 warning(s).",
    ]
    assert project.digest() == before and project.history() == [1, 2, 3] and "fills" in project.tables()
    assert project.cli("migrate").exit_code == 1
    assert project.digest() == before and project.history() == [1, 2, 3]


def test_copies_are_temporary_databases_on_disk_and_are_closed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate runs migrations on copies on disk, not in memory: memory stays flat whatever the
    database's size. Each is SQLite's temporary database (no name: its file is unlinked as soon
    as SQLite opens it), closed when the check ends, even when it finds a failing migration."""
    from vcp_migrate import scratch

    made: list[tuple[scratch.ScratchConnection, str, str]] = []
    real = scratch.database

    def recording() -> scratch.ScratchConnection:
        connection = real()
        (_, _, name), (journal,) = (
            connection.execute("PRAGMA database_list").fetchone(),
            connection.execute("PRAGMA journal_mode").fetchone(),
        )
        made.append((connection, name, journal))
        return connection

    monkeypatch.setattr(scratch, "database", recording)
    project.sql("001_a.sql", "CREATE TABLE a (x);\nINSERT INTO a VALUES (1);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    assert project.manager().validate(roundtrip=True) == []
    assert [(name, journal) for _, name, journal in made] == [("", "delete")] * 2  # lint's and the trip's, on disk
    project.sql("003_bad.sql", "INSERT INTO nowhere VALUES (1);", "DELETE FROM nowhere;")
    assert [p.kind for p in project.manager().validate(roundtrip=True)] == ["fails"]
    assert len(made) == 4
    for connection, _, _ in made:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            connection.execute("SELECT 1")
    assert project.history() == [1]


def test_where_sqlite_keeps_temporary_databases_in_memory_a_copy_is_a_named_file_removed_at_close(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A build with SQLITE_TEMP_STORE=2 or 3 would hold the whole copy in memory: a named file
    in Python's temporary folder instead, as before, with its journal removed when it closes."""
    import tempfile

    from vcp_migrate import scratch

    monkeypatch.setattr(scratch, "_TEMPORARY", ":memory:")  # what such a build makes of it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    connection = scratch.database()
    path = Path(connection.scratch_path)
    assert path.parent == tmp_path and path.name.startswith("vcp-migrate-scratch-")
    connection.execute("BEGIN")
    connection.execute("CREATE TABLE t (x)")
    assert path.is_file() and Path(f"{path}-journal").is_file()
    connection.execute("COMMIT")
    connection.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="the copy's open file is seen in /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_validate_leaves_no_copy_in_the_temporary_folder(project: Project, how: signal.Signals) -> None:
    """A copy of the database outlived a validate killed while a pending migration ran on it, for
    good: SQLite's temporary database is unlinked as it is opened, so it goes with the process."""
    folder = project.root / "tmp"
    folder.mkdir()
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    blobs(project.db, 8)  # more than SQLite's cache holds: the copy is written to its file
    started = project.root / "started"
    slow = f"import time\ndef up(c):\n    open({str(started)!r}, 'w').close()\n    time.sleep(60)\n"
    project.write("002_slow.py", slow + "def down(c):\n    pass\n")
    before = project.digest()
    command = [str(console_script()), "validate", "--db", str(project.db), "--dir", str(project.dir)]
    env = {k: v for k, v in os.environ.items() if k != "SQLITE_TMPDIR"} | {"TMPDIR": str(folder)}
    process = subprocess.Popen(command, cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), process.communicate()
        opened = [os.readlink(fd) for fd in Path(f"/proc/{process.pid}/fd").iterdir()]
        while_running = list(folder.iterdir())
        process.send_signal(how)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -how
    assert list(folder.iterdir()) == []
    project.write("002_slow.py", "def up(c):\n    pass\ndef down(c):\n    pass\n")
    again = subprocess.run(command, cwd=project.root, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "the schema differs" in again.stdout  # the table made outside migrations
    assert list(folder.iterdir()) == []
    assert project.digest() == before and project.history() == [1]
    # The copy was on disk there (not in memory), with no name from the moment it was opened.
    assert any(link.startswith(f"{folder}/") and link.endswith(" (deleted)") for link in opened), opened
    assert while_running == []


def test_validate_with_standard_output_closed_says_so(project: Project) -> None:
    """Rich would exit 1 on its own, silently: the line says what happened."""
    trading(project)
    project.manager().migrate()
    command = [str(console_script()), "validate", "--db", str(project.db), "--dir", str(project.dir)]
    assert with_output_closed(command, project.root) == (
        1,
        "Error: standard output was closed before all was printed; the command went on to its end\n",
    )


@pytest.mark.parametrize("options", [[], ["--json"]])
def test_validate_with_no_standard_output_at_all_says_so(project: Project, options: list[str]) -> None:
    """``validate >&-`` in a CI job exited 0 without a word: what it found was never seen."""
    trading(project)
    project.manager().migrate()
    before = project.digest()
    command = [str(console_script()), "validate", *options, "--db", str(project.db), "--dir", str(project.dir)]
    assert with_output_missing(command, project.root) == (
        1,
        "Error: standard output was closed from the start, so nothing the command printed could be seen;"
        " the command went on to its end\n",
    )
    assert project.digest() == before


def test_validate_json_holds_only_json_when_a_rehearsed_migration_prints(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    up = "def up(c):\n    print('hello')\n    c.execute('CREATE TABLE b (x)')\n"
    project.write("002_b.py", up + "def down(c):\n    c.execute('DROP TABLE b')\n")
    project.manager().migrate(target=1)
    before = project.db.read_bytes()
    command = [
        str(console_script()),
        "validate",
        "--json",
        "--roundtrip",
        "--db",
        str(project.db),
        "--dir",
        str(project.dir),
    ]
    result = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True and "hello" in result.stderr
    assert project.db.read_bytes() == before


def test_an_empty_down_section_is_a_warning_and_a_new_file_none(project: Project) -> None:
    """Rolled back, it records the migration undone and changes nothing: the next up then fails."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "")
    problems = project.manager().validate()
    assert [(p.kind, p.severity, p.version) for p in problems] == [("empty-down", "warning", 1)]
    assert "its down section is empty" in str(problems[0])
    assert project.cli("validate").exit_code == 0 and project.cli("validate", "--strict").exit_code == 1
    project.write("001_a.sql", "-- migrate:up\n-- migrate:down\n")  # as 'new --sql' makes it: nothing to undo
    assert project.manager().validate() == []
    project.sql("001_a.sql", "-- vcp:allow empty-down\nCREATE TABLE IF NOT EXISTS a (x);", "")  # reviewed
    assert [(p.kind, p.severity) for p in project.manager().validate()] == [("empty-down", "acknowledged")]
    assert project.cli("validate", "--strict").exit_code == 0


def test_a_schema_file_that_cannot_be_replayed_for_a_missing_file_is_a_warning(project: Project) -> None:
    """It was an error, with a diff that came only from the missing file's absence."""
    trading(project)
    project.manager().migrate()
    (project.dir / "002_index.sql").unlink()
    problems = {p.kind: p for p in project.manager().validate()}
    assert problems["missing"].severity == "error"
    said = problems["schema-file"]
    assert said.severity == "warning" and said.diff is None
    assert str(said).endswith("cannot be checked: the file of applied version(s) 2 is missing")


def test_after_an_out_of_order_migrate_the_schema_file_is_checked_in_the_order_of_application(
    project: Project,
) -> None:
    """The schema file written after 3, then 2 (out of order), holds t(a, c, b), as the database
    does: replayed in version order it was (a, b, c), and validate said it disagreed."""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "DROP TABLE t;")
    project.sql("003_c.sql", "ALTER TABLE t ADD COLUMN c;", "ALTER TABLE t DROP COLUMN c;")
    project.manager().migrate()
    project.sql("002_b.sql", "ALTER TABLE t ADD COLUMN b;", "ALTER TABLE t DROP COLUMN b;")
    project.manager().migrate(allow_out_of_order=True)
    before = project.digest()
    assert "CREATE TABLE t ( a, c, b );" in " ".join((project.dir / "schema.sql").read_text().split())
    assert project.manager().validate() == []
    assert project.digest() == before


def test_a_schema_file_written_by_a_run_after_validate_read_the_history_still_agrees(project: Project) -> None:
    """validate reads the history, then the schema file: a migrate between the two wrote the file
    for migrations the history read did not have. They are replayed after those it had (only
    those were replayed, and the file was said to disagree: seen in the concurrency campaign)."""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "DROP TABLE t;")
    project.sql("002_u.sql", "CREATE TABLE u(a);", "DROP TABLE u;")
    project.manager().migrate()
    read_before = project.root / "history-read.db"
    shutil.copyfile(project.db, read_before)
    project.sql("003_v.sql", "CREATE TABLE v(a);", "DROP TABLE v;")
    project.manager().migrate()  # the schema file now holds t, u and v, at version 3
    shutil.copyfile(read_before, project.db)  # the database as validate's history read found it
    before = project.digest()
    assert project.manager().validate() == []
    assert project.digest() == before


@pytest.mark.parametrize("how", ["rolled back after an out-of-order migrate", "merged below the applied ones"])
def test_a_migration_pending_below_the_applied_ones_is_not_replayed_into_the_schema_file(
    project: Project, how: str
) -> None:
    """1 and 3 applied, 2 pending below 3 (rolled back, as the migration applied last, after
    1, 3 then 2; or a merged branch's): the schema file, at version 3, rightly holds t1 and t3.
    No migrate without allow_out_of_order applies 2, so it is not replayed into what the file
    should hold (it was, and validate said the file disagreed)."""
    for version in (1, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate()
    project.sql("002_t2.sql", "CREATE TABLE t2(x);", "DROP TABLE t2;")
    if how.startswith("rolled back"):
        project.manager().migrate(allow_out_of_order=True)
        assert [r.version for r in project.manager().rollback()] == [2]
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 1
    assert result.output == (
        f"{project.dir / '002_t2.sql'}: pending below the highest applied version 3; migrate refuses it unless"
        " out-of-order migrations are allowed\nfailed: 1 error(s), 0 warning(s).\n"
    )
    assert project.digest() == before
    assert project.tables() == {"t1", "t3"} and project.history() == [1, 3]
    assert "t2" not in (project.dir / "schema.sql").read_text()


def test_a_schema_file_written_by_a_rollback_after_validate_read_the_history_still_agrees(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1, 3 then 2 applied; validate reads the history, then a rollback undoes 2 (the last applied)
    and writes the schema file (t1 and t3, at version 3), then validate reads it. What the history
    read had applied up to version 3 (t1, t3, t2) is not what the file holds, and the file was said
    to disagree; the history read again after the file says why, and the file agrees with it."""
    from vcp_migrate import schema

    applied_1_3_then_2(project)
    read_dump = schema.read_dump
    rolled_back: list[int] = []

    def after_a_rollback(path: Path) -> tuple[int, str] | None:
        if not rolled_back:
            rolled_back.extend(r.version for r in project.manager(backup=False).rollback())
        return read_dump(path)

    monkeypatch.setattr(schema, "read_dump", after_a_rollback)
    assert project.manager().validate() == []
    assert rolled_back == [2] and project.history() == [1, 3] and project.tables() == {"t1", "t3"}


def test_after_an_out_of_order_migrate_drift_and_round_trips_follow_the_order_of_application(
    project: Project,
) -> None:
    """3 then 2 each add a column to t: the database has (a, c, b), which a replay in version
    order, or a round trip that rolls 3 back first, would call drift or a broken down. (No schema
    file: a fresh database migrated in version order does get (a, b, c).)"""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "DROP TABLE t;")
    project.sql("003_c.sql", "ALTER TABLE t ADD COLUMN c;", "ALTER TABLE t DROP COLUMN c;")
    project.manager(dump_schema=False).migrate()
    project.sql("002_b.sql", "ALTER TABLE t ADD COLUMN b;", "ALTER TABLE t DROP COLUMN b;")
    project.manager(dump_schema=False).migrate(allow_out_of_order=True)
    before = project.digest()
    assert project.columns("t") == ["a", "c", "b"]
    assert project.manager(dump_schema=False).validate(roundtrip=True) == []
    assert project.digest() == before


@pytest.mark.parametrize("mode", ["OFF", "memory"])
def test_a_pending_migration_that_takes_the_rollback_journal_off_disk_is_an_error(project: Project, mode: str) -> None:
    """Refused inside its transaction, which its rehearsal says as an error: not the warning that a
    PRAGMA there is a no-op or an error (SQLite accepts these before the first write)."""
    five_thousand_rows(project)
    project.sql("002_bad.sql", f"PRAGMA journal_mode = {mode};\nUPDATE t SET v = 'y';", "UPDATE t SET v = 'x';")
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 1
    what, then = ("turn the rollback journal off", "a failed statement or a crash")
    if mode == "memory":
        what, then = "keep the rollback journal in memory", "a crash"
    assert result.output == (
        f"{project.dir / '002_bad.sql'}: would fail on the database as it is: statement 1 tried to {what} inside its"
        f" transaction (PRAGMA journal_mode = {mode}), so {then} would corrupt the database instead of leaving it"
        " as it was; if truly needed, put it in a migration of its own that runs outside a transaction"
        " ('-- migrate:up transaction:false' in SQL, transactional = False in Python), which is not atomic\n"
        "failed: 1 error(s), 0 warning(s).\n"
    )
    assert project.digest() == before
    still_five_thousand_rows(project)


def test_a_database_that_does_not_exist_is_noted_not_passed_as_checked(project: Project) -> None:
    """'validate --db typo.db' said only "OK: no problems found.", as though the database had been
    checked for drift and integrity; a note now says only the migrations were (exit code unchanged:
    the migrations alone may be what CI checks)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    note = f"Note: {project.db} does not exist: only the migrations were checked, not a database.\n"
    result = project.cli("validate")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "OK: no problems found.\n", note)
    as_json = project.cli("validate", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["ok"] is True and as_json.stderr == note
    quiet = project.cli("validate", "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    project.manager().migrate()
    assert project.cli("validate").stderr == ""
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations", "test.db"]


def test_validate_warns_when_user_version_disagrees_with_the_history(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("PRAGMA user_version = 7")  # by hand: an application reading it sees version 7
    before = project.db.read_bytes()
    result = project.cli("validate")
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {project.db}: PRAGMA user_version is 7, but the highest applied version is 2: an application"
        " that reads it sees another schema; set it with 'vcp-migrate baseline 2' (which records nothing), or"
        " set user_version = false in [tool.vcp-migrate] if it belongs to someone else"
    ) in result.output
    assert project.cli("validate", "--strict").exit_code == 1
    assert project.db.read_bytes() == before  # validate only reads
    # the fix it names sets it, and records nothing
    assert project.cli("baseline", "2").exit_code == 0
    with closing(sqlite3.connect(project.db)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert connection.execute("SELECT version FROM vcp_migrations ORDER BY version").fetchall() == [(1,), (2,)]
    assert project.cli("validate", "--strict").exit_code == 0


def test_validate_leaves_user_version_alone_when_it_is_someone_elses(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("PRAGMA user_version = 7")
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\nuser_version = false\n")
    result = project.cli("validate", "--strict")
    assert result.exit_code == 0, result.output
    assert "user_version" not in result.output


def test_validate_reports_a_file_renumbered_after_it_ran(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    (project.dir / "002_index.sql").rename(project.dir / "003_index.sql")
    before = project.db.read_bytes()
    data = json.loads(project.cli("validate", "--json").stdout)
    found = [(p["kind"], p["version"], p["message"]) for p in data["problems"] if p["kind"] == "renumbered"]
    assert found == [
        (
            "renumbered",
            3,
            "holds exactly what version 2 (index) applied, whose file (002_index.sql) is missing: it was"
            " renumbered from 2, and would be applied a second time; give it back its applied name; to apply"
            " the same content again as a new migration, change the file (a comment will do)",
        )
    ]
    assert data["ok"] is False and project.db.read_bytes() == before


def test_validate_names_the_baseline_that_records_history_rows_deleted_by_hand(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute("DELETE FROM vcp_migrations WHERE version = 2")  # user_version stays 2
    (problem,) = [p for p in project.manager().validate() if p.kind == "user-version"]
    assert problem.message.endswith(
        "; if the history lost the rows up to 2 (drift then shows what they made), record them with"
        " 'vcp-migrate baseline 2'"
    )
    assert project.cli("baseline", "2").exit_code == 0 and project.history() == [1, 2]
    assert project.cli("validate", "--strict").exit_code == 0
