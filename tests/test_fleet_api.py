"""The Python Fleet API where the command line never goes: runs started from other threads,
and the errors its arguments raise; the databases checked after each run."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from vcp_migrate.errors import UsageError
from vcp_migrate.fleet import DatabaseResult, Fleet, FleetCallbackFailed, FleetRun

from .conftest import Project
from .test_fleet import _consistent, _digest, _slow_tenants, _tenants


def test_a_fleet_started_from_another_thread_runs_its_workers(project: Project) -> None:
    """It raised ValueError ("signal only works in main thread") as it started its first worker:
    a job runner or a web server that runs the fleet in a thread could not use more than one job."""
    paths = _tenants(project, 4, rows=1)
    runs: list[FleetRun] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            runs.append(Fleet(paths, project.dir, dump_schema=False).migrate(jobs=2))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=migrate)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive() and errors == []
    assert runs[0].summary.states == {"migrated": 4}
    assert [_consistent(path) for path in paths] == [2, 2, 2, 2]


def test_a_stopping_setting_out_of_range_names_itself_and_its_value(project: Project) -> None:
    """canary=-1 said "max_failures must be 1 or more and canary 0 or more": which one, and
    what was given, the reader had to work out."""
    paths = _tenants(project, 1, rows=1)
    for given, said in (
        ({"canary": -1}, "canary must be 0 or more, not -1 (nothing was changed)"),
        ({"max_failures": 0}, "max_failures must be 1 or more, not 0 (nothing was changed)"),
    ):
        with pytest.raises(UsageError) as refused:
            Fleet(paths, project.dir).migrate(jobs=1, **given)
        assert str(refused.value) == said
    assert _consistent(paths[0]) == 1


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_on_result_that_raises_stops_the_run_and_loses_neither_results_nor_the_schema_file(
    project: Project, jobs: int
) -> None:
    """The callback's exception came out of migrate() as it was raised: the results of the
    databases already migrated were lost with the run, and the schema file was not written."""
    paths = _slow_tenants(project, 20, 0.05)
    before = {path: _digest(path) for path in paths}
    seen: list[str] = []

    def on_result(result: DatabaseResult) -> None:
        seen.append(result.path)
        if len(seen) == 2:
            raise ValueError("the dashboard is down")

    with pytest.raises(FleetCallbackFailed) as failed:
        Fleet(paths, project.dir).migrate(jobs=jobs, on_result=on_result)
    assert len(seen) == 2  # never called again once it raised
    cause = failed.value.__cause__
    assert isinstance(cause, ValueError) and str(cause) == "the dashboard is down"
    assert str(failed.value) == (
        f"{seen[1]}: on_result raised ValueError: the dashboard is down, given this database's result; no database"
        " was started after it, those in flight finished (this error's run has every database's result, and the"
        " schema file was written for what committed; fix on_result and run again)"
    )
    run = failed.value.run
    assert [result.path for result in run.results] == [str(path) for path in paths]
    states = [result.state for result in run.results]
    assert set(states) == {"migrated", "not-started"} and 2 <= states.count("migrated") <= (2 if jobs == 1 else 6)
    assert run.summary.states == {"migrated": states.count("migrated"), "not-started": states.count("not-started")}
    for path, result in zip(paths, run.results, strict=True):
        if result.state == "migrated":
            assert _consistent(path) == 2 and result.version_after == 2
        else:
            assert _digest(path) == before[path]
    schema = (project.dir / "schema.sql").read_text()
    assert schema.splitlines()[1] == "-- version: 2" and "notional" in schema
    finished = Fleet([Path(r.path) for r in run.results if r.state == "not-started"], project.dir).migrate(jobs=jobs)
    assert finished.summary.ok and all(_consistent(path) == 2 for path in paths)


def test_a_status_whose_on_result_raises_marks_the_drifted_among_the_databases_read(project: Project) -> None:
    """As a status run interrupted: its run carries the drift of those read, as a whole run's does."""
    paths = _tenants(project, 6, rows=1)
    Fleet(paths, project.dir).migrate(jobs=1)
    with closing(sqlite3.connect(paths[0])) as connection:
        connection.execute("CREATE INDEX drift ON trades(qty)")
    before = {path: _digest(path) for path in paths}
    seen: list[DatabaseResult] = []

    def on_result(result: DatabaseResult) -> None:
        seen.append(result)
        if len(seen) == 3:
            raise RuntimeError("enough")

    with pytest.raises(FleetCallbackFailed) as failed:
        Fleet(paths, project.dir).status(jobs=1, on_result=on_result)
    results = failed.value.run.results
    assert [(r.state, r.problems) for r in results] == [("checked", ("drifted",)), ("checked", ()), ("checked", ())] + [
        ("not-started", ())
    ] * 3
    assert {path: _digest(path) for path in paths} == before
