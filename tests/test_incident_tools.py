"""Atomic batches, baseline, redo, repair, rollback --from-history, PRAGMA user_version, and
upgrading the history tables of a database from the first release."""

from __future__ import annotations

import sqlite3

import pytest

from vcp_migrate import MigrationFailed, PlanError

from .conftest import Project


def three(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")


def test_atomic_batch_leaves_nothing_when_its_last_migration_fails(project: Project) -> None:
    three(project)
    project.sql("004_bad.sql", "CREATE TABLE d(x);\nINSERT INTO nowhere VALUES (1);")
    result = project.cli("migrate", "--atomic")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {project.dir / '004_bad.sql'}: statement 2 failed: no such table: nowhere"
        " (the whole batch was rolled back; nothing was changed)"
    )
    assert project.tables() == set() and project.history() == []
    project.sql("004_bad.sql", "CREATE TABLE d(x);")
    assert [r.version for r in project.manager().migrate(atomic=True)] == [1, 2, 3, 4]
    assert project.history() == [1, 2, 3, 4] and project.tables() == {"a", "b", "c", "d"}


def test_atomic_refuses_non_transactional_up_front(project: Project) -> None:
    three(project)
    project.write("004_vacuum.sql", "-- migrate:up transaction:false\nVACUUM;\n-- migrate:down\n")
    with pytest.raises(PlanError, match=r"004_vacuum.sql: is not transactional, so it cannot run in an atomic batch"):
        project.manager().migrate(atomic=True)
    assert not project.db.exists()


def test_baseline_adopts_an_existing_database(project: Project) -> None:
    three(project)
    connection = sqlite3.connect(project.db)
    connection.executescript("CREATE TABLE a(x); CREATE TABLE b(x);")
    connection.close()
    result = project.cli("baseline", "2")
    assert result.exit_code == 0 and result.stdout.strip() == "Recorded as applied without running them: 1, 2."
    rows = project.query("SELECT version, checksum, execution_ms FROM vcp_migrations")
    assert [(v, ms) for v, _, ms in rows] == [(1, 0), (2, 0)]
    assert rows[0][1] == project.manager().status()[0]["checksum"]
    assert project.query("PRAGMA user_version") == [(2,)]
    assert [r.version for r in project.manager().migrate()] == [3]
    with pytest.raises(PlanError, match=r"already has version\(s\) above 1: 2, 3"):
        project.manager().baseline(1)
    with pytest.raises(PlanError, match="version 7 is not a migration"):
        project.manager().baseline(7)
    assert project.manager().baseline(3) == []


def test_baseline_needs_the_database(project: Project) -> None:
    three(project)
    assert project.cli("baseline", "1").exit_code == 1
    assert not project.db.exists()


def test_redo_reapplies_the_edited_file(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.sql("003_c.sql", "CREATE TABLE c(x, y);", "DROP TABLE c;")
    runs = project.manager().redo()
    assert [(r.version, r.direction) for r in runs] == [(3, "down"), (3, "up")]
    assert project.columns("c") == ["x", "y"]
    assert project.manager().status()[2]["state"] == "applied"


def test_redo_whose_up_fails_stays_applied_as_it_was(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.sql("003_c.sql", "CREATE TABLE c(x, y);\nSELECT * FROM nowhere;", "DROP TABLE c;")
    with pytest.raises(MigrationFailed, match="the whole batch was rolled back"):
        project.manager().redo()
    assert project.columns("c") == ["x"] and project.history() == [1, 2, 3]


def test_repair_shows_the_diff_and_records_after_confirmation(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed: comment only", "DROP TABLE b;")
    declined = project.cli("repair")  # no terminal to answer: nothing is recorded
    assert declined.exit_code == 1
    assert declined.stderr.strip() == (
        "Error: aborted: no answer to the question; nothing was changed (pass --yes to skip questions)"
    )
    assert (
        "-CREATE TABLE b(x);" in declined.stdout and "+CREATE TABLE b(x); -- reviewed: comment only" in declined.stdout
    )
    assert project.manager().status()[1]["state"] == "modified"
    answered_no = project.cli("repair", input="n\n")
    assert answered_no.exit_code == 0 and "Recorded new checksums: nothing." in answered_no.stdout
    result = project.cli("repair", "--yes")
    assert result.exit_code == 0 and "Recorded new checksums: 2." in result.stdout
    assert project.manager().status()[1]["state"] == "applied"
    assert project.manager().migrate() == []
    with pytest.raises(PlanError, match="version 1 is not an applied migration whose file changed"):
        project.manager().repair([1])


def test_missing_file_error_names_from_history_and_the_option_runs_the_stored_down(project: Project) -> None:
    three(project)
    project.write(
        "004_py.py", "def up(c):\n    c.execute('CREATE TABLE d(x)')\ndef down(c):\n    c.execute('DROP TABLE d')\n"
    )
    project.manager().migrate()
    (project.dir / "004_py.py").unlink()
    (project.dir / "003_c.sql").unlink()  # the code was rolled back to a release without them
    refused = project.cli("rollback", "--steps", "2")
    assert refused.exit_code == 1 and "pass --from-history" in refused.stderr
    assert project.history() == [1, 2, 3, 4]
    result = project.cli("rollback", "--steps", "2", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert f"Running the source of 004_py.py, as kept in the history of {project.db} (all of it runs):" in result.stdout
    assert (
        "def up(c):\n    c.execute('CREATE TABLE d(x)')\ndef down(c):\n    c.execute('DROP TABLE d')" in result.stdout
    )
    assert "Running the source of 003_c.sql, as kept" in result.stdout and "DROP TABLE c;" in result.stdout
    assert project.tables() == {"a", "b"} and project.history() == [1, 2]


def test_user_version_follows_the_highest_applied_version(project: Project) -> None:
    three(project)
    project.manager().migrate()
    assert project.query("PRAGMA user_version") == [(3,)]
    project.manager().rollback(2)
    assert project.query("PRAGMA user_version") == [(1,)]
    project.manager().rollback(to=0)
    assert project.query("PRAGMA user_version") == [(0,)]


def test_user_version_can_be_left_alone(project: Project) -> None:
    three(project)
    connection = sqlite3.connect(project.db)
    connection.execute("PRAGMA user_version = 77")
    connection.close()
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\nuser_version = false\n")
    assert project.cli("migrate").exit_code == 0
    assert project.query("PRAGMA user_version") == [(77,)]


def test_versions_beyond_32_bits_leave_user_version_with_a_warning(project: Project) -> None:
    project.sql("20261124120000_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    result = project.cli("migrate")
    assert result.exit_code == 0
    assert "do not fit PRAGMA user_version" in result.stderr
    assert project.query("PRAGMA user_version") == [(0,)]


def test_history_from_the_first_release_is_upgraded_in_place(project: Project) -> None:
    three(project)
    connection = sqlite3.connect(project.db)
    connection.executescript(
        """
        CREATE TABLE a(x);
        CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                                     applied_at TEXT NOT NULL, execution_ms INTEGER NOT NULL);
        CREATE TABLE vcp_migrations_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO vcp_migrations_meta VALUES ('layout', '1');
        """
    )
    checksum = project.manager().status()[0]["checksum"]
    connection.execute("INSERT INTO vcp_migrations VALUES (1, 'a', ?, '2026-01-01T00:00:00.000Z', 3)", (checksum,))
    connection.commit()
    connection.close()
    assert [row["state"] for row in project.manager().status()] == ["applied", "pending", "pending"]
    assert [r.version for r in project.manager().migrate()] == [2, 3]
    assert project.query("SELECT value FROM vcp_migrations_meta WHERE key = 'layout'") == [("2",)]
    assert project.query("SELECT version, file, source IS NULL FROM vcp_migrations") == [
        (1, None, 1),
        (2, "002_b.sql", 0),
        (3, "003_c.sql", 0),
    ]
    (project.dir / "001_a.sql").unlink()
    with pytest.raises(PlanError, match="has no source in the history"):
        project.manager().rollback(to=0, from_history=True)
    assert project.history() == [1, 2, 3]
