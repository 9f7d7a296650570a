"""status: every state, never creating or changing the database, names shown and not obeyed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from vcp_migrate import MigrationFileError

from .conftest import Project, modified_missing_and_out_of_order


def states(project: Project) -> list[tuple[object, str]]:
    return [(row["version"], str(row["state"])) for row in project.manager().status()]


def test_every_state(project: Project) -> None:
    modified_missing_and_out_of_order(project)
    project.sql("005_e.sql", "CREATE TABLE e(x);")
    project.write("notes.sql", "-- migrate:up\n")
    assert states(project) == [
        (1, "modified"),
        (2, "missing"),
        (3, "out-of-order"),
        (4, "applied"),
        (5, "pending"),
        (None, "invalid"),
    ]
    rows = {row["version"]: row for row in project.manager().status()}
    assert rows[4]["applied"] is True and str(rows[4]["applied_at"]).endswith("Z")
    assert rows[5]["applied"] is False and rows[5]["applied_at"] is None
    assert rows[1]["checksum"] != rows[1]["applied_checksum"]
    assert rows[2]["checksum"] is None and rows[2]["name"] == "b"


def test_status_on_a_missing_database_creates_nothing(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    report = project.manager().report()
    assert not report.database_exists
    assert [row.state for row in report.rows] == ["pending"]
    assert not project.db.exists()


def test_status_never_runs_migration_code(project: Project) -> None:
    project.write("001_a.py", "import os\nos.mkdir('ran_at_import')\ndef up(c): pass\ndef down(c): pass\n")
    assert states(project) == [(1, "pending")]
    assert not (project.root / "ran_at_import").exists()


def test_duplicates_are_an_error_for_status(project: Project) -> None:
    project.sql("001_a.sql", "SELECT 1;")
    project.sql("1_b.sql", "SELECT 1;")
    with pytest.raises(MigrationFileError, match="version 1 is also used by 001_a.sql"):
        project.manager().status()


def test_unreadable_file_is_invalid(project: Project) -> None:
    outside = project.root / "x.sql"
    outside.write_text("-- migrate:up\n")
    (project.dir / "001_link.sql").symlink_to(outside)
    assert states(project) == [(1, "invalid")]


RED = "003_\x1b[31mred.sql"


TITLE = "004_\x1b]0;pwned\x07x.sql"


def test_escape_sequences_in_names_are_shown_not_obeyed(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql(RED, "CREATE TABLE r(x);", "DROP TABLE r;")
    project.sql(TITLE, "INSERT INTO nothing VALUES (1);")
    before = project.digest()
    plain = project.cli("status")
    coloured = project.cli("status", env={"FORCE_COLOR": "1"})
    assert plain.exit_code == coloured.exit_code == 0
    assert "\x1b" not in plain.stdout
    assert "\\x1b[31mred" in plain.stdout and "\\x1b]0;pwned\\x07x" in plain.stdout
    # On a terminal only Rich's own styles remain: the names' sequences are shown, not sent.
    assert "\x1b[" in coloured.stdout and "\x1b[31mred" not in coloured.stdout and "\x1b]" not in coloured.stdout
    rows = json.loads(project.cli("status", "--json").stdout)
    assert [row["name"] for row in rows] == ["a", "\x1b[31mred", "\x1b]0;pwned\x07x"]
    assert rows[1]["file"] == str(project.dir / RED)
    assert project.digest() == before
    failed = project.cli("migrate", "--no-backup")
    assert failed.exit_code == 1
    assert "\x1b" not in failed.stdout + failed.stderr
    assert failed.stdout.startswith("Applied 3 \\x1b[31mred (")
    assert failed.stderr.startswith(f"Error: {project.dir}/004_\\x1b]0;pwned\\x07x.sql: ")
    assert project.history() == [1, 3] and project.tables() == {"a", "r"}
    after = project.digest()
    (project.dir / RED).unlink()
    validate = project.cli("validate")
    assert "\x1b" not in validate.stdout and "3 (\\x1b[31mred) is applied but its file is missing" in validate.stdout
    assert project.digest() == after


def test_database_name_is_not_read_as_markup(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    result = project.cli("status", "--db", str(project.root / "[/x].db"))
    assert result.exit_code == 0, result.output
    assert "Migrations of " in result.stdout and "[/x].db does not exist yet" in result.stdout
    assert not (project.root / "[/x].db").exists()
    marked = str(project.root / "[red]x.db")
    assert project.cli("migrate", "--db", marked).exit_code == 0
    again = project.cli("migrate", "--db", marked)
    assert again.exit_code == 0 and again.stdout == f"Nothing to apply: {marked} is up to date.\n"
    with closing(sqlite3.connect(marked)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]


STATUS_IMPORTS = """
import sys
from vcp_migrate.cli import main

try:
    main(["status", "--db", sys.argv[1], "--dir", sys.argv[2], *sys.argv[3:]])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith("vcp_migrate"))), file=sys.stderr)
"""


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["table", "json"])
def test_status_imports_no_command_module_but_its_own(project: Project, json_flag: tuple[str, ...]) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    result = subprocess.run(
        [sys.executable, "-c", STATUS_IMPORTS, str(project.db), str(project.dir), *json_flag],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(result.stderr.split())
    commands = {name for name in loaded if name.startswith("vcp_migrate.commands.")}
    assert commands == {"vcp_migrate.commands.context", "vcp_migrate.commands.status"}
    for heavy in ("execution", "steps", "loading", "backups", "checks", "lock", "schema", "hazards", "sqltext"):
        assert f"vcp_migrate.{heavy}" not in loaded


def test_the_summary_counts_each_state(project: Project) -> None:
    modified_missing_and_out_of_order(project)
    project.write("notes.sql", "-- not a migration name\n")
    result = project.cli("status")
    assert result.exit_code == 0
    assert "1 applied, 0 pending, 1 modified, 1 missing, 1 out-of-order, 1 invalid" in result.stdout


def test_the_summary_of_a_database_not_yet_made_counts_invalid_files_apart(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("notes.sql", "-- not a migration name\n")
    result = project.cli("status")
    assert f"{project.db} does not exist yet: 1 migration(s) pending (1 invalid)" in result.stdout
    assert not project.db.exists()


def test_a_database_with_tables_and_no_history_is_said_so(project: Project) -> None:
    sqlite3.connect(project.db).execute("CREATE TABLE existing(x)").connection.close()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    before = project.digest()
    report = project.manager().report()
    assert report.unmanaged == ("existing",) and len(report.pending) == 1
    for args in ((), ("--json",)):
        result = project.cli("status", *args)
        assert result.exit_code == 0, result.output
        assert "has 1 table(s) (existing) and no migration history" in result.stderr
        assert "vcp-migrate baseline VERSION" in result.stderr
    assert project.digest() == before
    project.manager(allow_existing=True).migrate()
    assert project.manager().report().unmanaged == ()
