"""What a run on a real libSQL server says when it is stopped outside a migration: the server not
answering the lease's requests, Ctrl-C while it waits for the lease or lets go of it, a bad URL.
Each says what is true at that point, and names only settings the command has."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from vcp_migrate import MigrationManager
from vcp_migrate.cli.naming import without_options
from vcp_migrate.errors import DatabaseError

from .cluster import Cluster, Node
from .conftest import Project
from .lost_answers import LosingProxy
from .test_server import cli, cluster, history, lone_server, process, query, slow_migration, wait_until

__all__ = ["cluster", "lone_server"]  # the fixtures, used by name


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


def test_ctrl_c_while_waiting_for_the_lease_says_nothing_was_changed(project: Project, cluster: Cluster) -> None:
    """It said "a transactional migration is rolled back whole", of a run that had not begun one."""
    url = cluster.primary.url
    started = slow_migration(project, 4)
    holder = process(project, url, "migrate", "--no-backup")
    waiter: subprocess.Popen[str] | None = None
    try:
        wait_until(started.exists, timeout=30)
        waiter = process(project, url, "migrate", "--no-backup")
        assert waiter.stderr is not None
        assert waiter.stderr.readline().startswith("waiting for the run lock held by ")
        waiter.send_signal(signal.SIGINT)
        _, err = waiter.communicate(timeout=30)
        holder.communicate(timeout=60)
    finally:
        for runner in (holder, waiter):
            if runner is not None:
                runner.kill()
    assert waiter.returncode == 130 and "Traceback" not in err, err
    assert err == (
        f"Error: {url}: interrupted while taking the run lock (the database's lease); nothing was changed (a lease"
        " the request in flight may have taken expires by itself within 30 s)\n"
    )
    assert holder.returncode == 0 and history(url) == [1]  # the holder's, applied once
    assert query(url, "SELECT count(*) FROM slow") == [(1,)]


def test_ctrl_c_while_letting_go_of_the_lease_says_the_commits_stay(project: Project, cluster: Cluster) -> None:
    """It said "a transactional migration is rolled back whole", after the run's commits."""
    url = cluster.primary.url
    one(project)
    runners: list[subprocess.Popen[str]] = []

    def interrupt() -> None:  # the DELETE of the lease's row is done; its answer is still awaited
        runners[0].send_signal(signal.SIGINT)
        time.sleep(1)

    with LosingProxy(url, "DELETE FROM vcp_migrations_lease", then=interrupt) as proxy:
        runners.append(process(project, proxy.url, "migrate", "--no-backup"))
        out, err = runners[0].communicate(timeout=60)
    assert runners[0].returncode == 130 and "Traceback" not in err, out + err
    assert "Applied 1 trades" in out
    assert err.startswith(
        f"Error: {proxy.url}: interrupted while letting go of the run lock (the database's lease): what this run"
        " committed stays committed ('vcp-migrate status' shows what is applied); the lease expires by itself"
        " within 30 s\n"
    ), err
    assert history(url) == [1] and query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


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
