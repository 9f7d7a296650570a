"""current: the version alone, from the history only; never creating the database or taking the run lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest

from vcp_migrate import DatabaseError, discovery

from .conftest import Project, console_script, run_cli, with_output_missing


def three(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")


def test_a_missing_database_is_an_error_naming_it_and_is_not_created(project: Project) -> None:
    three(project)
    result = project.cli("current")
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr
        == f"Error: {project.db}: does not exist (check --db, or run 'vcp-migrate migrate' to create it)\n"
    )
    with pytest.raises(DatabaseError, match="does not exist"):
        project.manager().current()
    assert project.cli("current", "--json").exit_code == 1
    assert not project.db.exists() and sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_an_empty_database_is_version_0(project: Project) -> None:
    three(project)
    sqlite3.connect(project.db).close()
    result = project.cli("current")
    assert result.exit_code == 0 and result.stdout == "0\n"
    assert project.db.stat().st_size == 0  # read, not written: no history tables made


def test_after_migrate_and_rollback(project: Project) -> None:
    three(project)
    project.manager().migrate(target=2)
    assert project.cli("current").stdout == "2\n"
    project.manager().migrate()
    assert project.manager().current() == 3
    project.manager().rollback()
    assert project.cli("current").stdout == "2\n"
    project.manager().rollback(to=0)
    assert project.cli("current").stdout == "0\n" and project.history() == []


def test_user_version_without_history_is_version_0(project: Project) -> None:
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TABLE trade(x)")
        connection.execute("PRAGMA user_version = 7")
    assert project.cli("current").stdout == "0\n"
    assert project.query("PRAGMA user_version") == [(7,)] and project.history() == []


def test_the_history_decides_not_the_files(project: Project) -> None:
    three(project)
    project.manager().migrate()
    (project.dir / "003_c.sql").unlink()
    project.write("notes.sql", "not a migration")
    project.write("004_broken.py", "raise SystemExit('ran')\n")
    assert project.cli("current").stdout == "3\n"


def test_the_directory_is_never_scanned(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    three(project)
    project.manager().migrate()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the migrations directory was scanned")

    monkeypatch.setattr(discovery, "scan", refuse)
    monkeypatch.setattr(discovery, "without_duplicates", refuse)
    assert project.manager().current() == 3
    with pytest.raises(AssertionError, match="scanned"):
        project.manager().status()  # the trap works


def test_a_foreign_history_table_is_an_error_naming_the_database(project: Project) -> None:
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TABLE vcp_migrations(id)")
    result = project.cli("current")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {project.db}: has a vcp_migrations table that vcp-migrate did not create")


def test_json(project: Project) -> None:
    three(project)
    project.manager().migrate(target=2)
    result = project.cli("current", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"database": str(project.db), "version": 2}


SLEEPS = """
import time
from pathlib import Path

def up(connection):
    Path("started").touch()
    time.sleep(60)

def down(connection):
    pass
"""


def test_answers_at_once_while_another_process_holds_the_run_lock(project: Project) -> None:
    three(project)
    project.manager().migrate(target=2)
    project.write("004_sleeps.py", SLEEPS)
    before = sorted(p.name for p in project.root.iterdir())
    holder = subprocess.Popen(
        [sys.executable, "-m", "vcp_migrate", "migrate", "--db", str(project.db), "--dir", str(project.dir)],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (project.root / "started").exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        locks = sorted(p.name for p in project.root.glob(".vcp-lock-*"))
        assert locks  # the holder has the run lock
        started = time.monotonic()
        result = run_cli(project, "current", timeout=10)
        elapsed = time.monotonic() - started
        assert result.returncode == 0 and result.stdout == "3\n", result.stderr
        assert elapsed < 5  # the run lock waits up to 30 s: it was never asked for
        assert sorted(p.name for p in project.root.glob(".vcp-lock-*")) == locks
        missing = run_cli(project, "current", "--db", str(project.root / "other.db"), timeout=10)
        assert missing.returncode == 1 and "other.db: does not exist" in missing.stderr
        assert not (project.root / "other.db").exists()
    finally:
        holder.kill()
        holder.wait()
    assert "started" not in before and project.history() == [1, 2, 3]


CURRENT_IMPORTS = """
import sys
from vcp_migrate.cli import main

try:
    main(["current", "--db", sys.argv[1], "--dir", sys.argv[2], *sys.argv[3:]])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith("vcp_migrate"))), file=sys.stderr)
"""


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["plain", "json"])
def test_current_imports_no_command_module_but_its_own(project: Project, json_flag: tuple[str, ...]) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    result = subprocess.run(
        [sys.executable, "-c", CURRENT_IMPORTS, str(project.db), str(project.dir), *json_flag],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(result.stderr.split())
    commands = {name for name in loaded if name.startswith("vcp_migrate.commands.")}
    assert commands == {"vcp_migrate.commands.context", "vcp_migrate.commands.current"}
    for heavy in ("planning", "execution", "steps", "loading", "backups", "checks", "lock", "schema"):
        assert f"vcp_migrate.{heavy}" not in loaded


@pytest.mark.parametrize("options", [[], ["--json"]])
def test_no_standard_output_at_all_is_one_line_exit_1(project: Project, options: list[str]) -> None:
    """``test "$(vcp-migrate current >&-)" ...``: the version went nowhere and current exited 0."""
    three(project)
    project.manager().migrate(2)
    before = project.digest()
    command = [str(console_script()), "current", *options, "--db", str(project.db), "--dir", str(project.dir)]
    assert with_output_missing(command, project.root) == (
        1,
        "Error: standard output was closed from the start, so nothing the command printed could be seen;"
        " the command went on to its end\n",
    )
    assert project.digest() == before
