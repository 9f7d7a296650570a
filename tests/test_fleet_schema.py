"""The schema file a fleet run writes once, from one database: after every run that changed a
database, failed or cut short too; the databases reopened after each run."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from vcp_migrate import MigrationManager
from vcp_migrate.errors import UsageError
from vcp_migrate.fleet import Fleet

from .conftest import ENV_VARS, Project, console_script
from .test_fleet import _fleet, _slow_tenants


def _history(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")]


def _at_version_1(project: Project, count: int) -> list[Path]:
    project.sql("001_a.sql", "CREATE TABLE a (id INTEGER);", "DROP TABLE a;")
    paths = [project.root / f"tenant{n}.db" for n in range(count)]
    for path in paths:
        MigrationManager(path, project.dir).migrate()
    assert (project.dir / "schema.sql").read_text().splitlines()[1] == "-- version: 1"
    project.sql("002_b.sql", "CREATE TABLE b (id INTEGER);", "DROP TABLE b;")
    return paths


def test_databases_that_failed_after_committing_migrations_get_the_schema_file_written(project: Project) -> None:
    """Every database committed 2 and failed on 3: the schema file stayed at version 1 (only
    "migrated" databases counted), and once 3 was removed a rerun had nothing to do, so it
    stayed so for good. 'vcp-migrate migrate' writes it after such a run."""
    paths = _at_version_1(project, 2)
    project.sql("003_bad.sql", "INSERT INTO no_such_table VALUES (1);", "SELECT 1;")
    failed = _fleet(project, "migrate", *map(str, paths), "--keep-going", "--jobs", "1")
    assert failed.returncode == 1, failed.stderr
    assert [_history(path) for path in paths] == [[1, 2], [1, 2]]
    dumped = (project.dir / "schema.sql").read_text()
    assert dumped.splitlines()[1] == "-- version: 2" and "CREATE TABLE b" in dumped


def test_a_run_cut_short_writes_the_schema_file_of_what_it_changed(project: Project) -> None:
    """Ctrl-C once the first database was done: those migrated are at 2, and the schema file
    stayed at 1 (a run stopped wrote none)."""
    paths = _slow_tenants(project, 20, 0.2)
    dump = project.dir / "schema.sql"  # as a run to version 1 left it
    dump.write_text("-- Schema written by vcp-migrate after the last change; do not edit.\n-- version: 1\n\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", "1",
               "--json"]  # fmt: skip
    process = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               start_new_session=True, text=True)  # fmt: skip
    assert process.stdout is not None
    process.stdout.readline()  # one database done: the run is under way
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    versions = [_history(path)[-1] for path in paths]
    assert 1 <= versions.count(2) < len(paths), versions
    dumped = dump.read_text()
    assert dumped.splitlines()[1] == "-- version: 2" and "notional" in dumped


def test_a_schema_file_named_as_a_database_s_journal_stops_the_fleet_before_it_starts(project: Project) -> None:
    """'vcp-migrate migrate' refuses it; the fleet wrote its schema file there, which SQLite took
    for that database's journal and deleted at the next open."""
    paths = _at_version_1(project, 2)
    (project.dir / "schema.sql").unlink()  # the schema file is named elsewhere: not one in the migrations
    for suffix in ("-journal", "-wal", "-shm"):
        schema_file = Path(f"{paths[1]}{suffix}")
        with pytest.raises(UsageError, match=re.escape("names the database itself (or its journal)")):
            Fleet(paths, project.dir, schema_file=schema_file).migrate(jobs=1)
        assert not schema_file.exists()
    (project.root / "pyproject.toml").write_text(f'[tool.vcp-migrate]\nschema_file = "{paths[0]}-journal"\n')
    refused = _fleet(project, "migrate", *map(str, paths), "--jobs", "1")
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert "names the database itself (or its journal)" in " ".join(refused.stderr.split())
    assert not Path(f"{paths[0]}-journal").exists()
    assert [_history(path) for path in paths] == [[1], [1]]
