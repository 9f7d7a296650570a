"""Dry runs really run the migrations, report what they did, and leave the file byte-identical."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import closing

import pytest

from vcp_migrate.schema import diff

from .conftest import (
    Project,
    applied_1_3_then_2,
    console_script,
    five_thousand_rows,
    still_five_thousand_rows,
    with_output_missing,
    with_output_on_a_full_disk,
)

PY_BACKFILL = """
def up(connection):
    connection.execute("ALTER TABLE trades ADD COLUMN notional REAL")
    connection.execute("UPDATE trades SET notional = quantity * price WHERE quantity > ?", (0,))
    connection.executemany("INSERT INTO trades (symbol, quantity, price) VALUES (?, ?, ?)", [("X", 1, 2.0)] * 3)

def down(connection):
    connection.execute("DELETE FROM trades WHERE symbol = 'X'")
    connection.execute("ALTER TABLE trades DROP COLUMN notional")
"""


def trading(project: Project, journal_mode: str = "delete") -> None:
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT, quantity INTEGER, price REAL);\n"
        "INSERT INTO trades (symbol, quantity, price) VALUES ('AAPL', 10, 1.5), ('MSFT', 5, 2.0);",
        "DROP TABLE trades;",
    )
    project.write("002_backfill.py", PY_BACKFILL)
    project.manager().migrate(1)
    connection = sqlite3.connect(project.db)
    connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    connection.close()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_dry_run_reports_python_sql_and_leaves_the_file_byte_identical(project: Project, journal_mode: str) -> None:
    trading(project, journal_mode)
    before = project.digest()
    report = project.manager().dry_run_migrate()
    assert project.digest() == before
    assert report.ran_in == "a throw-away copy made with the backup API"  # Python never runs on the live file
    (rehearsal,) = report.rehearsals
    assert (rehearsal.version, rehearsal.direction, rehearsal.error) == (2, "up", None)
    assert rehearsal.statements == (
        "ALTER TABLE trades ADD COLUMN notional REAL;",
        "UPDATE trades SET notional = quantity * price WHERE quantity > ?; -- parameters: (0,)",
        "INSERT INTO trades (symbol, quantity, price) VALUES (?, ?, ?); -- executed 3 time(s)",
    )
    assert "+  notional REAL" in diff(report.schema_before, report.schema_after)
    assert project.history() == [1] and "notional" not in project.columns("trades")
    assert not list(project.root.glob(".vcp-lock-*"))
    assert not (project.root / "test.db.backups").exists()
    assert project.query("PRAGMA user_version") == [(1,)]


def test_cli_dry_run_sql_and_diff(project: Project) -> None:
    trading(project)
    before = project.digest()
    result = project.cli("migrate", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would apply 2 backfill" in result.stdout
    assert "+  notional REAL" in result.stdout
    sql = project.cli("migrate", "--sql")
    assert sql.exit_code == 0
    assert sql.stdout.splitlines()[:2] == ["-- 002_backfill.py (up)", "ALTER TABLE trades ADD COLUMN notional REAL;"]
    assert "Dry run" not in sql.stdout
    assert project.digest() == before


def test_failing_dry_run_exits_1_naming_migration_and_statement(project: Project) -> None:
    trading(project)
    project.sql("003_bad.sql", "CREATE INDEX trades_symbol ON trades(symbol);\nSELECT * FROM missing_table;")
    before = project.digest()
    result = project.cli("migrate", "--dry-run")
    assert result.exit_code == 1
    assert "Would apply 2 backfill" in result.stdout and "would fail: statement 2 failed" in result.stdout
    assert result.stderr.strip() == (
        f"Error: {project.dir / '003_bad.sql'}: statement 2 failed: no such table: missing_table"
        " (dry run: nothing was changed)"
    )
    assert project.digest() == before and project.history() == [1]


@pytest.mark.parametrize("lost", ["full", "closed"])
def test_a_failing_dry_run_whose_output_is_lost_says_its_error_once(project: Project, lost: str) -> None:
    """Its report printed to a full disk (or to no standard output at all), the failing dry run
    said its error, then a second line about the output: two error lines for one failure."""
    trading(project)
    project.sql("003_bad.sql", "SELECT * FROM missing_table;")
    before = project.digest()
    command = [str(console_script()), "migrate", "--dry-run", "--db", str(project.db), "--dir", str(project.dir)]
    run = with_output_on_a_full_disk if lost == "full" else with_output_missing
    code, err = run(command, project.root)
    assert (code, err) == (
        1,
        f"Error: {project.dir / '003_bad.sql'}: statement 1 failed: no such table: missing_table"
        " (dry run: nothing was changed)\n",
    )
    assert project.digest() == before and project.history() == [1]


def test_non_transactional_migration_is_rehearsed_on_a_copy(project: Project) -> None:
    trading(project)
    project.write(
        "003_wal.sql", "-- migrate:up transaction:false\nPRAGMA journal_mode = WAL;\nVACUUM;\n-- migrate:down\n"
    )
    before = project.digest()
    report = project.manager().dry_run_migrate()
    assert report.ran_in == "a throw-away copy made with the backup API"
    assert [r.version for r in report.rehearsals] == [2, 3]
    assert report.rehearsals[1].statements == ("PRAGMA journal_mode = WAL;", "VACUUM;")
    assert project.digest() == before
    assert project.query("PRAGMA journal_mode") == [("delete",)]
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


def test_dry_run_of_a_missing_database_creates_nothing(project: Project) -> None:
    trading(project)
    project.db.unlink()
    report = project.manager().dry_run_migrate()
    assert "does not exist yet" in report.ran_in
    assert [r.version for r in report.rehearsals] == [1, 2]
    assert "CREATE TABLE trades" in report.schema_after
    assert not project.db.exists()


def test_rollback_dry_run(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    before = project.digest()
    result = project.cli("rollback", "--dry-run", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "Would roll back 2 backfill" in result.stdout and "Would roll back 1 trades" in result.stdout
    assert "-CREATE TABLE trades (" in result.stdout
    assert project.digest() == before and project.history() == [1, 2]


def test_rollback_dry_run_on_missing_database_is_an_error(project: Project) -> None:
    trading(project)
    project.db.unlink()
    result = project.cli("rollback", "--dry-run")
    assert result.exit_code == 1 and "does not exist" in result.stderr
    assert not project.db.exists()


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_dry_run_larger_than_the_page_cache_is_still_byte_identical(project: Project, journal_mode: str) -> None:
    """Dirty pages beyond the cache are written to the file before the rollback restores them."""
    project.sql(
        "001_big.sql",
        "CREATE TABLE big (id INTEGER PRIMARY KEY, payload TEXT);\n"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)"
        " INSERT INTO big SELECT i, hex(randomblob(100)) FROM n;",
    )
    project.sql(
        "002_rewrite.sql", "UPDATE big SET payload = payload || payload;\nCREATE INDEX big_payload ON big(payload);"
    )
    project.manager().migrate(1)
    connection = sqlite3.connect(project.db)
    connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    connection.close()
    size, before = project.db.stat().st_size, project.digest()
    report = project.manager().dry_run_migrate()
    assert report.failed is None
    assert project.db.stat().st_size == size and project.digest() == before
    assert project.query("PRAGMA integrity_check") == [("ok",)]


# -- rehearsals write no file -----------------------------------------------------------------


def test_dry_run_refuses_vacuum_into_and_writes_no_file(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_copy.sql",
        "-- migrate:up transaction:false\nVACUUM INTO 'copy.db';\n-- migrate:down transaction:false\nSELECT 1;\n",
    )
    before = project.digest()
    result = project.cli("migrate", "--dry-run")
    assert result.exit_code == 1, result.output
    assert "statement 1 cannot be rehearsed: it would write to the file 'copy.db'" in result.output
    assert not (project.root / "copy.db").exists()
    assert project.digest() == before and project.history() == [1]


def test_dry_run_refuses_attaching_the_live_database_itself(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_self.sql", f"ATTACH '{project.db}' AS live;\nINSERT INTO live.a VALUES (1);", "SELECT 1;")
    before = project.digest()
    report = project.manager().dry_run_migrate()
    failed = report.failed
    assert failed is not None and failed.version == 2
    assert failed.error is not None and "cannot be rehearsed" in failed.error
    assert project.digest() == before
    assert project.query("SELECT count(*) FROM a") == [(0,)] and project.history() == [1]


def test_dry_runs_of_two_databases_in_one_folder_keep_each_others_scratch(project: Project) -> None:
    project.write("001_a.sql", "-- migrate:up transaction:false\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n")
    for name in ("app.db", "staging-app.db", "app.db.x"):
        sqlite3.connect(project.root / name).execute("CREATE TABLE seed (x)").connection.close()
    other = project.root / ".vcp-dry-run.staging-app.db.abcd1234"
    similar = project.root / ".vcp-dry-run.app.db.x.abcd1234"
    stale = project.root / ".vcp-dry-run.app.db.abcd1234"
    for folder in (other, similar, stale):
        folder.mkdir()
        (folder / "app.db").write_bytes(b"scratch")
    from vcp_migrate import MigrationManager

    report = MigrationManager(project.root / "app.db", project.dir, allow_existing=True).dry_run_migrate()
    assert report.failed is None and report.ran_in == "a throw-away copy made with the backup API"
    assert (other / "app.db").read_bytes() == b"scratch" and (similar / "app.db").read_bytes() == b"scratch"
    assert not stale.exists()
    leftovers = [p.name for p in project.root.iterdir() if p.name.startswith(".vcp-dry-run.app.db.a")]
    assert leftovers == []


def _numbers(count: int) -> str:
    return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) SELECT i FROM n"


def test_dry_run_on_a_database_with_free_pages_leaves_its_content_as_it_was(project: Project) -> None:
    """SQLite reuses free pages inside a transaction without saving their old bytes: after the
    rollback they are free again but may hold other bytes. Everything a query can see is as it
    was, and every page in use is byte for byte the same."""
    project.sql(
        "001_t.sql",
        f"CREATE TABLE t (x);\nINSERT INTO t SELECT randomblob(1000) FROM ({_numbers(2000)});",
        "DROP TABLE t;",
    )
    manager = project.manager()
    manager.backup = False
    manager.migrate()
    manager.rollback()  # its pages are free now
    assert project.query("PRAGMA freelist_count")[0][0] > 400

    def seen() -> tuple[object, ...]:
        with closing(sqlite3.connect(project.db)) as connection:
            pragmas = [connection.execute(f"PRAGMA {name}").fetchone() for name in ("page_count", "freelist_count")]
            return tuple(connection.iterdump()), tuple(pragmas), connection.execute("PRAGMA user_version").fetchone()

    def pages_in_use() -> dict[int, bytes]:
        with closing(sqlite3.connect(project.db)) as connection:
            try:
                used = [row[0] for row in connection.execute("SELECT pageno FROM dbstat")]
            except sqlite3.OperationalError:  # an SQLite built without the dbstat table
                return {}
            size = connection.execute("PRAGMA page_size").fetchone()[0]
        data = project.db.read_bytes()
        return {page: data[(page - 1) * size : page * size] for page in used}

    before, pages = seen(), pages_in_use()
    report = manager.dry_run_migrate()
    assert report.ran_in == "a transaction that was rolled back"
    assert [r.error for r in report.rehearsals] == [None]
    assert seen() == before and pages_in_use() == pages and project.history() == []


def test_rollback_dry_run_after_an_out_of_order_migrate_rehearses_the_one_applied_last(project: Project) -> None:
    applied_1_3_then_2(project)
    before = project.digest()
    result = project.cli("rollback", "--dry-run", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.index("Would roll back 2 t2") < result.stdout.index("Would roll back 3 t3")
    assert project.digest() == before and project.history() == [1, 2, 3]
    one = project.cli("rollback", "--dry-run")
    assert one.exit_code == 0 and "Would roll back 2 t2" in one.stdout and "Would roll back 3" not in one.stdout
    assert "-CREATE TABLE t2 (" in one.stdout and "-CREATE TABLE t3 (" not in one.stdout


@pytest.mark.parametrize("commit", [True, False])
def test_a_failed_restore_of_foreign_keys_follows_a_commit_only_when_there_was_one(
    project: Project, commit: bool
) -> None:
    """Enforcement not restored after a dry run's transaction, rolled back, was said to come after
    a COMMIT, which on a server reads as a COMMIT whose outcome is unknown."""
    from vcp_migrate import sqlite, transactions

    with closing(sqlite.open_database(project.db, create=True, timeout=1)) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        execute = connection.execute

        def refusing_the_restore(sql: str, *args: object) -> sqlite3.Cursor:
            if sql == "PRAGMA foreign_keys = ON":
                raise sqlite3.OperationalError("disk I/O error")
            return execute(sql, *args)

        connection.execute = refusing_the_restore  # type: ignore[method-assign]
        with (
            pytest.raises(sqlite3.OperationalError) as raised,
            transactions.foreign_keys_off(connection, commit=commit),
            transactions.transaction(connection, commit=commit),
        ):
            connection.execute("CREATE TABLE t (x)")
        assert transactions.may_have_committed(raised.value) is commit
        assert (project.tables() == {"t"}) is commit


def test_dry_runs_work_on_a_database_whose_path_is_not_utf8(project: Project) -> None:
    """SQLite lists a database's file as the bytes of its path, as text; read as a str, a path that
    is not UTF-8 failed every dry run: "Could not decode to UTF-8 column 'file'"."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    database = os.fsencode(project.root) + b"/caf\xe9.db"
    command = [console_script(), "--db", database, "--dir", os.fsencode(project.dir)]
    assert subprocess.run([*command, "up", "--to", "1"], capture_output=True, timeout=60).returncode == 0
    with open(database, "rb") as file:
        before = file.read()
    for args, said in (
        (["up", "--dry-run"], b"Would apply 2 b"),
        (["up", "--sql"], b"-- 002_b.sql (up)\nCREATE TABLE b (x);"),
        (["down", "--dry-run"], b"Would roll back 1 a"),
        (["rollback", "--sql"], b"-- 001_a.sql (down)\nDROP TABLE a;"),
    ):
        done = subprocess.run([*command, *args], capture_output=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, b""), (args, done.stderr)
        assert said in done.stdout, args
    with open(database, "rb") as file:
        assert file.read() == before
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchall() == []


def test_a_dry_run_cannot_turn_the_rollback_journal_off_and_leaves_the_file_as_it_was(project: Project) -> None:
    """Its writes spilled past a cache of one page with no journal on disk: the rollback kept them."""
    five_thousand_rows(project)
    project.sql(
        "002_bad.sql",
        "PRAGMA journal_mode=OFF;\nPRAGMA cache_size=1;\nUPDATE t SET v='changed';\nINSERT INTO t(v) SELECT v FROM t;",
    )
    before = project.digest()
    result = project.cli("migrate", "--dry-run")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir / '002_bad.sql'}: statement 1 tried to turn the rollback journal off inside its"
        " transaction (PRAGMA journal_mode = OFF), so a failed statement or a crash would corrupt the database"
        " instead of leaving it as it was; if truly needed, put it in a migration of its own that runs outside a"
        " transaction ('-- migrate:up transaction:false' in SQL, transactional = False in Python), which is not"
        " atomic (dry run: nothing was changed)\n"
    )
    assert project.digest() == before
    still_five_thousand_rows(project)
