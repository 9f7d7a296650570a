"""The history module on its own: layouts, upgrades, rows, ids and PRAGMA user_version."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from vcp_migrate import history
from vcp_migrate.errors import DatabaseError
from vcp_migrate.models import MigrationFile

from .conftest import Project


def database() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", isolation_level=None)


def file(version: int, source: bytes = b"-- migrate:up\n") -> MigrationFile:
    return MigrationFile(
        version, f"m{version}", Path(f"migrations/{version:03d}_m{version}.sql"), f"sum{version}", source
    )


def test_a_new_database_has_no_history() -> None:
    connection = database()
    assert history.layout(connection) == 0
    assert history.read(connection) == {} and history.highest(connection) == 0
    assert history.database_id(connection) is None and history.applied_source(connection, 1) is None


def test_prepare_record_read_remove() -> None:
    connection = database()
    history.prepare(connection)
    assert history.layout(connection) == history.LAYOUT
    history.record(connection, file(1, b"first"), 12)
    history.record(connection, file(3, b"third"), 5)
    rows = history.read(connection)
    assert sorted(rows) == [1, 3]
    assert (rows[3].name, rows[3].checksum, rows[3].execution_ms, rows[3].file) == ("m3", "sum3", 5, "003_m3.sql")
    assert history.applied_source(connection, 1) == b"first"
    assert history.highest(connection) == 3
    assert history.is_recorded(connection, file(3), applied=True)
    history.remove(connection, 3)
    assert not history.is_recorded(connection, file(3), applied=True)
    assert history.is_recorded(connection, file(3), applied=False)
    assert history.highest(connection) == 1


def test_applied_at_never_goes_back_so_it_orders_the_rows_as_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock set back, or the same millisecond, writes a millisecond after the latest row."""
    connection = database()
    history.prepare(connection)
    for version, now in ((1, "2026-11-24T12:00:00.000Z"), (3, "2026-11-24T12:00:00.999Z")):
        monkeypatch.setattr(history, "utc_now", lambda now=now: now)
        history.record(connection, file(version), 1)
    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T11:59:00.000Z")  # set back a minute
    history.record(connection, file(2), 1)
    history.record(connection, file(4), 1)
    times = {version: row.applied_at for version, row in history.read(connection).items()}
    assert times == {
        1: "2026-11-24T12:00:00.000Z",
        3: "2026-11-24T12:00:00.999Z",
        2: "2026-11-24T12:00:01.000Z",
        4: "2026-11-24T12:00:01.001Z",
    }
    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T13:00:00.000Z")  # a clock ahead is kept
    history.record(connection, file(5), 1)
    assert history.read(connection)[5].applied_at == "2026-11-24T13:00:00.000Z"


def test_is_recorded_compares_the_checksum() -> None:
    connection = database()
    history.prepare(connection)
    history.record(connection, file(1), 0)
    edited = file(1)._replace(checksum="other")
    assert not history.is_recorded(connection, edited, applied=True)
    assert not history.is_recorded(connection, edited, applied=False)


def test_prepare_twice_keeps_the_database_id() -> None:
    connection = database()
    history.prepare(connection)
    first = history.database_id(connection)
    history.prepare(connection)
    assert first is not None and len(first) == 32 and history.database_id(connection) == first


def test_update_records_a_reviewed_edit() -> None:
    connection = database()
    history.prepare(connection)
    history.record(connection, file(2, b"old"), 0)
    history.update(connection, file(2, b"new")._replace(checksum="edited", name="renamed"))
    row = history.read(connection)[2]
    assert (row.name, row.checksum) == ("renamed", "edited")
    assert history.applied_source(connection, 2) == b"new"


def test_layout_1_is_upgraded_in_place() -> None:
    connection = database()
    connection.execute(
        "CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        " applied_at TEXT NOT NULL, execution_ms INTEGER NOT NULL)"
    )
    connection.execute("CREATE TABLE vcp_migrations_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    connection.execute("INSERT INTO vcp_migrations_meta VALUES ('layout', '1')")
    connection.execute("INSERT INTO vcp_migrations VALUES (1, 'm1', 'sum1', '2026-01-01T00:00:00.000Z', 3)")
    assert history.layout(connection) == 1
    assert history.read(connection)[1].file is None and history.applied_source(connection, 1) is None
    history.prepare(connection)
    assert history.layout(connection) == 2 and history.database_id(connection) is not None
    assert history.read(connection)[1].name == "m1"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("CREATE TABLE vcp_migrations (x)", "has a vcp_migrations table that vcp-migrate did not create"),
        (
            "CREATE TABLE vcp_migrations (x); CREATE TABLE vcp_migrations_meta (key, value);"
            " INSERT INTO vcp_migrations_meta VALUES ('layout', '99')",
            "its history was written by a newer vcp-migrate (layout 99, this one knows 2)",
        ),
    ],
    ids=["foreign table", "newer layout"],
)
def test_history_it_cannot_use_is_refused(setup: str, message: str) -> None:
    connection = database()
    connection.executescript(setup)
    with pytest.raises(DatabaseError, match=re.escape(message)):
        history.read(connection)


def test_the_current_layout_is_read_in_one_statement_as_read_all_reads_it() -> None:
    connection = database()
    history.prepare(connection)
    history.record(connection, file(3, b"third"), 5)
    history.record(connection, file(1, b"first"), 12)
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    found = history.read_current(connection, with_id=True)
    assert len(statements) == 1  # one statement: one snapshot with no transaction around it
    assert found == history.read_all(connection, with_id=True) and found is not None
    assert list(found.applied) == [1, 3] and found.database_id == history.database_id(connection)
    assert history.read_current(connection, with_id=False) == found._replace(database_id=None)
    connection.execute("DELETE FROM vcp_migrations")
    assert history.read_current(connection, with_id=True) == history.read_all(connection, with_id=True)


@pytest.mark.parametrize(
    "setup",
    [
        "",
        "CREATE TABLE vcp_migrations (x)",
        "CREATE TABLE vcp_migrations_meta (key, value); INSERT INTO vcp_migrations_meta VALUES ('layout', '2')",
        "CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name, checksum, applied_at, execution_ms, file);"
        " CREATE TABLE vcp_migrations_meta (key, value); INSERT INTO vcp_migrations_meta VALUES ('layout', '99')",
        "CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name, checksum, applied_at, execution_ms, file);"
        " CREATE TABLE vcp_migrations_meta (key, value)",
        "CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name, checksum, applied_at, execution_ms);"
        " CREATE TABLE vcp_migrations_meta (key, value); INSERT INTO vcp_migrations_meta VALUES ('layout', '1')",
    ],
    ids=["none", "foreign table", "meta alone", "newer layout", "no layout", "layout 1"],
)
def test_any_other_history_is_left_to_read_all(setup: str) -> None:
    connection = database()
    connection.executescript(setup)
    assert history.read_current(connection, with_id=True) is None


def test_errors_about_the_database_pass_through_the_one_statement_read(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database at all, but long enough to have a header" * 20)
    connection = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        history.read_current(connection, with_id=True)
    connection.close()


def test_user_version_follows_the_highest_version_and_refuses_what_does_not_fit() -> None:
    connection = database()
    history.prepare(connection)
    history.record(connection, file(7), 0)
    assert history.sync_user_version(connection) is True
    assert connection.execute("PRAGMA user_version").fetchone() == (7,)
    history.record(connection, file(history.USER_VERSION_MAX + 1), 0)
    assert history.sync_user_version(connection) is False
    assert connection.execute("PRAGMA user_version").fetchone() == (7,)


def test_the_read_of_the_history_finds_the_triggers_on_its_tables_in_the_same_statement() -> None:
    """So that a run refuses the ones it did not make before it begins, at no statement more: on
    either table, however the name is spelled; not a trigger of another table named like one."""
    connection = database()
    history.prepare(connection)
    connection.execute("CREATE TABLE other (x)")
    connection.execute("CREATE TRIGGER vcp_migrations AFTER INSERT ON other BEGIN SELECT 1; END")
    found = history.read_current(connection, with_id=False)
    assert found is not None and found.triggers == ()
    connection.execute("CREATE TRIGGER b_upper AFTER INSERT ON VCP_Migrations BEGIN SELECT 1; END")
    connection.execute("CREATE TRIGGER a_meta AFTER UPDATE ON vcp_migrations_meta BEGIN SELECT 1; END")
    connection.execute('CREATE TRIGGER "odd, name" BEFORE DELETE ON vcp_migrations BEGIN SELECT 1; END')
    expected = ("a_meta", "b_upper", "odd, name")
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    found = history.read_current(connection, with_id=True)
    assert found is not None and found.triggers == expected and len(statements) == 1
    assert history.read_all(connection, with_id=True).triggers == expected  # a server's read, or an older layout


@pytest.mark.parametrize("edited", ["x'00'", "'9999-12-31T23:59:59.999Z'"])
def test_an_applied_at_edited_by_hand_orders_nothing_and_stops_nothing(project: Project, edited: str) -> None:
    """A BLOB, or the last millisecond a date can hold, put in applied_at by hand:
    migrate and rollback go on (they stopped with an unexpected TypeError or OverflowError)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute(f"UPDATE vcp_migrations SET applied_at = {edited}")
        connection.commit()
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    assert [r.version for r in project.manager().migrate()] == [2]
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}
    # A time in the right form is a time (the last millisecond of 9999 is later than 2): it orders.
    expected = [1, 2] if edited.startswith("'9999") else [2, 1]
    assert [r.version for r in project.manager().rollback(steps=2)] == expected
    assert project.history() == [] and project.tables() == set()


def _history_made_again_by_hand(project: Project, column: str, versions: str) -> None:
    """Two migrations applied, then the history table made again with ``column`` as its version
    (as a tool that rebuilds tables, or an import from CSV, leaves it), holding ``versions``."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection, connection:
        rows = connection.execute("SELECT * FROM vcp_migrations ORDER BY version").fetchall()
        connection.execute("ALTER TABLE vcp_migrations RENAME TO applied")
        connection.execute(
            f"CREATE TABLE vcp_migrations ({column}, name TEXT, checksum TEXT, applied_at TEXT,"
            " execution_ms INTEGER, file TEXT, source BLOB)"
        )
        for version, row in zip(versions.split(","), [*rows, rows[-1]], strict=False):
            connection.execute(f"INSERT INTO vcp_migrations VALUES ({version}, ?, ?, ?, ?, ?, ?)", row[1:])
        connection.execute("DROP TABLE applied")


def test_a_history_table_made_again_with_a_real_version_column_works(project: Project) -> None:
    """A REAL column keeps versions 1 and 2 as 1.0 and 2.0: whole numbers, read as the versions
    they are (every command worked with them before versions were checked, and then none did)."""
    _history_made_again_by_hand(project, "version REAL", "1,2")
    assert project.query("SELECT typeof(version) FROM vcp_migrations") == [("real",), ("real",)]
    assert project.cli("status", "--exit-code").exit_code == 0
    assert project.cli("current").stdout == "2\n"
    assert project.cli("rollback").exit_code == 0
    assert project.history() == [1] and project.tables() == {"a"}


@pytest.mark.parametrize(
    ("column", "versions", "said", "highest"),
    [
        ("version INTEGER", "NULL,2", "the version NULL", None),
        ("version INTEGER", "'one',2", "the version 'one'", "the version 'one'"),
        ("version INTEGER", "X'01',2", "the version x'01'", "the version x'01'"),
        ("version REAL", "1.5,2", "the version 1.5", None),
        ("version TEXT", "1,2", "the version '1'", "the version '2'"),
        ("version INTEGER", "1,2,1", "version 1 twice", None),
    ],
    ids=["NULL", "text", "BLOB", "a fraction", "a TEXT column", "twice"],
)
def test_a_history_table_made_again_by_hand_is_refused_by_name(
    project: Project, column: str, versions: str, said: str, highest: str | None
) -> None:
    """Every command failed with an unexpected TypeError (a version compared with numbers), or kept
    one row of a version found twice; now one line names the value and what to do, and nothing
    changes. current reads the highest version alone: only a highest that is no number stops it."""
    _history_made_again_by_hand(project, column, versions)
    before = project.digest()
    for command in ("status --json --exit-code", "validate --json", "migrate", "rollback", "current"):
        result = project.cli(*command.split())
        expected = highest if command == "current" else said
        if expected is None:
            assert (result.exit_code, result.stdout, result.stderr) == (0, "2\n", "")
            continue
        assert (result.exit_code, result.stdout) == (1, ""), (command, result.output)
        assert result.stderr.startswith(f"Error: {project.db}: its history table vcp_migrations has {expected}")
        assert "edited by hand" in result.stderr and result.stderr.endswith("nothing was changed)\n")
        assert result.stderr.count("\n") == 1
    assert project.digest() == before
    assert project.tables() == {"a", "b"} and not (project.root / "test.db.backups").exists()


@pytest.mark.parametrize(
    ("edited", "shown"),
    [("x'00ff'", "x'00ff'"), ("'20261124'", "20261124")],
)
def test_an_applied_at_edited_by_hand_into_another_type_is_read_as_text_that_is_no_time(
    project: Project, edited: str, shown: str
) -> None:
    """A BLOB in applied_at is read as text, as SQL writes it, and no time: status shows it and
    --json holds it (it stopped both with an unexpected error), and the row keeps its place in
    version order. A date in ISO 8601's basic form is no time either (Python reads it as one from
    3.11 only: 3 was taken as applied first, and rollback undid 2)."""
    for version in (1, 2, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute(f"UPDATE vcp_migrations SET applied_at = {edited} WHERE version = 3")
        connection.commit()
    result = project.cli("status")
    assert result.exit_code == 0, result.output
    assert re.search(rf"^\s+3\s+applied\s+{re.escape(shown)}\s+t3$", result.stdout, re.MULTILINE), result.stdout
    result = project.cli("status", "--json")
    assert result.exit_code == 0, result.output
    assert [row["applied_at"] for row in json.loads(result.stdout)][2] == shown
    assert [r.version for r in project.manager().rollback()] == [3]
    assert project.history() == [1, 2] and project.tables() == {"t1", "t2"}


@pytest.mark.parametrize(
    ("dropped", "said", "hint"),
    [
        ("file", "no column file:", "add it with ALTER TABLE vcp_migrations ADD COLUMN file TEXT (NULL there"),
        ("source", "no column source:", "add it with ALTER TABLE vcp_migrations ADD COLUMN source BLOB (NULL"),
        (
            "file,source",
            "no column file, source:",
            "add them with ALTER TABLE vcp_migrations ADD COLUMN file TEXT and ALTER TABLE vcp_migrations ADD"
            " COLUMN source BLOB (NULL",
        ),
        ("checksum", "no column checksum:", "restore a backup ('vcp-migrate backups' lists them), or add it and"),
        ("layout 1,checksum", "no column checksum:", "restore a backup ('vcp-migrate backups' lists them), or add"),
    ],
)
def test_a_history_table_without_a_column_of_its_layout_is_refused_naming_it(
    project: Project, dropped: str, said: str, hint: str
) -> None:
    """A history table made again by hand or by another tool without a column: every command said
    'no such column: file (nothing was changed)', with nothing to go on (and without source, status
    worked and migrate failed at its INSERT). One line names the table, the columns and what to do,
    exit 1, nothing changed; the ALTER TABLE it gives makes the history usable again. A history of
    layout 1 (no file nor source) is not missing them: it is upgraded, unless it lacks another."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager(backup=False).migrate(1)
    columns = dropped.split(",")
    with closing(sqlite3.connect(project.db)) as connection, connection:
        if columns[0] == "layout 1":  # as the first release left it
            columns[:1] = ["file", "source"]
            connection.execute("DELETE FROM vcp_migrations_meta WHERE key = 'database_id'")
            connection.execute("UPDATE vcp_migrations_meta SET value = '1'")
        for column in columns:
            connection.execute(f"ALTER TABLE vcp_migrations DROP COLUMN {column}")
    before = project.digest()
    for command in ("status --json --exit-code", "validate --json", "migrate", "rollback", "redo", "repair --yes"):
        result = project.cli(*command.split())
        assert (result.exit_code, result.stdout) == (1, ""), (command, result.output)
        assert result.stderr.startswith(f"Error: {project.db}: its history table vcp_migrations has {said} it was")
        assert hint in result.stderr and result.stderr.endswith("; nothing was changed)\n"), result.stderr
        assert result.stderr.count("\n") == 1
    assert project.digest() == before and not (project.root / "test.db.backups").exists()
    if "(NULL there" not in hint:
        return
    statements = hint.split(" with ", 1)[1].split(" (NULL")[0].split(" and ")
    with closing(sqlite3.connect(project.db)) as connection, connection:
        for statement in statements:
            connection.execute(statement)
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]
    assert project.cli("rollback", "--steps", "2").exit_code == 0 and project.tables() == set()


def test_a_history_of_layout_1_is_still_upgraded_by_the_command_line(project: Project) -> None:
    """A history as the first release left it (no file nor source, layout 1) lacks no column:
    status reads it, and migrate upgrades it in place."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager(backup=False).migrate(1)
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute("ALTER TABLE vcp_migrations DROP COLUMN file")
        connection.execute("ALTER TABLE vcp_migrations DROP COLUMN source")
        connection.execute("DELETE FROM vcp_migrations_meta WHERE key = 'database_id'")
        connection.execute("UPDATE vcp_migrations_meta SET value = '1'")
    assert project.cli("status", "--exit-code").exit_code == 3
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]
    assert project.columns("vcp_migrations")[-2:] == ["file", "source"]
    assert project.query("SELECT value FROM vcp_migrations_meta WHERE key = 'layout'") == [("2",)]


@pytest.mark.parametrize("column", ["applied_at", "name", "checksum", "file"])
def test_text_that_is_not_utf8_in_the_history_is_read_and_shown_escaped(project: Project, column: str) -> None:
    """Text that is not UTF-8 written into the history by hand (CAST(x'ff' AS TEXT)) made status,
    validate, migrate and rollback fail with 'Could not decode to UTF-8 column 'NULL' with text
    '\\ufffd''. It is read as a file name is, the byte as \\udcff: shown escaped, in --json too; no
    checksum matches it (modified), and it is no time (the row keeps its place in version order)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager(backup=False).migrate()
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute(f"UPDATE vcp_migrations SET {column} = CAST(x'ff' AS TEXT) WHERE version = 1")
    before = project.digest()
    status = project.cli("status", "--json")
    assert (status.exit_code, status.stderr) == (0, ""), status.output
    first = json.loads(status.stdout)[0]
    expected = {"applied_at": "applied_at", "checksum": "applied_checksum"}.get(column)
    assert first["state"] == ("modified" if column == "checksum" else "applied")
    assert expected is None or first[expected] == "\\udcff"
    plain = project.cli("status")
    assert plain.exit_code == 0 and ("1  applied  \\udcff" in plain.stdout) == (column == "applied_at"), plain.stdout
    validate = project.cli("validate")
    assert validate.exit_code == (1 if column == "checksum" else 0), validate.output
    assert ("001_a.sql: changed since it was applied" in validate.stdout) == (column == "checksum")
    assert project.digest() == before
    rollback = project.cli("rollback", "--no-backup")
    assert (rollback.exit_code, rollback.stderr) == (0, ""), rollback.output
    assert project.history() == [1] and project.tables() == {"a"}
    migrate = project.cli("migrate", "--no-backup")  # refused while 1 is modified
    assert migrate.exit_code == (1 if column == "checksum" else 0), migrate.output
    assert project.history() == ([1] if column == "checksum" else [1, 2])
    assert project.query(f"SELECT CAST({column} AS BLOB) FROM vcp_migrations WHERE version = 1") == [(b"\xff",)]


def test_the_history_module_reads_text_that_is_not_utf8_as_its_bytes() -> None:
    connection = database()
    history.prepare(connection)
    history.record(connection, file(1, b"-- migrate:up\nSELECT 1;\n"), 5)
    connection.execute("UPDATE vcp_migrations SET name = CAST(x'41ff' AS TEXT), source = CAST(x'2dff' AS TEXT)")
    connection.execute("UPDATE vcp_migrations_meta SET value = CAST(x'ff' AS TEXT) WHERE key = 'database_id'")
    found = history.read_all(connection, with_id=True)
    assert found.applied[1].name == "A\udcff" and found.database_id == "\udcff"
    assert history.read_current(connection, with_id=True) == found and history.read(connection) == found.applied
    assert history.applied_source(connection, 1) == b"-\xff"
    assert connection.text_factory is str  # as it was: a migration given this connection reads as before
    with pytest.raises(sqlite3.OperationalError, match="Could not decode to UTF-8"):
        connection.execute("SELECT name FROM vcp_migrations").fetchall()
