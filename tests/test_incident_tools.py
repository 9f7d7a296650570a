"""Atomic batches, baseline, redo, repair, restore, rollback --from-history, PRAGMA user_version, and
upgrading the history tables of a database from the first release."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time

import pytest

from vcp_migrate import Backup, MigrationFailed, PlanError, cli
from vcp_migrate.lock import RunLock
from vcp_migrate.observer import Observer

from .conftest import Project, run_cli


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


def incident(project: Project) -> None:
    """Version 1 is backed up, then version 2 adds a row: restoring the backup loses that row."""
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);\nINSERT INTO trades (symbol) VALUES ('AAPL');",
        "DROP TABLE trades;",
    )
    project.sql("002_msft.sql", "INSERT INTO trades (symbol) VALUES ('MSFT');", "DELETE FROM trades WHERE id = 2;")
    project.manager().migrate(1)
    project.manager().migrate()


def storage(project: Project) -> tuple[object, object]:
    page_size, journal_mode = project.query("PRAGMA page_size")[0][0], project.query("PRAGMA journal_mode")[0][0]
    return page_size, journal_mode


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_restore_across_a_page_size_change_in_wal_mode_both_ways(project: Project, journal_mode: str) -> None:
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);\nINSERT INTO trades (symbol) VALUES ('AAPL');",
    )
    project.write(
        "002_pages.sql",
        "-- migrate:up transaction:false\nPRAGMA journal_mode = DELETE;\nPRAGMA page_size = 8192;\nVACUUM;\n"
        "PRAGMA journal_mode = WAL;\nINSERT INTO trades (symbol) VALUES ('MSFT');\n-- migrate:down\n",
    )
    project.manager().migrate(1)
    project.query(f"PRAGMA journal_mode = {journal_mode}")
    project.manager().migrate()
    assert storage(project) == (8192, "wal")
    restored, safety = project.manager().restore()
    assert restored.version == 1 and safety is not None
    assert storage(project) == (4096, journal_mode)
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]
    restored, _ = project.manager().restore(safety.path)  # and back: a 4096-byte database to an 8192 WAL one
    assert storage(project) == (8192, "wal")
    assert project.query("SELECT symbol FROM trades ORDER BY id") == [("AAPL",), ("MSFT",)]
    assert project.history() == [1, 2] and project.query("PRAGMA integrity_check") == [("ok",)]
    assert len(project.manager().backups()) == 3


class Warnings(Observer):
    def __init__(self) -> None:
        self.said: list[str] = []

    def warning(self, message: str) -> None:
        self.said.append(message)


def test_restore_across_a_page_size_change_while_others_keep_the_wal_database_open(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE trades (symbol TEXT);\nINSERT INTO trades VALUES ('AAPL');")
    project.write(
        "002_pages.sql",
        "-- migrate:up transaction:false\nPRAGMA page_size = 8192;\nVACUUM;\nPRAGMA journal_mode = WAL;\n"
        "INSERT INTO trades VALUES ('MSFT');\n-- migrate:down\n",
    )
    project.manager().migrate(1)
    project.manager().migrate()
    reader = sqlite3.connect(project.db)  # an application: it keeps the database open, in WAL mode
    assert reader.execute("SELECT count(*) FROM trades").fetchall() == [(2,)]
    observer = Warnings()
    project.manager(observer=observer).restore()
    assert reader.execute("SELECT symbol FROM trades").fetchall() == [("AAPL",)]
    reader.close()
    assert project.history() == [1] and project.query("PRAGMA integrity_check") == [("ok",)]
    assert storage(project) == (8192, "wal")  # only the last connection can take it out of WAL mode
    assert observer.said == [
        f"{project.db}: restored with its own page size (8192 bytes, not the backup's 4096) and journal mode"
        " (wal, not the backup's delete), since other connections have it open in WAL mode; restore again once"
        " they are closed to get the backup's"
    ]


def test_a_failed_restore_leaves_no_safety_copy(project: Project) -> None:
    incident(project)
    before, backups = project.digest(), project.manager().backups()
    reader = sqlite3.connect(project.db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trades").fetchall()  # a read transaction: nobody may write
    for _ in range(2):  # sqlite3 retries a busy copy forever: the run must give up at its lock timeout
        result = run_cli(project, "restore", "--yes", "--lock-timeout", "0.2", timeout=30)
        assert result.returncode == 1 and ": is locked by another connection" in result.stderr
        assert project.manager().backups() == backups
    # Read the file only now: closing any descriptor of it would drop the reader's lock.
    reader.execute("COMMIT")
    reader.close()
    assert project.digest() == before and project.manager().backups() == backups
    assert project.query("SELECT symbol FROM trades ORDER BY rowid") == [("AAPL",), ("MSFT",)]


def test_restore_asks_first_and_refuses_without_a_terminal(project: Project) -> None:
    incident(project)
    before, (backup,) = project.digest(), project.manager().backups()
    refused = run_cli(project, "restore", stdin=subprocess.DEVNULL)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: {project.db}: restoring {backup.path} (taken {backup.taken_at}, at version 1) would lose every"
        " change made since then, and there is no terminal to ask (pass --yes to restore; nothing was changed)\n"
    )
    assert project.digest() == before and project.manager().backups() == [backup]
    piped = project.cli("restore", input="y\n")  # input that is not a terminal is no answer
    assert piped.exit_code == 1 and "pass --yes to restore" in piped.stderr
    assert project.digest() == before and project.manager().backups() == [backup]
    result = run_cli(project, "restore", "--yes", stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"Restored {project.db} from {backup.path} (taken {backup.taken_at}, at version 1)" in result.stdout
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]


def test_restore_asks_on_a_terminal(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    incident(project)
    before, (backup,) = project.digest(), project.manager().backups()
    monkeypatch.setattr(cli, "_stdin_is_terminal", lambda: True)
    declined = project.cli("restore", input="n\n")
    warning = (
        f"Restoring {backup.path} (taken {backup.taken_at}, at version 1) replaces {project.db}:"
        " every change made since then will be lost."
    )
    assert declined.exit_code == 1 and warning in declined.stdout
    assert declined.stderr == f"Error: {project.db}: the restore was not confirmed (nothing was changed)\n"
    assert project.digest() == before and project.manager().backups() == [backup]
    accepted = project.cli("restore", input="y\n")
    assert accepted.exit_code == 0 and warning in accepted.stdout
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]


def test_restore_chooses_and_confirms_under_the_run_lock(project: Project) -> None:
    incident(project)
    project.manager().rollback()  # a second backup, at version 2
    newest, oldest = project.manager().backups()
    seen: list[Backup] = []
    done: list[tuple[Backup, Backup | None]] = []

    def confirm(backup: Backup) -> bool:
        seen.append(backup)
        return True

    with RunLock(project.db, 5):
        worker = threading.Thread(target=lambda: done.append(project.manager().restore(confirm=confirm)))
        worker.start()
        time.sleep(0.5)
        newest.path.unlink()  # pruned by the run that holds the lock
    worker.join(10)
    assert done and done[0][0].path == oldest.path and [b.path for b in seen] == [oldest.path]
    assert seen[0].version == 1 and seen[0].taken_at == oldest.taken_at
    assert project.history() == [1] and project.query("SELECT symbol FROM trades") == [("AAPL",)]
