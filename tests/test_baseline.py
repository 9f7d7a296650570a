"""baseline: record migrations as applied without running them, on a database made before."""

from __future__ import annotations

import sqlite3

import pytest

from vcp_migrate import PlanError

from .conftest import Project, three


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
