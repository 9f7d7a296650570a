"""repair: show how applied files changed and record their new checksums once confirmed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from contextlib import closing

import pytest

from vcp_migrate import PlanError, UsageError

from .conftest import Project, console_script, three, trigger_on_the_history


def test_repair_shows_the_diff_and_records_after_confirmation(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed: comment only", "DROP TABLE b;")
    before = project.digest()
    for piped in (None, "y\n"):  # no terminal to answer, and input that is not one: nothing is recorded
        declined = project.cli("repair", input=piped)
        assert declined.exit_code == 1
        assert declined.stderr.strip() == (
            f"Error: recording the new checksum of {project.dir / '002_b.sql'} accepts an edit to an applied"
            " migration, and there is no terminal to ask (review the diff shown above and pass --yes; nothing was"
            " recorded)"
        )
        assert "-CREATE TABLE b(x);" in declined.stdout
        assert "+CREATE TABLE b(x); -- reviewed: comment only" in declined.stdout
        assert project.digest() == before
    assert project.manager().status()[1]["state"] == "modified"
    monkeypatch.setattr("vcp_migrate.cli.asking.interactive", lambda: True)
    answered_no = project.cli("repair", input="n\n")
    assert answered_no.exit_code == 0 and "Recorded new checksums: nothing." in answered_no.stdout
    assert project.digest() == before
    result = project.cli("repair", "--yes")
    assert result.exit_code == 0 and "Recorded new checksums: 2." in result.stdout
    assert project.manager().status()[1]["state"] == "applied"
    assert project.manager().migrate() == []
    with pytest.raises(PlanError, match="version 1 is applied and its file has not changed since: repair records"):
        project.manager().repair([1])


def test_repair_with_standard_input_closed_refuses_as_without_a_terminal(project: Project) -> None:
    """No standard input at all (``<&-``): Python has none to ask; the same refusal, one line."""
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed", "DROP TABLE b;")
    before = project.digest()
    command = [str(console_script()), "repair", "--db", str(project.db), "--dir", str(project.dir)]
    result = subprocess.run(
        command, cwd=project.root, capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.close(0)
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "and there is no terminal to ask" in result.stderr
    assert project.digest() == before


def test_repair_of_a_version_not_applied_or_whose_file_is_missing_says_which(project: Project) -> None:
    """Both were 'not an applied migration whose file changed'; a missing one is applied."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    project.sql("003_c.sql", "CREATE TABLE c (x);", "DROP TABLE c;")
    (project.dir / "002_b.sql").unlink()
    before = project.digest()
    with pytest.raises(PlanError, match=r"version 2 is applied but its file is missing from .* \(restore it first\)"):
        project.manager().repair([2])
    with pytest.raises(PlanError, match="version 3 is not applied: repair records a changed file's checksum"):
        project.manager().repair([3])
    assert project.digest() == before and project.history() == [1, 2]


def test_repair_with_nothing_to_repair_leaves_an_application_s_database_without_history(project: Project) -> None:
    """It made the history tables anyway, and a database with tables and a history is
    vcp-migrate's: the refusal to run on an application's tables was gone, and the next 'up'
    recorded a CREATE TABLE IF NOT EXISTS that did nothing."""
    project.sql("001_trades.sql", "CREATE TABLE IF NOT EXISTS trades(id INTEGER PRIMARY KEY, symbol TEXT NOT NULL);")
    with closing(sqlite3.connect(project.db)) as application:
        application.execute("CREATE TABLE trades(id INTEGER PRIMARY KEY, sym TEXT)")
        application.commit()
    before = project.digest()
    result = project.cli("repair")
    assert result.exit_code == 0 and result.stdout.strip() == "Recorded new checksums: nothing."
    assert project.digest() == before
    refused = project.cli("migrate")
    assert refused.exit_code == 1 and "and no migration history" in refused.stderr
    assert project.digest() == before and project.history() == []


def test_repair_of_an_empty_list_of_versions_repairs_nothing_and_says_so(project: Project) -> None:
    """An empty list meant every modified migration, recorded without asking when no confirm was given."""
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- edited", "DROP TABLE b;")
    before = project.digest()
    with pytest.raises(UsageError, match=r"^versions is empty \(name the versions to repair, or None for every"):
        project.manager().repair([])
    assert project.digest() == before and project.manager().status()[1]["state"] == "modified"


BROKEN = {
    "002_b.sql": "-- migrate:up\nCREATE TABLE b(x);\n-- migrate: down\nDROP TABLE b;\n",
    "002_b.py": "def up(connection):\n    connection.execute('CREATE TABLE b(x)'\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_repair_refuses_an_edit_that_cannot_be_loaded(project: Project, name: str) -> None:
    """Its checksum recorded, status called it applied and sound: the next rollback failed on it."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    if name.endswith(".py"):
        project.write(name, "def up(c):\n    c.execute('CREATE TABLE b(x)')\n\ndef down(c):\n    pass\n")
    else:
        project.sql(name, "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate()
    project.write(name, BROKEN[name])
    before = project.digest()
    result = project.cli("repair", "--yes")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {project.dir / name}: line ")
    assert result.stderr.strip().endswith("then repair it; nothing was recorded)") and result.stderr.count("\n") == 1
    assert project.digest() == before and project.manager().status()[1]["state"] == "modified"


def test_repair_shows_escape_sequences_in_the_diff_as_text(project: Project) -> None:
    """Escapes in an edited file reached the terminal: they could move the cursor up and erase
    the lines of the diff a reviewer was asked to accept."""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "DROP TABLE t;")
    project.manager().migrate()
    hidden = "DROP TABLE t; /* \x1b[1A\x1b[2K\x1b[1A\x1b[2K */ DELETE FROM t;"
    project.sql("001_t.sql", "CREATE TABLE t(a);", hidden)
    result = project.cli("repair", "--yes")
    assert result.exit_code == 0 and "\x1b" not in result.stdout
    assert "+DROP TABLE t; /* \\x1b[1A\\x1b[2K\\x1b[1A\\x1b[2K */ DELETE FROM t;" in result.stdout


def test_repair_with_quiet_and_yes_prints_nothing(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- edited", "DROP TABLE b;")
    result = project.cli("repair", "--yes", "-q")
    assert result.exit_code == 0 and result.stdout == ""
    assert project.manager().status()[1]["state"] == "applied"


def test_repair_refuses_a_history_carrying_a_trigger_it_did_not_make(project: Project) -> None:
    three(project)
    project.manager().migrate()
    error = trigger_on_the_history(project)
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed: comment only", "DROP TABLE b;")
    before = project.digest()
    result = project.cli("repair", "--yes")
    assert (result.exit_code, result.stderr, result.stdout) == (1, error + "\n", "")
    assert project.digest() == before and project.manager().status()[1]["state"] == "modified"
