"""What a run on a real libSQL server says when it is stopped outside a migration: the server not
answering the lease's requests, Ctrl-C while it waits for the lease or lets go of it, a bad URL.
Each says what is true at that point, and names only settings the command has."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vcp_migrate import MigrationManager
from vcp_migrate.cli.naming import without_options
from vcp_migrate.errors import DatabaseError

from .cluster import Cluster, Node
from .conftest import Project
from .test_server import cli, cluster, history, query

__all__ = ["cluster"]  # the fixture, used by name


@pytest.fixture
def lone_server(libsql_cluster: Cluster, tmp_path: Path) -> Iterator[Node]:
    """A sqld of its own, to stop (SIGSTOP) without disturbing the session's cluster."""
    node = Node("lone", libsql_cluster.binary, tmp_path / "lone", [])
    node.start()
    try:
        yield node
    finally:
        node.stop()


def one(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE trades (id INTEGER PRIMARY KEY);", "DROP TABLE trades;")


def test_a_lease_request_that_times_out_names_the_timeout_and_says_one_thing(
    project: Project, lone_server: Node
) -> None:
    """It said "allow a longer timeout" without saying how, and both "whether the request took
    effect is unknown" and "nothing was changed"."""
    url = lone_server.url
    one(project)
    with lone_server.paused():
        result = cli(project, url, "migrate", "--no-backup", "--lock-timeout", "10")
        with pytest.raises(DatabaseError) as raised:
            MigrationManager(url, project.dir, lock_timeout=10, backup=False).migrate()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (
        f"Error: {url}: the server did not answer within 10 s; check that it is running and not overloaded, or"
        " raise --lock-timeout (each request waits that long, 10 to 300 s) (nothing was changed; a lease the"
        " request may have taken expires by itself within 30 s)\n"
    )
    assert "or raise lock_timeout (each request waits that long" in str(raised.value)  # the API's name
    assert history(url) == [] and query(url, "SELECT name FROM sqlite_master WHERE name = 'trades'") == []
    time.sleep(0.1)
    assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "60").exit_code == 0
    assert history(url) == [1]


def test_a_command_without_the_option_is_told_where_to_set_the_timeout() -> None:
    assert without_options(["db", "directory", "json"]) == {
        "lock_timeout": "VCP_MIGRATE_LOCK_TIMEOUT (or lock_timeout in [tool.vcp-migrate])"
    }
    assert without_options(["db", "lock_timeout"]) == {}


@pytest.mark.parametrize(
    ("command", "given", "named"),
    [
        ("status", ["--db", "http://exa mple:8080"], "check --db"),
        ("current", ["--db", "http://exa mple:8080"], "check --db"),
        (
            "migrate",
            ["--db", "http://127.0.0.1:1", "--wait-for-replica", "http://exa mple"],
            "check --wait-for-replica",
        ),
    ],
)
def test_a_bad_url_names_only_the_option_that_holds_it(
    project: Project, command: str, given: list[str], named: str
) -> None:
    """status, which has no --wait-for-replica, was told to check it."""
    result = project.cli(command, *given)
    assert result.exit_code == 2 and f"({named})" in result.output, result.output
    assert ("--wait-for-replica" in result.output) == ("--wait-for-replica" in given)
    assert not project.db.exists()  # nothing was made
