"""baseline: record migrations as applied without running them, on a database made before."""

from __future__ import annotations

import sqlite3

import pytest

from vcp_migrate import PlanError

from .conftest import Project, three, trigger_on_the_history


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


def test_baseline_refuses_to_record_pending_migrations_below_an_applied_one(project: Project) -> None:
    """Out of order: migrate refuses them unless told to run them; baseline recorded them as
    applied without running them, and status then called the database sound without table b."""
    three(project)
    (project.dir / "002_b.sql").rename(project.root / "002_b.sql")
    project.manager().migrate()
    (project.root / "002_b.sql").rename(project.dir / "002_b.sql")
    before = project.digest()
    result = project.cli("baseline", "3")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: {project.db}: version(s) 2 are pending below applied version 3: baseline would record them"
        " without running them (apply them with 'vcp-migrate migrate --allow-out-of-order'; nothing was changed)"
    )
    assert project.digest() == before and project.history() == [1, 3]


def test_baseline_with_quiet_prints_nothing(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    result = project.cli("baseline", "2", "-q")
    assert result.exit_code == 0 and result.stdout == "" and project.history() == [1, 2]


def test_baseline_refuses_a_history_carrying_a_trigger_it_did_not_make(project: Project) -> None:
    """The trigger would fire on the rows baseline records (here deleting version 1's) unseen."""
    three(project)
    project.manager().migrate(target=1)
    error = trigger_on_the_history(project)
    connection = sqlite3.connect(project.db)
    connection.execute("CREATE TABLE b(x)")
    connection.commit()
    connection.close()
    before = project.digest()
    result = project.cli("baseline", "2")
    assert (result.exit_code, result.stderr) == (1, error + "\n")
    assert project.digest() == before and project.history() == [1]


BROKEN = {
    "002_b.sql": "-- migrate:up\nCREATE TABLE b(x);\n-- migrate: down\nDROP TABLE b;\n",
    "002_b.py": "def up(connection)\n    connection.execute('CREATE TABLE b(x)')\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_baseline_refuses_a_file_that_cannot_be_loaded(project: Project, name: str) -> None:
    """It was recorded as applied with its checksum: status called it applied and sound, and the
    rollback that needed it failed on it."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write(name, BROKEN[name])
    connection = sqlite3.connect(project.db)
    connection.executescript("CREATE TABLE a(x); CREATE TABLE b(x);")
    connection.close()
    before = project.digest()
    result = project.cli("baseline", "2")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {project.dir / name}: line ")
    assert result.stderr.strip().endswith("then baseline again; nothing was recorded)")
    assert result.stderr.count("\n") == 1
    assert project.digest() == before and project.history() == []
    assert project.query("SELECT count(*) FROM sqlite_master WHERE name = 'vcp_migrations'") == [(0,)]


@pytest.mark.parametrize("made", ["an empty file", "rolled back to 0"])
def test_baseline_refuses_a_database_with_nothing_to_adopt(project: Project, made: str) -> None:
    """An empty file (touched, or a mistyped path's) or a history rolled back to 0: baseline
    recorded 1 and 2 as applied with neither table there, and migrate then skipped them."""
    three(project)
    if made == "an empty file":
        project.db.touch()
    else:
        project.manager().migrate()
        project.manager().rollback(to=0)
    before, dumped = project.db.read_bytes(), sorted(p.name for p in project.dir.iterdir())
    result = project.cli("baseline", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip() == (
        f"Error: {project.db}: has no tables, indexes, views or triggers: baseline would record version(s) 1, 2"
        " as applied with nothing of them there (apply them with 'vcp-migrate migrate'; nothing was recorded)"
    )
    assert project.db.read_bytes() == before and project.history() == []
    assert sorted(p.name for p in project.dir.iterdir()) == dumped  # no schema file written either
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2, 3]
    assert project.tables() == {"a", "b", "c"}
