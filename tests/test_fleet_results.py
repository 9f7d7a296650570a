"""What a fleet run says each database is at, and the summary's counts, checked against the
databases themselves, reopened after the run."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from vcp_migrate import MigrationManager
from vcp_migrate.fleet import Fleet

from .conftest import Project
from .test_fleet import _fleet


def _history(path: Path) -> tuple[list[int], int]:
    with closing(sqlite3.connect(path)) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")]
        return versions, connection.execute("PRAGMA user_version").fetchone()[0]


def test_a_rollback_that_fails_after_undoing_one_says_the_version_it_left(project: Project) -> None:
    """--steps 2 undid 3 and failed on 2's down: the database is at 2, but its line, its JSON,
    the report and the summary's count at each version said 3 (the version before the run)."""
    project.sql("001_a.sql", "CREATE TABLE a (id INTEGER);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (id INTEGER);", "DROP TABLE no_such_table;")
    project.sql("003_c.sql", "CREATE TABLE c (id INTEGER);", "DROP TABLE c;")
    paths = [project.root / "one.db", project.root / "two.db"]
    for path in paths:
        MigrationManager(path, project.dir, dump_schema=False).migrate()
    done = _fleet(project, "rollback", *map(str, paths), "--steps", "2", "--keep-going", "--jobs", "2", "--no-dump",
                  "--json", "--report", "run.json")  # fmt: skip
    assert done.returncode == 1, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((r["path"], r["state"], r["version_before"], r["version_after"], r["applied"]) for r in rows) == [
        (str(path), "failed", 3, 2, [3]) for path in paths
    ]
    report = json.loads((project.root / "run.json").read_text())
    assert [r["version_after"] for r in report["results"]] == [2, 2]
    assert report["summary"]["versions"] == {"2": 2}
    assert "at each version: v2: 2" in done.stderr
    for path in paths:
        assert _history(path) == ([1, 2], 2)
        with closing(sqlite3.connect(path)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"a", "b"} <= tables and "c" not in tables


def test_a_database_lost_in_flight_and_gone_since_is_not_made_again(tmp_path: Path) -> None:
    """Reading the version of a database whose run was cut short (its worker killed, Ctrl-C
    twice) made an empty file where it had been, if it had been removed meanwhile."""
    from vcp_migrate.fleet import worker

    gone = tmp_path / "gone.db"
    result = worker.lost(str(gone), "its worker process ended abruptly")
    assert (result.state, result.kind, result.version_after) == ("failed", "interrupted", None)
    assert not gone.exists() and list(tmp_path.iterdir()) == []


def test_an_unexpected_error_on_one_database_has_a_kind_and_says_what_to_do(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its kind was null in the JSON (every other failure has one), and its error said what went
    wrong but not what to do about it."""
    from vcp_migrate.fleet import commands

    project.sql("001_a.sql", "CREATE TABLE a (id INTEGER);", "DROP TABLE a;")
    paths = [project.root / "one.db", project.root / "two.db"]
    for path in paths:
        MigrationManager(path, project.dir, dump_schema=False).migrate()
    project.sql("002_b.sql", "CREATE TABLE b (id INTEGER);", "DROP TABLE b;")
    real = commands.COMMANDS["migrate"]

    def broken(job: Any, settings: Any, seen: Any, result: Any) -> Any:
        if settings.db_path.name == "one.db":
            raise RuntimeError("boom")
        return real(job, settings, seen, result)

    monkeypatch.setitem(commands.COMMANDS, "migrate", broken)
    run = Fleet(paths, project.dir, dump_schema=False).migrate(jobs=1, keep_going=True)
    failed, migrated = run.results
    assert (failed.state, failed.kind) == ("failed", "error")
    assert failed.error == (
        f"{paths[0]}: unexpected RuntimeError: boom (a defect of vcp-migrate: run the single command on this"
        " database with --debug, and report it)"
    )
    assert failed.as_dict()["kind"] == "error" and migrated.state == "migrated"
    assert _history(paths[0]) == ([1], 1) and _history(paths[1]) == ([1, 2], 2)


def test_a_run_the_policy_stopped_says_why_and_what_to_do(project: Project) -> None:
    """The summary counted the databases not started and said nothing of why (the first failure,
    --max-failures, a canary) nor how to run them."""
    from .test_fleet import _digest, _tenants

    paths = _tenants(project, 6, rows=1, frozen=(0,))
    before = {path: _digest(path) for path in paths}
    default = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--report", "run.json")
    assert default.returncode == 1
    assert default.stdout.splitlines()[-1] == (
        "stopped after 1 failure(s) (at the first, as by default): 5 database(s) not started; fix the cause and"
        " run again with --only-failed run.json, or pass --keep-going to run them all"
    )
    limited = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--max-failures", "1", "--json", "-q")
    assert limited.returncode == 1 and limited.stderr.splitlines()[-1] == (
        "stopped after 1 failure(s) (at --max-failures 1): 5 database(s) not started; fix the cause and run again"
    )
    assert {path: _digest(path) for path in paths} == before
    canary = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--canary", "2", "--keep-going", "-q")
    assert canary.returncode == 1 and canary.stdout.splitlines()[-1] == (
        "stopped: a database among the first 2 (--canary) failed: 4 not started; fix the cause and run again"
    )
    assert [_history(path)[0][-1] for path in paths] == [1, 2, 1, 1, 1, 1]
    everything = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--keep-going")
    assert everything.returncode == 1 and not any(line.startswith("stopped") for line in everything.stdout.splitlines())
    assert [_history(path)[0][-1] for path in paths] == [1, 2, 2, 2, 2, 2]


def test_a_rollback_of_a_migration_whose_file_is_missing_points_to_what_exists(project: Project) -> None:
    """It said "or pass --from-history to run the down kept in the database", an option fleet
    rollback does not have (nor Fleet.rollback a parameter): a fleet never runs code kept in its
    databases."""
    project.sql("001_a.sql", "CREATE TABLE a (id INTEGER);", "DROP TABLE a;")
    gone = project.sql("002_b.sql", "CREATE TABLE b (id INTEGER);", "DROP TABLE b;")
    paths = [project.root / "one.db", project.root / "two.db"]
    for path in paths:
        MigrationManager(path, project.dir, dump_schema=False).migrate()
    gone.unlink()
    hint = (
        "restore the file, or roll this database back on its own, not in a fleet, with {}, which shows the down"
        " kept in it before running it; its history row was kept and nothing was changed"
    )
    done = _fleet(project, "rollback", *map(str, paths), "--keep-going", "--jobs", "1", "--no-dump", "-q")
    assert done.returncode == 1
    assert done.stdout.count(hint.format("--from-history")) == 2 and "or pass --from-history" not in done.stdout
    run = Fleet(paths, project.dir, dump_schema=False).rollback(jobs=1, keep_going=True)
    assert [r.kind for r in run.results] == ["plan", "plan"]
    assert all(hint.format("from_history=True") in (r.message() or "") for r in run.results)
    assert [_history(path) for path in paths] == [([1, 2], 2), ([1, 2], 2)]


def test_databases_not_started_with_no_failure_are_not_said_to_follow_one() -> None:
    """Workers that end before they take any database (one that cannot start is replaced only so
    many times) leave the rest not started with no failure: that read "stopped after 0
    failure(s) (at the first, as by default)"."""
    from vcp_migrate.cli.fleet_shared import Stopping, _why_stopped
    from vcp_migrate.fleet import DatabaseResult, FleetRun
    from vcp_migrate.fleet.results import summarize

    results = [DatabaseResult("one.db", "migrated"), DatabaseResult("two.db", "not-started")]
    run = FleetRun(results, summarize(results, 0.1))
    said = _why_stopped(run, Stopping(keep_going=False, max_failures=None, canary=0), "run.json")
    assert said == (
        "stopped: 1 database(s) not started, the worker processes having ended; fix the cause and run again"
        " with --only-failed run.json"
    )
