"""The same guarantees on both kinds of database: a local file and a database on a libSQL server
(a real sqld primary, tests/cluster.py). Each test runs on both, and after every failure reads the
database again through a fresh connection (a fresh client for the server) to check what is in it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from vcp_migrate.backends import hrana
from vcp_migrate.cli import main

from .conftest import ENV_VARS, Project, console_script
from .test_server import wipe


class Target:
    """Where a test's database lives: ``project.db`` or the server at ``url``."""

    def __init__(self, project: Project, url: str | None) -> None:
        self.project = project
        self.url = url
        self.db = url or str(project.db)

    def cli(self, *args: str) -> Result:
        command, *rest = args
        return CliRunner().invoke(main, [command, "--db", self.db, "--dir", str(self.project.dir), *rest])

    def process(self, *args: str) -> subprocess.Popen[str]:
        command, *rest = args
        env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        return subprocess.Popen(
            [str(console_script()), command, "--db", self.db, "--dir", str(self.project.dir), *rest],
            cwd=self.project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """One statement on a fresh connection, as an outsider would read it."""
        if self.url is not None:
            with hrana.Stream(self.url, timeout=10) as stream:
                return [tuple(row) for row in stream.execute(sql).rows]
        connection = sqlite3.connect(self.project.db)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def history(self) -> list[int]:
        if not self.query("SELECT name FROM sqlite_master WHERE name = 'vcp_migrations'"):
            return []
        return [int(str(row[0])) for row in self.query("SELECT version FROM vcp_migrations ORDER BY version")]

    def tables(self) -> set[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows if not str(r[0]).startswith(("sqlite_", "vcp_migrations"))}


@pytest.fixture(params=["file", "server"])
def target(request: pytest.FixtureRequest, project: Project) -> Iterator[Target]:
    if request.param == "file":
        sqlite3.connect(project.db).close()  # exists, empty: as the server's database always does
        yield Target(project, None)
        return
    cluster = request.getfixturevalue("libsql_cluster")
    if cluster.primary.process is None:  # a test that killed it failed before restarting it
        cluster.restart_primary()
    wipe(cluster.primary.url)
    yield Target(project, cluster.primary.url)


def two(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);", "DROP TABLE trades;")
    project.sql("002_fills.sql", "CREATE TABLE fills (id INTEGER PRIMARY KEY, qty INTEGER);", "DROP TABLE fills;")


def test_migrate_status_rollback(target: Target) -> None:
    two(target.project)
    assert target.cli("migrate", "--to", "1", "--no-backup").exit_code == 0
    status = target.cli("status", "--exit-code")
    assert status.exit_code == 3 and f"Migrations of {target.db}" in status.output
    assert target.cli("migrate", "--no-backup").exit_code == 0
    assert target.history() == [1, 2] and target.tables() == {"trades", "fills"}
    assert target.query("PRAGMA user_version") == [(2,)]
    assert target.cli("current").output.strip() == "2"
    assert target.cli("rollback", "--steps", "2", "--no-backup").exit_code == 0
    assert target.history() == [] and target.tables() == set()


def test_a_failing_statement_leaves_nothing_of_its_migration(target: Target) -> None:
    project = target.project
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);\nINSERT INTO b VALUES (1);\nINSERT INTO nowhere VALUES (1);", "")
    result = target.cli("migrate", "--no-backup")
    assert result.exit_code == 1 and "002_b.sql: statement 3 failed: no such table: nowhere" in result.output
    assert "Traceback" not in result.output
    assert target.history() == [1] and target.tables() == {"a"}
    atomic = target.cli("rollback", "--no-backup")
    assert atomic.exit_code == 0 and target.history() == []
    assert target.cli("migrate", "--atomic", "--no-backup").exit_code == 1
    assert target.history() == [] and target.tables() == set()


@pytest.mark.parametrize("ending", ["COMMIT;", "END TRANSACTION;", "ROLLBACK;"])
def test_a_migration_cannot_end_the_transaction(target: Target, ending: str) -> None:
    target.project.sql("001_b.sql", f"CREATE TABLE b (x);\n/* now */ {ending}\nCREATE TABLE c (x);", "")
    result = target.cli("migrate", "--no-backup")
    assert result.exit_code == 1 and "with its history row, so remove that" in result.output
    assert target.history() == [] and target.tables() == set()


@pytest.mark.parametrize("where", ["argument", "statement"])
def test_text_that_is_not_utf8_fails_the_migration_as_on_a_file(target: Target, where: str) -> None:
    """A lone surrogate reached the server escaped in JSON, which it refused with HTTP 400, "check
    that the URL is a libSQL server": blamed on the server, the migration unnamed."""
    target.project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    line = 'connection.execute("INSERT INTO a VALUES (?)", ("x \\ud800",))'
    if where == "statement":
        line = "connection.execute(\"INSERT INTO a VALUES ('x \\ud800')\")"
    target.project.write("002_b.py", f"def up(connection):\n    connection.execute('DELETE FROM a')\n    {line}\n")
    result = target.cli("migrate", "--no-backup")
    said = "002_b.py: up() failed at line 3: UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800'"
    reason = "surrogates not allowed"
    if where == "statement" and target.url is None and sys.version_info < (3, 11):  # Python 3.10's sqlite3 says
        said, reason = "002_b.py: up() failed at line 3: Warning: SQL is of wrong type ('str').", "Must be string."
    assert result.exit_code == 1 and said in result.output, result.output
    assert f"{reason} (it was rolled back; the 1 migration(s) before it in this run stay applied)" in result.output
    assert result.output.count("Warning") == said.count("Warning")
    assert target.history() == [1] and target.query("SELECT count(*) FROM a") == [(0,)]
    target.project.write("002_b.py", "def up(connection):\n    connection.execute('DELETE FROM a')\n")
    assert target.cli("migrate", "--no-backup").exit_code == 0 and target.history() == [1, 2]


def test_a_foreign_key_rebuild_and_a_broken_reference(target: Target) -> None:
    project = target.project
    project.sql(
        "001_books.sql",
        "CREATE TABLE books (id INTEGER PRIMARY KEY, name TEXT);\n"
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, book INTEGER REFERENCES books(id));\n"
        "INSERT INTO books VALUES (1, 'eu');\nINSERT INTO trades VALUES (1, 1);",
        "DROP TABLE trades;\nDROP TABLE books;",
    )
    project.sql(
        "002_rebuild.sql",
        "CREATE TABLE books_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');\n"
        "INSERT INTO books_new SELECT id, coalesce(name, '') FROM books;\n"
        "DROP TABLE books;\nALTER TABLE books_new RENAME TO books;",
        "SELECT 1;",
    )
    project.sql("003_orphan.sql", "INSERT INTO trades VALUES (2, 99);", "DELETE FROM trades WHERE id = 2;")
    result = target.cli("migrate", "--no-backup")
    assert result.exit_code == 1 and "003_orphan.sql: foreign key check failed" in result.output
    assert target.history() == [1, 2] and target.query("SELECT id, book FROM trades") == [(1, 1)]
    assert target.query("SELECT name FROM books") == [("eu",)]


def test_concurrent_runners_apply_each_migration_once(target: Target) -> None:
    for version in range(1, 4):  # not idempotent: a second run of any adds a second row
        target.project.sql(
            f"{version:03d}_m{version}.sql",
            ("CREATE TABLE runs (version INTEGER);\n" if version == 1 else "")
            + f"INSERT INTO runs VALUES ({version});",
            "",
        )
    runners = [target.process("migrate", "--no-backup", "--lock-timeout", "60") for _ in range(8)]
    outputs = [runner.communicate(timeout=120) for runner in runners]
    assert [runner.returncode for runner in runners] == [0] * 8, outputs
    assert target.history() == [1, 2, 3]
    assert target.query("SELECT version FROM runs ORDER BY version") == [(1,), (2,), (3,)]
    if target.url is not None:  # the lease is released
        assert target.query("SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def test_a_dry_run_changes_nothing(target: Target) -> None:
    two(target.project)
    result = target.cli("migrate", "--dry-run")
    assert result.exit_code == 0 and "a transaction that was rolled back" in result.output
    assert "CREATE TABLE fills" in result.output
    assert target.history() == [] and target.tables() == set()


def test_drift_is_found(target: Target) -> None:
    two(target.project)
    assert target.cli("migrate", "--no-backup").exit_code == 0
    assert target.cli("validate").exit_code == 0
    if target.url is not None:
        with hrana.Stream(target.url, timeout=10) as stream:
            stream.execute("CREATE INDEX fills_qty ON fills (qty)")
    else:
        connection = sqlite3.connect(target.project.db)
        connection.execute("CREATE INDEX fills_qty ON fills (qty)")
        connection.commit()
        connection.close()
    result = target.cli("validate")
    assert result.exit_code == 1 and "drift" in result.output and "fills_qty" in result.output
    assert target.history() == [1, 2]


def test_a_replica_counts_as_caught_up_only_with_the_runs_history_row_for_row() -> None:
    """Comparing the highest version only, a replica at 3 without the 2 applied under it counted."""
    from vcp_migrate.backends.replicas import Applied, caught_up

    ours = Applied(3, frozenset({(1, "a", "t1"), (2, "b", "t4"), (3, "c", "t2")}))
    without_two = Applied(3, frozenset({(1, "a", "t1"), (3, "c", "t2")}))
    repaired_not = Applied(3, frozenset({(1, "a", "t1"), (2, "old", "t4"), (3, "c", "t2")}))
    later = Applied(4, ours.rows | {(4, "d", "t5")})
    assert caught_up(ours, ours, rose=False) and caught_up(later, ours, rose=True)
    assert not caught_up(without_two, ours, rose=True) and not caught_up(repaired_not, ours, rose=True)
    assert not caught_up(later, ours, rose=False)  # after a rollback, a replica still above is behind
