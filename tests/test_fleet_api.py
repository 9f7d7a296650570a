"""The Python Fleet API where the command line never goes: runs started from other threads,
and the errors its arguments raise; the databases checked after each run."""

from __future__ import annotations

import threading

import pytest

from vcp_migrate.errors import UsageError
from vcp_migrate.fleet import Fleet, FleetRun

from .conftest import Project
from .test_fleet import _consistent, _tenants


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
