"""rollback: newest first, each down with its history row, refusals that change nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from vcp_migrate import DatabaseError, MigrationFailed, MigrationFileError, PlanError, UsageError

from .conftest import (
    Project,
    applied_1_3_then_2,
    console_script,
    interrupt_after_commit,
    three,
    trigger_on_the_history,
    wrong_directory,
    wrong_directory_error,
)


def three_tables(project: Project) -> None:
    for version in (1, 2, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate()


def test_default_rolls_back_the_newest_one(project: Project) -> None:
    three_tables(project)
    runs = project.manager().rollback()
    assert [(r.version, r.direction) for r in runs] == [(3, "down")]
    assert project.tables() == {"t1", "t2"} and project.history() == [1, 2]


def test_steps_go_newest_first(project: Project) -> None:
    three_tables(project)
    assert [r.version for r in project.manager().rollback(2)] == [3, 2]
    assert project.tables() == {"t1"} and project.history() == [1]


def test_to_version_and_to_zero(project: Project) -> None:
    three_tables(project)
    assert [r.version for r in project.manager().rollback(to=1)] == [3, 2]
    assert project.manager().rollback(to=1) == []
    assert [r.version for r in project.manager().rollback(to=0)] == [1]
    assert project.tables() == set() and project.history() == []
    assert project.manager().rollback(to=0) == []


def test_failing_down_keeps_earlier_undone_and_itself_applied(project: Project) -> None:
    three_tables(project)
    project.sql("002_t2.sql", "CREATE TABLE t2(x);", "DROP TABLE t2;\nDROP TABLE no_such_table;")
    # 002's file changed, but rollback runs the current down (a warning, not a refusal).
    with pytest.raises(MigrationFailed) as error:
        project.manager().rollback(3)
    message = str(error.value)
    assert "002_t2.sql: statement 2 failed: no such table: no_such_table" in message
    assert (
        "its down was undone whole: it is still applied; the 1 migration(s) before it in this run stay rolled back"
        in message
    )
    assert project.tables() == {"t1", "t2"}
    assert project.history() == [1, 2]


@pytest.mark.parametrize("command", [("rollback",), ("redo",), ("rollback", "--dry-run")])
def test_a_trigger_put_on_the_history_by_hand_refuses_rollback_before_anything(
    project: Project, command: tuple[str, ...]
) -> None:
    """It was blamed on the migration rolled back ("drop them in the migration"): the run made
    no trigger, so it refuses to begin, saying the trigger is not its own."""
    three_tables(project)
    error = trigger_on_the_history(project)
    before, files = project.digest(), sorted(project.root.iterdir())
    result = project.cli(*command)
    assert (result.exit_code, result.stderr, result.stdout) == (1, error + "\n", "")
    assert project.digest() == before and sorted(project.root.iterdir()) == files
    assert project.history() == [1, 2, 3] and project.tables() == {"t1", "t2", "t3"}
    trigger_on_the_history(project, drop=True)
    assert project.cli(*command).exit_code == 0


def test_missing_file_is_refused_and_history_kept(project: Project) -> None:
    three_tables(project)
    (project.dir / "002_t2.sql").unlink()
    before = project.digest()
    with pytest.raises(PlanError, match=r"version 2 \(t2\) is applied but its file is missing.*history row was kept"):
        project.manager().rollback(2)
    assert project.digest() == before
    assert project.history() == [1, 2, 3]


@pytest.mark.parametrize("args", [("rollback",), ("rollback", "--to", "0"), ("redo",)], ids=["one", "to 0", "redo"])
def test_a_directory_with_none_of_the_applied_files_is_refused(project: Project, args: tuple[str, ...]) -> None:
    elsewhere = wrong_directory(project)
    before, listing = project.digest(), sorted(p.name for p in project.root.iterdir())
    result = project.cli(*args, "--dir", str(elsewhere))
    assert result.exit_code == 1
    assert result.stdout == "" and result.stderr == wrong_directory_error(project, elsewhere)
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == listing
    assert project.history() == [1, 2, 3] and project.tables() == {"a", "b", "c"}
    with pytest.raises(PlanError, match="probably the wrong migrations directory"):
        project.manager().__class__(project.db, elsewhere).rollback(to=0)
    assert project.digest() == before and project.history() == [1, 2, 3]


def test_from_history_needs_none_of_the_files(project: Project) -> None:
    """A release from before every applied migration: the history's own sources are all there is."""
    three(project)
    project.manager().migrate()
    for path in project.dir.glob("00*.sql"):
        path.unlink()
    result = project.cli("rollback", "--steps", "2", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert "Rolled back 3 c" in result.stdout and "Rolled back 2 b" in result.stdout
    assert project.tables() == {"a"} and project.history() == [1]


def test_more_steps_than_applied_is_refused(project: Project) -> None:
    three_tables(project)
    with pytest.raises(PlanError, match=r"cannot roll back 4: 3 migration\(s\) applied.*to=0 to roll back"):
        project.manager().rollback(4)
    assert project.history() == [1, 2, 3]


def test_unknown_version_is_refused(project: Project) -> None:
    three_tables(project)
    with pytest.raises(PlanError, match="to=9 is not a migration"):
        project.manager().rollback(to=9)


def test_bad_arguments(project: Project) -> None:
    with pytest.raises(UsageError, match="either steps or to"):
        project.manager().rollback(1, to=0)
    with pytest.raises(UsageError, match="steps must be 1 or more"):
        project.manager().rollback(0)
    with pytest.raises(UsageError, match="to must be a version or 0"):
        project.manager().rollback(to=-1)
    with pytest.raises(UsageError, match="lock timeout"):
        project.manager(lock_timeout=-1)


def test_missing_database_is_an_error_and_is_not_created(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    with pytest.raises(
        DatabaseError, match=r"test.db: does not exist \(check db_path; only 'migrate' creates a database\)"
    ):
        project.manager().rollback()
    assert list(project.root.iterdir()) == [project.dir]


def test_migration_without_down_cannot_be_rolled_back(project: Project) -> None:
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a(x);\n")
    project.write("002_b.py", "def up(c): c.execute('CREATE TABLE b(x)')\n")
    project.manager().migrate()
    with pytest.raises(MigrationFileError, match="002_b.py: has no down.*nothing was rolled back"):
        project.manager().rollback(2)
    assert project.history() == [1, 2]


def test_python_down_failure_names_the_line(project: Project) -> None:
    project.write(
        "001_a.py", "def up(c):\n    c.execute('CREATE TABLE a(x)')\ndef down(c):\n    raise ValueError('nope')\n"
    )
    project.manager().migrate()
    with pytest.raises(MigrationFailed, match=r"down\(\) failed at line 4: ValueError: nope"):
        project.manager().rollback()
    assert project.tables() == {"a"} and project.history() == [1]


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


# -- redo -----------------------------------------------------------------------------------------


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


OUTSIDE = "-- migrate:up transaction:false\nCREATE TABLE c (x);\n{more}-- migrate:down\nDROP TABLE c;\n"
APPLY_IT_AGAIN = (
    "redo had rolled {it} back and did not apply it again: once the cause is fixed, apply it with"
    " 'vcp-migrate migrate', not redo, which would roll back the migration before it"
)


def test_a_redo_stopped_between_its_down_and_its_up_says_to_migrate_not_to_redo_again(project: Project) -> None:
    """Its down committed on its own: 'run again' sent the user to redo, which rolled back the
    migration before it and left this one unapplied."""
    three(project)
    project.write("003_c.sql", OUTSIDE.format(more=""))
    project.manager().migrate()
    project.write("003_c.sql", OUTSIDE.format(more="SELECT * FROM nowhere;\n"))
    result = project.cli("redo")
    assert result.exit_code == 1 and project.history() == [1, 2]
    said = " ".join(result.stderr.split())
    assert said.endswith(f"{APPLY_IT_AGAIN.format(it='it')})"), said
    project.write("003_c.sql", "-- migrate:up transaction:false\nCREATE TABLE IF NOT EXISTS c (x);\n-- migrate:down\n")
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2, 3]


def test_a_redo_interrupted_just_after_its_down_says_to_migrate(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    three(project)
    project.write("003_c.sql", OUTSIDE.format(more=""))
    project.manager().migrate()
    interrupt_after_commit(monkeypatch)
    result = project.cli("redo")
    assert result.exit_code == 130 and project.history() == [1, 2]
    path = project.dir / "003_c.sql"
    assert " ".join(result.stderr.split()) == f"Error: interrupted during redo; {APPLY_IT_AGAIN.format(it=path)}"


def test_redo_of_a_migration_whose_file_is_missing_names_what_redo_needs(project: Project) -> None:
    """Not 'pass --from-history', which redo has no option for: it applies the file again."""
    three(project)
    project.manager().migrate()
    (project.dir / "003_c.sql").unlink()
    before = project.digest()
    result = project.cli("redo")
    assert result.exit_code == 1 and project.digest() == before and project.history() == [1, 2, 3]
    said = " ".join(result.stderr.split())
    assert "restore the file, redo applies it again from it; a rollback with --from-history undoes it alone" in said
    assert "or pass --from-history" not in said


def test_from_history_accepts_a_source_kept_as_text(project: Project) -> None:
    three(project)
    project.manager().migrate()
    (project.dir / "003_c.sql").unlink()
    connection = sqlite3.connect(project.db)
    connection.execute(
        "UPDATE vcp_migrations SET source = CAST(source AS TEXT) WHERE version = 3"
    )  # as another tool, or a hand repair, might leave it
    connection.commit()
    assert connection.execute("SELECT typeof(source) FROM vcp_migrations WHERE version = 3").fetchone() == ("text",)
    connection.close()
    result = project.cli("rollback", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert "DROP TABLE c;" in result.stdout
    assert project.tables() == {"a", "b"} and project.history() == [1, 2]


@pytest.mark.parametrize("command", ["rollback", "redo"])
def test_nothing_applied_says_so_instead_of_suggesting_to_0(project: Project, command: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    sqlite3.connect(project.db).close()
    result = project.cli(command)
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"Error: {project.db}: nothing to roll back: no migration is applied (nothing was changed)"
    )
    assert project.tables() == set() and project.history() == []


# -- later rollbacks of a run get the cheap checks before their COMMIT; each still catches these ---

LATER_DOWNS = {
    "parent table dropped": (
        "DROP TABLE accounts;",
        "foreign key check failed: table orders row 10 references a missing row in accounts",
    ),
    "trigger that puts the history row back": (
        "DROP TABLE marker;\nCREATE TRIGGER keep AFTER DELETE ON vcp_migrations BEGIN\n"
        "  INSERT INTO vcp_migrations SELECT OLD.version, OLD.name, OLD.checksum, OLD.applied_at,"
        " OLD.execution_ms, OLD.file, OLD.source;\nEND;",
        "it left trigger(s) on the history table (keep)",
    ),
    "history table renamed": (
        "DROP TABLE marker;\nALTER TABLE vcp_migrations RENAME TO old_history;",
        "it altered or renamed a history table (vcp_migrations), so it cannot be recorded",
    ),
    "its history row deleted": (
        "DROP TABLE marker;\nDELETE FROM vcp_migrations WHERE version = 2;",
        "it writes to the history table vcp_migrations",
    ),
    "another history row deleted": (
        "DROP TABLE marker;\nDELETE FROM vcp_migrations WHERE version = 1;",
        "it writes to the history table vcp_migrations",
    ),
}


@pytest.mark.parametrize("case", list(LATER_DOWNS), ids=list(LATER_DOWNS))
def test_a_later_rollback_of_a_run_is_checked_as_the_first(project: Project, case: str) -> None:
    down, message = LATER_DOWNS[case]
    project.sql(
        "001_schema.sql",
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));\n"
        "INSERT INTO accounts VALUES (1);\nINSERT INTO orders VALUES (10, 1);",
        "DROP TABLE orders;\nDROP TABLE accounts;",
    )
    project.sql("002_marker.sql", "CREATE TABLE marker (x);", down)
    project.sql("003_last.sql", "CREATE TABLE last (x);", "DROP TABLE last;")
    project.manager().migrate()
    result = project.cli("rollback", "--steps", "2")
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert "002_marker.sql" in result.output
    assert project.history() == [1, 2] and project.tables() == {"accounts", "orders", "marker"}
    assert project.query("SELECT * FROM orders") == [(10, 1)]
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
    assert project.query("PRAGMA user_version") == [(2,)]


ROLLBACK_IMPORTS = """
import sys
from vcp_migrate.cli import main

try:
    main(["rollback", "--db", sys.argv[1], "--dir", sys.argv[2], "--no-backup", "--no-dump"])
except SystemExit as exit:
    print("exit", exit.code)
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_rollback_without_backup_or_dump_loads_neither_nor_the_hazard_lint(project: Project) -> None:
    """What a rollback run at an incident does not need, it does not load: the backups and the
    schema writer when they are off, the hazard lint, OpenSSL (hashlib) and the other commands."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    result = subprocess.run(
        [sys.executable, "-c", ROLLBACK_IMPORTS, str(project.db), str(project.dir)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "exit 0" in result.stdout, result.stdout + result.stderr
    assert project.history() == [1] and project.tables() == {"a"}  # it did roll back
    loaded = set(result.stderr.split())
    for heavy in ("backups", "schema", "hazards", "cli.reading", "cli.fleet"):
        assert f"vcp_migrate.{heavy}" not in loaded, heavy
    assert not loaded & {"_hashlib", "secrets", "difflib", "rich"}


def test_ctrl_c_just_after_a_commit_reports_that_migration_as_done(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interrupt reached Python once SQLite's COMMIT had returned: the run said 'rolled back
    whole', --json listed nothing as ran, the schema file was left behind and the backup kept
    with a warning that blamed a migration outside a transaction."""
    import json

    three(project)
    project.manager().migrate()

    interrupt_after_commit(monkeypatch)
    result = project.cli("rollback", "--json")
    assert result.exit_code == 130
    report = json.loads(result.stdout)
    assert [(r["version"], r["direction"]) for r in report["ran"]] == [(3, "down")]
    assert report["version_after"] == 2 and report["error"] == "interrupted"
    assert project.history() == [1, 2] and "Warning" not in result.stderr
    assert "-- version: 2" in (project.dir / "schema.sql").read_text()
    assert [backup.version for backup in project.manager().backups()] == [3]


def test_a_source_kept_in_the_history_that_cannot_load_says_to_restore_the_file(project: Project) -> None:
    """Its hint said 'fix the file': there is none to fix, which is why the history's source ran."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_needs.py",
        "import os\nif os.environ.get('VCP_TEST_BREAK_LOAD'):\n    raise ImportError('a module the release had')\n"
        "def up(c):\n    c.execute('CREATE TABLE b (x)')\ndef down(c):\n    c.execute('DROP TABLE b')\n",
    )
    project.manager().migrate()
    (project.dir / "002_needs.py").unlink()
    before = project.digest()
    result = project.cli("rollback", "--from-history", "--yes", env={"VCP_TEST_BREAK_LOAD": "1"})
    assert result.exit_code == 1 and project.digest() == before and project.history() == [1, 2]
    said = " ".join(result.stderr.split())
    assert ":history/002_needs.py: loading failed" in said and "a module the release had" in said
    assert said.endswith("(restore the migration's file to roll it back with it; nothing was rolled back)")


def test_a_dry_run_shows_escape_sequences_in_statements_as_text(project: Project) -> None:
    """A statement's literal reached the terminal raw: it could clear the screen or hide the lines after it."""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "SELECT '\x1b[2J\x1b]0;pwned\x07';\nDROP TABLE t;")
    project.manager().migrate()
    result = project.cli("rollback", "--dry-run")
    assert result.exit_code == 0 and "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "SELECT '\\x1b[2J\\x1b]0;pwned\\x07';" in result.stdout


def test_from_history_shows_the_stored_source_as_it_is_not_as_emoji(project: Project) -> None:
    """Rich replaced ':red_circle:' with its emoji: what was shown was not what runs."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write(
        "002_e.py",
        'FLAG = ":red_circle:"\ndef up(c):\n    c.execute("CREATE TABLE e(x)")\n'
        'def down(c):\n    c.execute("DROP TABLE e")',
    )
    project.manager().migrate()
    (project.dir / "002_e.py").unlink()
    result = project.cli("rollback", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert 'FLAG = ":red_circle:"' in result.stdout and "\U0001f534" not in result.stdout
    assert project.history() == [1]


def test_a_down_that_fails_outside_a_transaction_leaves_the_schema_file_true(project: Project) -> None:
    """What it did before failing stays in the database; the schema file still showed the index it had dropped."""
    project.write(
        "001_e.sql",
        "-- migrate:up transaction:false\nCREATE TABLE e(a);\nCREATE INDEX e_a ON e(a);\n"
        "-- migrate:down transaction:false\nDROP INDEX e_a;\nDROP TABLE nosuch;\nDROP TABLE e;\n",
    )
    project.manager().migrate()
    assert "e_a" in (project.dir / "schema.sql").read_text()
    result = project.cli("rollback")
    assert result.exit_code == 1 and project.history() == [1]
    assert project.query("SELECT name FROM sqlite_master WHERE name = 'e_a'") == []
    assert "e_a" not in (project.dir / "schema.sql").read_text()


# -- after migrate --allow-out-of-order: the reverse of the order of application ------------------


def reopened(project: Project) -> tuple[set[str], list[int], int]:
    """The tables, the history and PRAGMA user_version, read on a new connection."""
    return project.tables(), project.history(), int(project.query("PRAGMA user_version")[0][0])  # type: ignore[call-overload]


def test_rollback_undoes_the_migration_applied_last_not_the_highest(project: Project) -> None:
    applied_1_3_then_2(project)
    result = project.cli("rollback")
    assert result.exit_code == 0, result.output
    assert "Rolled back 2 t2" in result.stdout and "t3" not in result.stdout
    # user_version is the highest applied version: 3 is still applied
    assert reopened(project) == ({"t1", "t3"}, [1, 3], 3)
    assert [row["state"] for row in project.manager().status()] == ["applied", "out-of-order", "applied"]


def test_steps_follow_the_reverse_of_the_order_of_application(project: Project) -> None:
    applied_1_3_then_2(project)
    assert [r.version for r in project.manager().rollback(2)] == [2, 3]
    assert reopened(project) == ({"t1"}, [1], 1)


def test_to_rolls_back_in_the_reverse_order_of_application(project: Project) -> None:
    applied_1_3_then_2(project)
    assert [r.version for r in project.manager().rollback(to=1)] == [2, 3]
    assert reopened(project) == ({"t1"}, [1], 1)


def test_to_that_keeps_a_migration_applied_after_one_it_rolls_back_is_refused(project: Project) -> None:
    """--to 2 would run the down of 3 on a schema that 2, applied after it, changed."""
    applied_1_3_then_2(project)
    before = project.digest()
    result = project.cli("rollback", "--to", "2")
    assert result.exit_code == 1 and result.stdout == ""
    assert " ".join(result.stderr.split()) == (
        "Error: --to 2 would roll back version 3 (t3) and keep version 2 (t2), applied after it: the down of 3"
        " would run on a schema its up did not leave (roll back in the reverse order of application with"
        " --steps 2 (version(s) 2, 3); that rolls back version(s) 2 too, at or below 2: apply again those to keep with"
        " migrate (with --allow-out-of-order for one below an applied version); nothing was changed)"
    )
    assert project.digest() == before and reopened(project) == ({"t1", "t2", "t3"}, [1, 2, 3], 3)


def test_a_failing_down_stops_the_rollback_after_the_last_applied(project: Project) -> None:
    """2 (applied last) is rolled back and stays so; 3's down fails whole: 3 and 1 stay applied."""
    applied_1_3_then_2(project)
    project.sql("003_t3.sql", "CREATE TABLE t3(x);", "DROP TABLE t3;\nDROP TABLE no_such_table;")
    result = project.cli("rollback", "--steps", "2")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert "003_t3.sql: statement 2 failed: no such table: no_such_table" in said
    assert "it is still applied; the 1 migration(s) before it in this run stay rolled back" in said
    assert "Rolled back 2 t2" in result.stdout
    assert reopened(project) == ({"t1", "t3"}, [1, 3], 3)


def test_redo_redoes_the_migration_applied_last(project: Project) -> None:
    applied_1_3_then_2(project)
    project.sql("002_t2.sql", "CREATE TABLE t2(x, y);", "DROP TABLE t2;")
    runs = project.manager().redo()
    assert [(r.version, r.direction) for r in runs] == [(2, "down"), (2, "up")]
    assert project.columns("t2") == ["x", "y"] and project.columns("t3") == ["x"]
    assert reopened(project) == ({"t1", "t2", "t3"}, [1, 2, 3], 3)
    assert [r.version for r in project.manager().rollback()] == [2]  # still the last applied


def test_from_history_follows_the_reverse_order_of_application(project: Project) -> None:
    applied_1_3_then_2(project)
    for name in ("002_t2.sql", "003_t3.sql"):
        (project.dir / name).unlink()
    result = project.cli("rollback", "--steps", "2", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.index("Rolled back 2 t2") < result.stdout.index("Rolled back 3 t3")
    assert reopened(project) == ({"t1"}, [1], 1)


def test_a_clock_set_back_before_the_out_of_order_migrate_still_rolls_back_the_one_applied_last(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """applied_at is the order of application: a host whose clock is behind the one that applied 3
    records 2 after it all the same."""
    from vcp_migrate import history

    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T12:00:00.000Z")
    for version in (1, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate()
    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T11:00:00.000Z")
    project.sql("002_t2.sql", "CREATE TABLE t2(x);", "DROP TABLE t2;")
    project.manager().migrate(allow_out_of_order=True)
    assert [r.version for r in project.manager().rollback()] == [2]
    assert reopened(project) == ({"t1", "t3"}, [1, 3], 3)
    # Two in one run, on that clock: each after the one before it, as the run knows them.
    project.sql("004_t4.sql", "CREATE TABLE t4(x);", "DROP TABLE t4;")
    project.manager().migrate(allow_out_of_order=True)
    with closing(sqlite3.connect(project.db)) as connection:
        stamps = dict(connection.execute("SELECT version, applied_at FROM vcp_migrations WHERE version IN (2, 4)"))
    # 1 and 3 took .000 and .001 on it, so 2 and 4 take the next two.
    assert stamps == {2: "2026-11-24T12:00:00.002Z", 4: "2026-11-24T12:00:00.003Z"}
    assert [r.version for r in project.manager().rollback(steps=2)] == [4, 2]
    assert reopened(project) == ({"t1", "t3"}, [1, 3], 3)


def mark_applied_by_hand(project: Project, version: int, applied_at: str) -> None:
    """Make t<version> and record its migration as applied, as someone applying it by hand in an
    incident would (``applied_at``: an SQL expression for the time they write)."""
    from vcp_migrate import discovery

    file = next(m for m in discovery.scan(project.dir).migrations if m.version == version)
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute(f"CREATE TABLE t{version}(x)")
        connection.execute(
            "INSERT INTO vcp_migrations (version, name, checksum, applied_at, execution_ms, file, source)"
            f" VALUES (?, ?, ?, {applied_at}, 0, ?, ?)",
            (version, file.name, file.checksum, file.path.name, file.source),
        )
        connection.execute(f"PRAGMA user_version = {version}")
        connection.commit()


@pytest.mark.parametrize(
    "applied_at",
    [
        "'2026-11-24 12:00:05'",  # SQLite's own form (CURRENT_TIMESTAMP), UTC
        "'2026-11-24T08:00:05-04:00'",  # ISO 8601 with an offset: 12:00:05 UTC
        "1795521605",  # a number (seconds since 1970?): no time to read, so after 1-3, as migrate applies
        "x'00'",
    ],
)
def test_a_migration_recorded_by_hand_after_the_others_is_the_one_rolled_back(
    project: Project, monkeypatch: pytest.MonkeyPatch, applied_at: str
) -> None:
    """1-3 applied at 12:00:00, then 4 recorded by hand at 12:00:05 in another form: rollback
    undoes 4, and --to 3 is no refusal. Text was compared as text (a space, or '08', sorts before
    'T12') and any other value came first, so rollback undid 3 while 4 stayed applied."""
    from vcp_migrate import history

    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T12:00:00.000Z")
    for version in (1, 2, 3, 4):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate(3)
    mark_applied_by_hand(project, 4, applied_at)
    result = project.cli("rollback", "--dry-run")
    assert result.exit_code == 0, result.output
    assert [line.split(" (")[0] for line in result.stdout.splitlines() if line.startswith("Would")] == [
        "Would roll back 4 t4"
    ]
    result = project.cli("rollback")
    assert result.exit_code == 0, result.output
    assert "Rolled back 4 t4" in result.stdout and "t3" not in result.stdout
    assert reopened(project) == ({"t1", "t2", "t3"}, [1, 2, 3], 3)
    mark_applied_by_hand(project, 4, applied_at)
    assert [r.version for r in project.manager().rollback(to=3)] == [4]
    assert reopened(project) == ({"t1", "t2", "t3"}, [1, 2, 3], 3)


def test_the_next_migration_is_applied_after_a_time_recorded_by_hand_in_another_form(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row recorded by hand in SQLite's form at 12:00:05, then a migrate on a clock at 12:00:01:
    the new row takes a millisecond after 12:00:05 (the latest was found by comparing text, where
    '2026-11-24T12:00:00.000Z' is above '2026-11-24 12:00:05', so it took 12:00:01), and is the
    one rolled back first."""
    from vcp_migrate import history

    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T12:00:00.000Z")
    for version in (1, 2, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate(1)
    mark_applied_by_hand(project, 2, "'2026-11-24 12:00:05'")
    monkeypatch.setattr(history, "utc_now", lambda: "2026-11-24T12:00:01.000Z")
    assert [r.version for r in project.manager().migrate()] == [3]
    assert dict(project.query("SELECT version, applied_at FROM vcp_migrations WHERE version = 3")) == {
        3: "2026-11-24T12:00:05.001Z"
    }
    assert [r.version for r in project.manager().rollback()] == [3]
    assert reopened(project) == ({"t1", "t2"}, [1, 2], 2)


def test_a_redo_of_a_migration_applied_out_of_order_stopped_after_its_down_says_to_allow_out_of_order(
    project: Project,
) -> None:
    """1 and 3 applied, then 2: redo rolls 2 back and its up fails outside a transaction. 2 is
    now pending below 3, so a plain 'vcp-migrate migrate', which the error named, refuses it and
    says to renumber it; the error names --allow-out-of-order, and that applies it again."""
    applied_1_3_then_2(project)
    outside = "-- migrate:up transaction:false\nCREATE TABLE IF NOT EXISTS t2 (x);\n{more}"
    outside += "-- migrate:down\nDROP TABLE t2;\n"
    project.write("002_t2.sql", outside.format(more="SELECT * FROM nowhere;\n"))
    assert project.cli("repair", "--yes").exit_code == 0
    result = project.cli("redo")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert said.endswith(
        "redo had rolled it back and did not apply it again: once the cause is fixed, apply it with"
        " 'vcp-migrate migrate --allow-out-of-order' (it is below applied version 3), not redo, which would roll"
        " back the migration before it)"
    ), said
    assert reopened(project) == ({"t1", "t2", "t3"}, [1, 3], 3)  # its up's first statement stays: outside a transaction
    project.write("002_t2.sql", outside.format(more=""))
    assert project.cli("migrate").exit_code == 1  # out of order
    assert project.cli("migrate", "--allow-out-of-order").exit_code == 0
    assert reopened(project) == ({"t1", "t2", "t3"}, [1, 2, 3], 3)
    assert [r.version for r in project.manager().rollback()] == [2]


@pytest.mark.parametrize("command", [["rollback"], ["redo"], ["baseline", "1"], ["repair"], ["migrate"]])
def test_a_file_that_is_not_a_database_is_named_as_given(project: Project, command: list[str]) -> None:
    """Every command names the database as the user wrote it: those that read the history at once
    (rollback, redo, baseline, repair) named the absolute path the run lock had resolved."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.db.write_text("these are my trading notes, not a database\n" * 50)
    before = project.digest()
    result = subprocess.run(
        [str(console_script()), *command, "--db", project.db.name, "--dir", project.dir.name],
        cwd=project.root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"Error: {project.db.name}: is not a SQLite database (check --db; nothing was changed)\n"
    assert project.digest() == before and not list(project.root.glob(".vcp-lock-*"))
