"""A database on a real libSQL cluster (a sqld primary and two replicas on loopback): migrate,
rollback, status and current give the guarantees they give on a file, checked each time by
reading the database again through a fresh client. Faults are real: runners killed while they
hold the lease, the primary killed mid-migration, the server taking the write lock away."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vcp_migrate import MigrationManager
from vcp_migrate.backends import hrana
from vcp_migrate.cli import main
from vcp_migrate.errors import DatabaseError
from vcp_migrate.models import MigrationRun
from vcp_migrate.observer import Observer

from .cluster import Cluster, Node, free_port
from .conftest import ENV_VARS, Project, console_script
from .lost_answers import LosingProxy

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run one statement through a fresh client, as an outsider would."""
    with hrana.Stream(url, timeout=10) as stream:
        return [tuple(row) for row in stream.execute(sql, args).rows]  # type: ignore[arg-type]


def history(url: str) -> list[int]:
    if not query(url, "SELECT name FROM sqlite_master WHERE name = 'vcp_migrations'"):
        return []
    return [int(row[0]) for row in query(url, "SELECT version FROM vcp_migrations ORDER BY version")]  # type: ignore[call-overload]


def tables(url: str) -> set[str]:
    rows = query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows if not str(r[0]).startswith(("sqlite_", "vcp_migrations", "_litestream"))}


def wipe(url: str) -> None:
    """Drop everything in the server's database: each test starts from an empty one."""
    with hrana.Stream(url, timeout=30) as stream:
        stream.execute("PRAGMA foreign_keys = OFF")
        objects = stream.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!'"
            " AND type IN ('table', 'view', 'trigger')"
        ).rows
        for kind, name in objects:
            stream.execute(f'DROP {str(kind).upper()} IF EXISTS "{name}"')
        stream.execute("PRAGMA user_version = 0")


def wait_until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def cluster(libsql_cluster: Cluster, project: Project) -> Iterator[Cluster]:
    """The session's cluster, its database emptied (on the replicas too) before the test."""
    if libsql_cluster.primary.process is None:  # a test that killed it failed before restarting it
        libsql_cluster.restart_primary()
    wipe(libsql_cluster.primary.url)
    libsql_cluster.settle()
    yield libsql_cluster


def cli(project: Project, url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    command, *rest = args
    return CliRunner().invoke(main, [command, "--db", url, "--dir", str(project.dir), *rest], env=env)


def process(project: Project, url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command, *rest = args
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | (env or {})
    return subprocess.Popen(
        [str(console_script()), command, "--db", url, "--dir", str(project.dir), *rest],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )  # fmt: skip


def two(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);", "DROP TABLE trades;")
    project.sql("002_fills.sql", "CREATE TABLE fills (id INTEGER PRIMARY KEY, qty INTEGER);", "DROP TABLE fills;")


# -- migrate, rollback, status, current -----------------------------------------------------------


def test_migrate_then_rollback_on_the_server(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    result = cli(project, url, "migrate")
    assert result.exit_code == 0, result.output
    assert "Applied 2 migration(s)" in result.output
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}
    assert query(url, "PRAGMA user_version") == [(2,)]
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]  # released
    again = cli(project, url, "migrate")
    assert again.exit_code == 0 and f"Nothing to apply: {url} is up to date." in again.output
    back = cli(project, url, "rollback", "--steps", "2")
    assert back.exit_code == 0, back.output
    assert history(url) == [] and tables(url) == set() and query(url, "PRAGMA user_version") == [(0,)]


def test_status_current_and_a_backup_on_the_server(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate", "--to", "1").exit_code == 0
    status = cli(project, url, "status", "--exit-code")
    assert status.exit_code == 3 and f"Migrations of {url}" in status.output
    assert "1 applied, 1 pending" in status.output
    assert cli(project, url, "current").output.strip() == "1"
    query(url, "INSERT INTO trades (symbol) VALUES ('EURUSD')")
    result = cli(project, url, "migrate")
    assert result.exit_code == 0 and "Backed up to" in result.output
    (backup,) = (project.root / f"127.0.0.1_{cluster.primary.port}.db.backups").iterdir()
    import sqlite3

    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT symbol FROM trades").fetchall() == [("EURUSD",)]
    assert copy.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]
    assert copy.execute("SELECT name FROM sqlite_master WHERE name = 'vcp_migrations_lease'").fetchall() == []
    copy.close()


def test_a_python_migration_runs_on_the_server_and_cannot_commit(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    project.write(
        "001_seed.py",
        """
        def up(connection):
            connection.execute("CREATE TABLE seed (x)")
            connection.executemany("INSERT INTO seed VALUES (?)", [(1,), (2,)])
            connection.executescript("INSERT INTO seed VALUES (3); INSERT INTO seed VALUES (4);")

        def down(connection):
            connection.execute("DROP TABLE seed")
        """,
    )
    project.write(
        "002_commit.py",
        """
        def up(connection):
            connection.execute("CREATE TABLE two (x)")
            connection.commit()

        def down(connection):
            pass
        """,
    )
    result = cli(project, url, "migrate", "--no-backup")
    assert result.exit_code == 1 and "up() tried to call commit()" in result.output
    assert history(url) == [1] and tables(url) == {"seed"}
    assert query(url, "SELECT x FROM seed ORDER BY x") == [(1,), (2,), (3,), (4,)]


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (
            "002_b.sql",
            "-- migrate:up\nCREATE TABLE b (x);\nDELETE FROM main.vcp_migrations WHERE version = 1;\n",
            "statement 2 tried to write to the history table vcp_migrations (INSERT, UPDATE or DELETE); leave the"
            " history tables to vcp-migrate",
        ),
        (
            "002_b.sql",
            "-- migrate:up transaction:false\nCREATE TRIGGER tr AFTER INSERT ON trades BEGIN"
            " UPDATE OR IGNORE [vcp_migrations_meta] SET value = 'x'; END;\n",
            "statement 1 tried to create a trigger that writes to the history table vcp_migrations_meta",
        ),
        (
            "002_b.py",
            'def up(connection):\n    connection.execute("INSERT INTO vcp_migrations (version, name, checksum,'
            " applied_at, execution_ms) VALUES (9, 'x', 'x', 'x', 0)\")\n",
            "up() tried to write to the history table vcp_migrations",
        ),
        (
            "002_b.sql",
            "-- migrate:up\nDROP TABLE vcp_migrations;\nCREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY);\n",
            "statement 1 tried to drop a history table (vcp_migrations); leave the history tables to vcp-migrate",
        ),
        (
            "002_b.sql",
            "-- migrate:up transaction:false\nCREATE INDEX IF NOT EXISTS main.vi ON vcp_migrations (json(name));\n",
            "statement 1 tried to put an index on a history table (vcp_migrations)",
        ),
    ],
    ids=["SQL", "a trigger, outside a transaction", "Python", "dropped and made again", "an index on it"],
)
def test_a_migration_writing_the_history_on_the_server_is_refused_before_it_is_sent(
    project: Project, cluster: Cluster, name: str, text: str, said: str
) -> None:
    url = cluster.primary.url
    project.sql("001_trades.sql", "CREATE TABLE trades (id INTEGER PRIMARY KEY);", "DROP TABLE trades;")
    assert cli(project, url, "migrate").exit_code == 0
    before = query(url, "SELECT * FROM vcp_migrations"), query(url, "SELECT * FROM vcp_migrations_meta")
    project.write(name, text)
    result = cli(project, url, "migrate", "--no-backup")
    assert result.exit_code == 1 and f"{name}: {said}" in " ".join(result.output.split()), result.output
    assert (query(url, "SELECT * FROM vcp_migrations"), query(url, "SELECT * FROM vcp_migrations_meta")) == before
    assert tables(url) == {"trades"} and query(url, "SELECT name FROM sqlite_master WHERE type = 'trigger'") == []


def test_wait_for_replicas_then_read_them(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    replicas = [replica.url for replica in cluster.replicas]
    two(project)
    waits = [arg for replica in replicas for arg in ("--wait-for-replica", replica)]
    result = cli(project, url, "migrate", "--no-backup", *waits)
    assert result.exit_code == 0, result.output
    for replica in replicas:  # no waiting here: the run waited
        assert history(replica) == [1, 2] and tables(replica) == {"trades", "fills"}
        status = cli(project, replica, "status", "--exit-code")
        assert status.exit_code == 0 and "2 applied, 0 pending" in status.output
        assert cli(project, replica, "current").output.strip() == "2"


def test_a_replica_that_does_not_catch_up_fails_the_deploy(project: Project, cluster: Cluster) -> None:
    url, replica = cluster.primary.url, cluster.replicas[0]
    two(project)
    with replica.paused():
        result = cli(
            project, url, "migrate", "--no-backup", "--wait-for-replica", replica.url, "--replica-timeout", "1"
        )
    assert result.exit_code == 1
    assert "the primary is at version 2 (committed), but 1 replica(s) did not reach it within 1 s" in result.output
    assert "--replica-timeout" in result.output and "Traceback" not in result.output
    assert history(url) == [1, 2]  # committed: the deploy is told not to trust the replica yet


def test_ctrl_c_while_waiting_for_a_replica_says_the_change_is_committed(project: Project, cluster: Cluster) -> None:
    """It said the migration in progress was rolled back whole, of migrations committed on the primary."""
    url, replica = cluster.primary.url, cluster.replicas[0]
    two(project)
    with replica.paused():
        runner = process(project, url, "migrate", "--no-backup", "--wait-for-replica", replica.url)
        wait_until(lambda: history(url) == [1, 2], timeout=30)
        time.sleep(0.5)  # it waits for the replica now
        runner.send_signal(signal.SIGINT)
        out, err = runner.communicate(timeout=30)
    assert runner.returncode == 130 and "Traceback" not in err, out + err
    assert err.count("Error: ") == 1 and "rolled back" not in err, err
    said = "interrupted while waiting for the replicas: the primary is at version 2 (committed)"
    assert f"Error: {said}; 'vcp-migrate status --db REPLICA' tells whether a replica has it ({replica.url} had" in err
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}
    again = cli(project, url, "migrate", "--no-backup", "--wait-for-replica", replica.url)
    assert again.exit_code == 0 and "Nothing to apply" in again.output, again.output


def test_a_replica_that_reached_a_later_change_of_another_run_is_not_behind(project: Project, cluster: Cluster) -> None:
    """Another run applied version 2 while this one waited for its version 1: the replica, at 2,
    never read "1", and the deploy failed saying a replica at version 2 had not reached version 1."""
    url, replica = cluster.primary.url, cluster.replicas[0]
    two(project)
    with replica.paused():
        waiting = process(
            project, url, "migrate", "--to", "1", "--no-backup", "--wait-for-replica", replica.url,
            "--replica-timeout", "30",
        )  # fmt: skip
        wait_until(lambda: history(url) == [1], timeout=30)
        assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "30").exit_code == 0
        assert history(url) == [1, 2]
    started = time.monotonic()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and err == "", out + err
    assert time.monotonic() - started < 15
    assert history(replica.url) == [1, 2]


# -- the lease ------------------------------------------------------------------------------------


def test_a_killed_runner_blocks_others_until_its_lease_expires(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    project.write(
        "001_slow.py",
        """
        import time

        def up(connection):
            connection.execute("CREATE TABLE slow (x)")
            time.sleep(60)

        def down(connection):
            connection.execute("DROP TABLE slow")
        """,
    )
    lease = 8.0
    runner = process(project, url, "migrate", "--no-backup", "--lease", str(lease))
    wait_until(lambda: query(url, "SELECT name FROM sqlite_master WHERE name = 'vcp_migrations_lease'")
               and query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(1,)], timeout=30)  # fmt: skip
    (holder,) = query(url, "SELECT holder FROM vcp_migrations_lease")[0]
    assert f"pid {runner.pid}" in str(holder)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    killed_at = time.monotonic()
    refused = cli(project, url, "migrate", "--no-backup", "--lock-timeout", "0")
    assert refused.exit_code == 1 and f"pid {runner.pid}" in refused.output and "lease" in refused.output
    project.write("001_slow.py", "def up(connection):\n    connection.execute('CREATE TABLE slow (x)')\n")
    result = cli(project, url, "migrate", "--no-backup", "--lock-timeout", "60", "--lease", str(lease))
    waited = time.monotonic() - killed_at
    assert result.exit_code == 0, result.output
    assert waited >= lease - 2.0  # not before the dead runner's lease ran out
    assert history(url) == [1] and tables(url) == {"slow"}


@pytest.mark.parametrize("stopped", [0.0, 11.0])
def test_a_runner_stalled_past_its_lease_applies_nothing_more_and_says_another_run_took_it(
    project: Project, cluster: Cluster, stopped: float
) -> None:
    """A run stopped (SIGSTOP) mid-migration for longer than its lease: another run takes the lease
    and applies everything; the first, resumed, fails on its next statement, and says that another
    run took its lease, then what that statement ran into (the write lock the server took from it,
    or, stopped for more than 10 s, its stream the server ended: the lease is asked on a new one)."""
    url = cluster.primary.url
    started = slow_migration(project, 3)
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    stalled = process(project, url, "migrate", "--no-backup", "--lease", "2")
    wait_until(started.exists, timeout=30)
    stalled.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        result = cli(project, url, "migrate", "--no-backup", "--lease", "2", "--lock-timeout", "60")
        assert result.exit_code == 0, result.output
        time.sleep(max(0.0, stopped_at + stopped - time.monotonic()))
    finally:
        stalled.send_signal(signal.SIGCONT)
    out, err = stalled.communicate(timeout=60)
    assert stalled.returncode == 1 and "Traceback" not in err, out + err
    assert "the run lock's lease (2 s) expired and another run took it" in err, out + err
    assert "then failed on what it did: the server " in err, out + err
    if stopped:
        assert "the server ended this run's stream after 10 s" in err, out + err
    assert "nothing more was applied" in err, out + err
    assert history(url) == [1, 2] and query(url, "SELECT x FROM slow") == [(1,)]  # the other run's row alone
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def test_a_run_whose_lease_was_taken_between_two_migrations_says_so_not_what_its_next_one_ran_into(
    project: Project, cluster: Cluster
) -> None:
    """Between two of a run's migrations its lease ends up another run's (as when it stalls past
    it: here the row is deleted, as an expiry lets another run take it), and that run applies the
    rest. The first run's next migration then fails on "table fills already exists": it says
    that another run took its lease, and that nothing more was applied."""
    url = cluster.primary.url
    two(project)

    class TakenOver(Observer):
        def finished(self, run: MigrationRun) -> None:
            if run.version == 1:
                query(url, "DELETE FROM vcp_migrations_lease")
                other = process(project, url, "migrate", "--no-backup", "--lock-timeout", "30")
                out, err = other.communicate(timeout=60)
                assert other.returncode == 0, out + err

    manager = MigrationManager(url, project.dir, backup=False, lock_timeout=30, observer=TakenOver())
    with pytest.raises(DatabaseError) as caught:
        manager.migrate()
    said = str(caught.value)
    assert "the run lock's lease (30 s) expired and another run took it" in said, said
    assert (
        "this run's next statement then failed on what it did: statement 1 failed: table fills already exists" in said
    )
    assert "nothing more was applied" in said, said
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def names(url: str) -> list[str]:
    """Every name in the database's schema, SQLite's and vcp-migrate's own included."""
    return [str(row[0]) for row in query(url, "SELECT name FROM sqlite_master ORDER BY name")]


def test_a_refused_or_dry_run_leaves_a_database_it_does_not_manage_as_it_was(
    project: Project, cluster: Cluster
) -> None:
    """Taking the lease makes its table; a run that leaves no history drops it again when it lets go."""
    url = cluster.primary.url
    two(project)
    query(url, "CREATE TABLE app_users (id INTEGER PRIMARY KEY, email TEXT)")
    for args, said in [
        (("migrate", "--dry-run"), "has 1 table(s) (app_users) and no migration history"),
        (("up",), "has 1 table(s) (app_users) and no migration history"),
        (("rollback",), "nothing to roll back"),
        (("rollback", "--dry-run"), "nothing to roll back"),
    ]:
        result = cli(project, url, *args)
        assert result.exit_code == 1 and said in result.output and "nothing was changed" in result.output, args
        assert names(url) == ["app_users"], args
    rehearsed = cli(project, url, "migrate", "--dry-run", "--allow-existing")
    assert rehearsed.exit_code == 0 and "the database is unchanged" in rehearsed.output
    assert cli(project, url, "repair", "--yes").exit_code == 0  # nothing to repair
    for command in ("status", "current", "validate"):  # never take the lease
        assert cli(project, url, command).exit_code in (0, 1), command
    assert names(url) == ["app_users"]
    cluster.settle()  # the replicas follow: none of them has the table either
    assert [names(replica.url) for replica in cluster.replicas] == [["app_users"], ["app_users"]]
    assert cli(project, url, "migrate", "--allow-existing", "--no-backup").exit_code == 0  # history: the table stays
    assert history(url) == [1, 2] and query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def finished(runners: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Each runner's exit code and what it wrote on stderr, once it has ended."""
    errors = [runner.communicate(timeout=120)[1] for runner in runners]
    return [(runner.returncode, err) for runner, err in zip(runners, errors, strict=True)]


def test_runners_at_once_leave_the_history_or_nothing(project: Project, cluster: Cluster) -> None:
    """Runners that take the lease while another drops its table, each one making it again."""
    url = cluster.primary.url
    two(project)
    for _ in range(2):  # a database it does not manage: every run refused, the table never left behind
        query(url, "CREATE TABLE IF NOT EXISTS app_users (id INTEGER PRIMARY KEY)")
        runners = [process(project, url, *args) for args in [("up",), ("migrate", "--dry-run"), ("rollback",)] * 2]
        outcomes = finished(runners)
        assert all(code == 1 and "nothing was changed" in err for code, err in outcomes), outcomes
        assert all("Traceback" not in err for _, err in outcomes)
        assert names(url) == ["app_users"]
    wipe(url)  # an empty database: one applies, the others find nothing to do
    runners = [process(project, url, *args) for args in [("up", "--no-backup"), ("migrate", "--dry-run")] * 3]
    outcomes = finished(runners)
    assert all(code == 0 for code, _ in outcomes), outcomes
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def test_the_lease_is_renewed_while_the_backup_is_read(project: Project, cluster: Cluster) -> None:
    """Renewing skipped every transaction, the backup's read one too: a backup longer than the
    lease let a waiting run take it over, and the run that had it failed at its first COMMIT."""
    url = cluster.primary.url
    with hrana.Stream(url, timeout=60) as stream:  # about 3 s to back up, three leases
        stream.execute("CREATE TABLE many (a INTEGER, b TEXT)")
        stream.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600000)"
            " INSERT INTO many SELECT i, 'row ' || i FROM n"
        )
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    waits = ("--lease", "1", "--lock-timeout", "120")
    outcomes = finished([process(project, url, "migrate", "--allow-existing", *waits) for _ in range(2)])
    assert all(code == 0 and "Traceback" not in err for code, err in outcomes), outcomes
    assert history(url) == [1] and query(url, "SELECT count(*) FROM many") == [(600000,)]
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


# -- faults of the server -------------------------------------------------------------------------


def slow_migration(project: Project, seconds: float, name: str = "001_slow.py") -> Path:
    """Write a Python migration that creates the table ``slow``, touches the file returned (it has
    started), sleeps ``seconds`` and then writes a row: the run is mid-migration meanwhile."""
    started = project.root / "started"
    project.write(
        name,
        f"""
        import pathlib, time

        def up(connection):
            connection.execute("CREATE TABLE slow (x)")
            pathlib.Path({str(started)!r}).touch()
            time.sleep({seconds!r})
            connection.execute("INSERT INTO slow VALUES (1)")

        def down(connection):
            connection.execute("DROP TABLE slow")
        """,
    )
    return started


def test_the_primary_killed_mid_migration(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    started = slow_migration(project, 2)
    runner = process(project, url, "migrate", "--no-backup")
    wait_until(started.exists, timeout=30)
    cluster.kill_primary()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, out + err
    assert "could not be reached" in err and "Traceback" not in err
    cluster.restart_primary()
    assert history(url) == [] and tables(url) == set()
    project.write("001_slow.py", "def up(connection):\n    connection.execute('CREATE TABLE slow (x)')\n")
    assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "60").exit_code == 0
    assert history(url) == [1]


@pytest.fixture
def lone_server(libsql_cluster: Cluster, tmp_path: Path) -> Iterator[Node]:
    """A sqld of its own, to stop (SIGSTOP) without disturbing the session's cluster."""
    node = Node("lone", libsql_cluster.binary, tmp_path / "lone", [])
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.parametrize("ctrl_c", [False, True], ids=["the request times out", "Ctrl-C"])
def test_a_server_that_stops_answering_mid_migration_ends_the_run_within_about_one_timeout(
    project: Project, lone_server: Node, ctrl_c: bool
) -> None:
    """Once the server has not answered, or on Ctrl-C, the lease is let go of with a short wait,
    or left to expire, never after a full timeout for each request of its release."""
    url = lone_server.url
    timeout = 10.0  # each request's, with --lock-timeout 1 (at least 10 s)
    started = slow_migration(project, 1)
    runner = process(project, url, "migrate", "--no-backup", "--lock-timeout", "1", "--lease", "5")
    wait_until(started.exists, timeout=30)
    with lone_server.paused():
        stopped_at = time.monotonic()
        if ctrl_c:
            time.sleep(2)  # its INSERT waits for an answer
            interrupted_at = time.monotonic()
            runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=120)
        ended = time.monotonic()
    if ctrl_c:
        assert runner.returncode == 130, err
        assert ended - interrupted_at < 8, err  # two full timeouts (20 s) before
        assert "Error: interrupted while running" in err
    else:
        assert runner.returncode == 1, err
        assert ended - stopped_at < 2 * timeout, err  # three full timeouts (30 s) before
        assert "Error: " + f"{url}: the server did not answer within {timeout:g} s" in err
        # Its INSERT went unanswered inside the migration's transaction, which no COMMIT ended.
        assert "(its transaction was never committed, so nothing of it was applied)" in err, err
        assert "took effect is unknown" not in err, err
    assert err.count("Error: ") == 1 and "Traceback" not in err
    assert "lease could not be released (the server did not answer); it expires by itself within 5 s" in err
    assert history(url) == [] and "slow" not in tables(url)
    project.write("001_slow.py", "def up(connection):\n    connection.execute('CREATE TABLE slow (x)')\n")
    assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "60").exit_code == 0
    assert history(url) == [1] and tables(url) == {"slow"}


def test_ctrl_c_in_a_migrations_python_code_after_the_server_stopped_answering_ends_within_seconds(
    project: Project, lone_server: Node
) -> None:
    """Ctrl-C landed in the migration's own code (not in a request): the ROLLBACK after it waited a
    whole request timeout (20 s here) for a server that no longer answered."""
    url = lone_server.url
    started = slow_migration(project, 5)
    runner = process(project, url, "migrate", "--no-backup", "--lock-timeout", "20", "--lease", "5")
    wait_until(started.exists, timeout=30)
    with lone_server.paused():
        time.sleep(1)  # the migration sleeps: no request waits for an answer yet
        interrupted_at = time.monotonic()
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=120)
        ended = time.monotonic()
    assert runner.returncode == 130 and "Traceback" not in err, err
    assert ended - interrupted_at < 8, err
    assert "Error: interrupted while running" in err and err.count("Error: ") == 1, err
    assert "lease could not be released (the server did not answer); it expires by itself within 5 s" in err
    assert history(url) == [] and "slow" not in tables(url)
    project.write("001_slow.py", "def up(connection):\n    connection.execute('CREATE TABLE slow (x)')\n")
    assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "60").exit_code == 0
    assert history(url) == [1] and tables(url) == {"slow"}


def test_a_migration_that_loses_the_write_lock_applies_nothing(project: Project, cluster: Cluster) -> None:
    """sqld takes the write lock from a transaction older than 5 s when another writer waits."""
    url = cluster.primary.url
    project.write(
        "001_long.py",
        """
        import time

        def up(connection):
            connection.execute("CREATE TABLE long (x)")
            time.sleep(7)
            connection.execute("INSERT INTO long VALUES (1)")

        def down(connection):
            connection.execute("DROP TABLE long")
        """,
    )
    query(url, "CREATE TABLE app (x)")

    def application_writes() -> None:
        time.sleep(1)
        query(url, "INSERT INTO app VALUES (1)")

    # A daemon: the command line ends its process at once when threads other than daemons are left.
    writer = threading.Thread(target=application_writes, daemon=True)
    writer.start()
    result = cli(project, url, "migrate", "--no-backup", "--allow-existing")
    writer.join(timeout=30)
    assert result.exit_code == 1
    assert "the server took the write lock from this transaction" in result.output
    assert "keep migrations on a server short" in result.output and "Traceback" not in result.output
    assert history(url) == [] and "long" not in tables(url)
    assert query(url, "SELECT x FROM app") == [(1,)]


# -- what does not work on a server, and bad input --------------------------------------------------


def test_validate_schema_and_drift_on_the_server(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate", "--no-backup").exit_code == 0
    assert cli(project, url, "validate", "--roundtrip").exit_code == 0
    assert "CREATE TABLE fills (" in cli(project, url, "schema").output
    query(url, "CREATE TABLE sneaky (x)")  # changed outside the migrations
    result = cli(project, url, "validate")
    assert result.exit_code == 1 and "drift" in result.output and "sneaky" in result.output
    assert history(url) == [1, 2]


@pytest.mark.parametrize(
    ("statement", "refused"),
    [
        ("CREATE TEMP TABLE scratch (x);", "TEMP tables"),
        ("PRAGMA legacy_alter_table = ON;", "PRAGMA legacy_alter_table"),
        ("VACUUM;", "VACUUM"),
    ],
)
def test_validate_names_what_the_server_refuses(
    project: Project, cluster: Cluster, statement: str, refused: str
) -> None:
    url = cluster.primary.url
    header = "-- migrate:up transaction:false\n" if statement == "VACUUM;" else "-- migrate:up\n"
    project.write("001_a.sql", f"{header}CREATE TABLE a (x);\n{statement}\n-- migrate:down\nDROP TABLE a;\n")
    result = cli(project, url, "validate")
    assert result.exit_code == 1, result.output
    assert "001_a.sql" in result.output and f"a libSQL server refuses {refused}" in result.output
    assert history(url) == [] and tables(url) == set()
    local = project.cli("validate")  # a local file takes it
    assert "libSQL" not in local.output


def test_dry_runs_on_the_server_change_nothing(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    project.write("003_py.py", "def up(connection):\n    connection.execute('CREATE TABLE py (x)')\n")
    assert cli(project, url, "migrate", "--to", "1", "--no-backup").exit_code == 0
    sql_only = cli(project, url, "migrate", "--dry-run", "--to", "2")
    assert sql_only.exit_code == 0 and "a transaction that was rolled back" in sql_only.output
    with_python = cli(project, url, "migrate", "--dry-run")
    assert with_python.exit_code == 0 and "a throw-away copy of the server's database" in with_python.output
    assert "CREATE TABLE py" in with_python.output
    assert cli(project, url, "rollback", "--dry-run").exit_code == 0
    assert history(url) == [1] and tables(url) == {"trades"}
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]


def test_redo_baseline_and_repair_on_the_server(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    query(url, "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT)")  # made before vcp-migrate
    assert cli(project, url, "baseline", "1").exit_code == 0 and history(url) == [1]
    assert cli(project, url, "migrate", "--no-backup").exit_code == 0 and history(url) == [1, 2]
    redo = cli(project, url, "redo", "--no-backup")
    assert redo.exit_code == 0 and "Applied 2 fills" in redo.output and history(url) == [1, 2]
    project.sql(
        "002_fills.sql", "CREATE TABLE fills (id INTEGER PRIMARY KEY, qty INTEGER); -- reviewed", "DROP TABLE fills;"
    )
    assert cli(project, url, "status", "--exit-code").exit_code == 4  # modified
    assert cli(project, url, "repair", "--yes").exit_code == 0
    assert cli(project, url, "status", "--exit-code").exit_code == 0


def test_restore_to_a_server_is_refused(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate").exit_code == 0  # takes a backup (of an empty database: none)
    assert cli(project, url, "migrate").exit_code == 0
    result = cli(project, url, "restore", "--yes")
    assert result.exit_code == 2 and "use the server's own point-in-time restore" in result.output
    assert history(url) == [1, 2]


def test_an_unreachable_server_is_one_line_and_nothing_is_written(project: Project) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    two(project)
    result = cli(project, url, "migrate")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"Error: {url}: the server could not be reached (connection refused)" in result.output
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]
    assert cli(project, url, "status").exit_code == 1


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://", "the URL names no host"),
        ("http://127.0.0.1:99999", "the port is not a number from 0 to 65535"),
        ("https://user:secret@example.com", "must not carry a user, password"),
        # These three were "unexpected UnicodeError ... report it", exit 1, when a request was made.
        ("http://127.0.0.1:8080/bases/\u00e9", "http://127.0.0.1:8080: the URL's path must be ASCII"),
        ("http://a..example.com", "http://a..example.com: the host name is not valid"),
        (f"http://{'a' * 64}.example.com", "the host name is not valid"),
        ("http://[::1", "not a valid URL (Invalid IPv6 URL)"),
        ("http://127.0.0.1:8080/a b", "the URL's path must be ASCII, without spaces or control characters"),
    ],
)
def test_a_bad_url_is_a_usage_error(project: Project, url: str, why: str) -> None:
    two(project)
    for command in ("migrate", "status"):
        result = cli(project, url, command)
        assert result.exit_code == 2 and why in result.output and "secret" not in result.output, result.output
        assert result.output.count("\n") == 1 and "unexpected" not in result.output
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_the_auth_token_is_never_printed(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    project.sql("001_bad.sql", "SELECT * FROM nowhere;", "SELECT 1;")
    env = {"VCP_MIGRATE_AUTH_TOKEN": "tok-3f9a7c-secret"}
    result = cli(project, url, "--debug", "migrate", "--no-backup", env=env)
    assert result.exit_code == 1 and "tok-3f9a7c-secret" not in result.output
    manager = MigrationManager(url, project.dir, auth_token="tok-3f9a7c-secret")
    assert "tok-3f9a7c-secret" not in repr(manager._settings())


def test_replicas_are_only_for_a_server(project: Project) -> None:
    two(project)
    result = project.cli("migrate", "--wait-for-replica", "http://127.0.0.1:1")
    assert result.exit_code == 2 and "--wait-for-replica is only for a database on a server" in result.output
    assert not project.db.exists()


def test_the_url_may_come_from_the_configuration(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    two(project)
    (project.root / "pyproject.toml").write_text(f'[tool.vcp-migrate]\ndb = "{url}"\ndir = "migrations"\n')
    result = CliRunner().invoke(main, ["migrate", "--no-backup"])
    assert result.exit_code == 0, result.output
    assert history(url) == [1, 2] and not Path(url.replace("http://", "")).exists()


# -- found by an attack on the first version --------------------------------------------------------


def test_a_cursor_of_the_migration_holds_its_rows(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    project.sql("001_prices.sql", "CREATE TABLE prices (id INTEGER PRIMARY KEY, px REAL);\n"
                "INSERT INTO prices (px) VALUES (1.5), (2.5);", "DROP TABLE prices;")  # fmt: skip
    project.write(
        "002_cents.py",
        """
        def up(connection):
            cursor = connection.cursor()
            cursor.execute("SELECT id, px FROM prices ORDER BY id")
            for id_, px in cursor.fetchall():
                connection.execute("UPDATE prices SET px = ? WHERE id = ?", (px * 100, id_))
            assert cursor.execute("INSERT INTO prices (px) VALUES (9)").lastrowid == 3
        """,
    )
    result = cli(project, url, "migrate", "--no-backup")
    assert result.exit_code == 0, result.output
    assert query(url, "SELECT px FROM prices ORDER BY id") == [(150.0,), (250.0,), (9.0,)]


def test_the_lease_is_released_after_a_run_longer_than_an_idle_stream_lives(project: Project, cluster: Cluster) -> None:
    url = cluster.primary.url
    for version in (1, 2, 3):  # 12 s in all; the lease's own stream is idle all along
        project.write(f"{version:03d}_slow.py", f"import time\n\ndef up(connection):\n    time.sleep(4)\n"
                      f"    connection.execute('CREATE TABLE t{version} (x)')\n")  # fmt: skip
    assert cli(project, url, "migrate", "--no-backup").exit_code == 0
    assert query(url, "SELECT count(*) FROM vcp_migrations_lease") == [(0,)]
    assert cli(project, url, "migrate", "--no-backup", "--lock-timeout", "0").exit_code == 0


def test_a_migration_that_pauses_past_the_streams_life_applies_nothing_and_says_why(
    project: Project, cluster: Cluster
) -> None:
    url = cluster.primary.url
    project.write("001_idle.py", "import time\n\ndef up(connection):\n    connection.execute('CREATE TABLE idle (x)')\n"
                  "    time.sleep(11)\n    connection.execute('INSERT INTO idle VALUES (1)')\n")  # fmt: skip
    result = cli(project, url, "migrate", "--no-backup")
    assert result.exit_code == 1 and "must not pause that long between statements" in result.output
    assert "committed without a history row" not in result.output and "Traceback" not in result.output
    assert history(url) == [] and tables(url) == set()


def test_insert_or_rollback_that_ends_the_transaction_is_reported_as_on_a_file(
    project: Project, cluster: Cluster
) -> None:
    url = cluster.primary.url
    project.sql("001_a.sql", "CREATE TABLE a (x UNIQUE);\nINSERT INTO a VALUES (1);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);\nINSERT OR ROLLBACK INTO a VALUES (1);", "DROP TABLE b;")
    result = cli(project, url, "migrate", "--no-backup")
    assert result.exit_code == 1 and "002_b.sql: statement 2 failed: UNIQUE constraint failed" in result.output
    assert "cannot rollback" not in result.output
    assert history(url) == [1] and tables(url) == {"a"}


def test_a_token_read_with_its_line_end_works_and_a_bad_one_is_never_printed(
    project: Project, cluster: Cluster
) -> None:
    url = cluster.primary.url
    two(project)
    fine = cli(project, url, "migrate", "--no-backup", env={"VCP_MIGRATE_AUTH_TOKEN": "tok-3f9a7c\n"})
    assert fine.exit_code == 0 and history(url) == [1, 2]
    bad = cli(project, url, "status", env={"VCP_MIGRATE_AUTH_TOKEN": "tok 3f9a7c-secret"})
    assert bad.exit_code == 2 and "holds a character no token has" in bad.output and "3f9a7c" not in bad.output


def test_no_create_and_waiting_for_replicas_with_nothing_to_apply(project: Project, cluster: Cluster) -> None:
    url, replica = cluster.primary.url, cluster.replicas[0]
    two(project)
    assert cli(project, url, "migrate", "--no-backup", "--no-create").exit_code == 0  # a server's database exists
    with replica.paused():  # behind: a rerun of the deploy step with nothing to apply must still wait
        query(url, "INSERT INTO trades (symbol) VALUES ('x')")
        cluster.primary.url  # noqa: B018 - the write above is what the paused replica misses
        again = cli(project, url, "migrate", "--no-backup", "--wait-for-replica", replica.url, "--replica-timeout", "1")
    assert again.exit_code == 1 and "replica(s) did not reach it within 1 s" in again.output


@pytest.mark.parametrize("url", ["ws://127.0.0.1:8080", "libsql:127.0.0.1:8080", "http:/127.0.0.1"])
def test_a_mistyped_url_is_never_made_a_file(project: Project, url: str) -> None:
    two(project)
    for command in ("migrate", "status"):
        result = cli(project, url, command)
        assert result.exit_code == 2 and "URL" in result.output, result.output
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_a_backup_of_the_server_keeps_what_select_star_would_lose(project: Project, cluster: Cluster) -> None:
    """Generated columns, a full-text index (FTS5 keeps its data in tables of its own), AUTOINCREMENT
    counters, and rows too large to fetch in one answer (the server refuses one over about 10 MB)."""
    import sqlite3

    url = cluster.primary.url
    with hrana.Stream(url, timeout=30) as stream:
        stream.execute("CREATE TABLE g (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, c AS (a + 1))")
        stream.execute("INSERT INTO g (a) VALUES (1), (2)")
        stream.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")
        stream.execute("INSERT INTO notes (body) VALUES ('margin call at noon'), ('settlement tomorrow')")
        stream.execute("CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT, x)")
        stream.execute("INSERT INTO seq (x) VALUES (1), (2), (3)")
        stream.execute("DELETE FROM seq WHERE id = 3")
        stream.execute("CREATE TABLE big (payload BLOB)")
        for _ in range(6):  # 12 MB in all, 2 MB a row
            stream.execute("INSERT INTO big VALUES (randomblob(2000000))")
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    result = cli(project, url, "migrate", "--allow-existing")
    assert result.exit_code == 0, result.output
    (backup,) = (project.root / f"127.0.0.1_{cluster.primary.port}.db.backups").iterdir()
    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT a, b, c FROM g ORDER BY a").fetchall() == [(1, 2, 2), (2, 4, 3)]
    assert copy.execute("SELECT body FROM notes WHERE notes MATCH 'margin'").fetchall() == [("margin call at noon",)]
    assert copy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'seq'").fetchall() == [(3,)]
    assert copy.execute("SELECT count(*), sum(length(payload)) FROM big").fetchall() == [(6, 12_000_000)]
    assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    copy.close()
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")  # pending: validate lints it on the same copy
    checked = cli(project, url, "validate", "--roundtrip")
    assert "drift" in checked.output and "fails" not in checked.output and "Traceback" not in checked.output


def test_a_backup_and_validate_keep_infinities_which_the_protocol_sends_without_a_value(
    project: Project, cluster: Cluster
) -> None:
    """The server sends a REAL of +/-infinity as a float without a value: the backup held NULL in
    its place, and in a NOT NULL column the backup and validate failed ("free space, fix permissions")."""
    import sqlite3

    url = cluster.primary.url
    project.sql(
        "001_prices.sql",
        "CREATE TABLE prices (id INTEGER PRIMARY KEY, bid REAL NOT NULL, ask REAL, note);"
        " INSERT INTO prices (bid, ask, note) VALUES (9e999, -9e999, 'Inf'), (1.5, NULL, NULL), (-9e999, 2.5, 9e999);",
        "DROP TABLE prices;",
    )
    assert cli(project, url, "migrate").exit_code == 0
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    result = cli(project, url, "migrate")
    assert result.exit_code == 0, result.output
    assert history(url) == [1, 2]
    (backup,) = (project.root / f"127.0.0.1_{cluster.primary.port}.db.backups").iterdir()
    with closing(sqlite3.connect(backup)) as copy:
        rows = copy.execute("SELECT id, bid, ask, note, typeof(note) FROM prices ORDER BY id").fetchall()
    inf = float("inf")
    assert rows == [(1, inf, -inf, "Inf", "text"), (2, 1.5, None, None, "null"), (3, -inf, 2.5, inf, "real")]
    checked = cli(project, url, "validate")
    assert checked.exit_code == 0 and "Traceback" not in checked.output, checked.output


def test_status_on_a_replica_works_while_the_primary_is_down(project: Project, cluster: Cluster) -> None:
    two(project)
    replica = cluster.replicas[0].url
    assert cli(project, cluster.primary.url, "migrate", "--no-backup", "--wait-for-replica", replica).exit_code == 0
    with cluster.primary.paused():
        status = cli(project, replica, "status", "--exit-code")
        current = cli(project, replica, "current")
    assert status.exit_code == 0 and "2 applied, 0 pending" in status.output
    assert current.output.strip() == "2"


# -- the answer to a COMMIT lost --------------------------------------------------------------------


def test_a_commit_whose_answer_is_lost_is_asked_again_and_reported_done(project: Project, cluster: Cluster) -> None:
    """The server committed the rollback, its answer never came: the run read the history on the
    stream it had lost, took it for "not committed", said "nothing was changed", and deleted the
    backup it had taken before: the only copy of the table the rollback had dropped."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate").exit_code == 0
    query(url, "INSERT INTO fills (qty) VALUES (7)")
    with LosingProxy(url, "COMMIT /* vcp-migrate */") as proxy:
        runner = process(project, proxy.url, "rollback")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert err.count("\n") == 1 and "nothing was changed" not in err
    assert err.strip().endswith(
        f"({project.dir / '002_fills.sql'} was committed before it; 'vcp-migrate status' shows what is applied)"
    )
    assert "Rolled back 2 fills" in out and "Deleted that backup" not in out
    assert history(url) == [1] and tables(url) == {"trades"}
    (backup,) = (project.root / f"127.0.0.1_{proxy.url.rsplit(':', 1)[1]}.db.backups").iterdir()
    with closing(sqlite3.connect(backup)) as kept:
        assert kept.execute("SELECT qty FROM fills").fetchall() == [(7,)]


def test_a_stream_that_expires_just_after_a_commit_leaves_that_migration_applied_and_said_so(
    project: Project, cluster: Cluster
) -> None:
    """The run paused for longer than the server keeps an idle stream, right after a COMMIT was
    answered: the request after it (sqld enforces foreign keys, so the PRAGMA that turns them back
    on) met an expired stream. That was taken for the server's word that the migration's
    transaction was rolled back: 'Applied 1' was not said of a committed migration."""
    url = cluster.primary.url
    two(project)
    with LosingProxy(url, "COMMIT /* vcp-migrate */", stall=12) as proxy:
        runner = process(project, proxy.url, "migrate", "--no-backup")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert "Applied 1 trades" in out, out + err
    assert err.strip().endswith(
        f"({project.dir / '001_trades.sql'} was committed before it; 'vcp-migrate status' shows what is applied)"
    ), err
    assert history(url) == [1] and tables(url) == {"trades"}
    again = cli(project, url, "migrate", "--no-backup")
    assert again.exit_code == 0 and history(url) == [1, 2], again.output


def test_a_gateway_error_for_a_commit_is_asked_again_and_named(project: Project, cluster: Cluster) -> None:
    """A reverse proxy in front of the server answered the COMMIT with its own 502 page: the run
    asked again (it had committed), but the error quoted the page's HTML and said to check that
    the URL is a libSQL server."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate", "--to", "1").exit_code == 0
    with LosingProxy(url, "COMMIT /* vcp-migrate */", status=502) as proxy:
        runner = process(project, proxy.url, "migrate")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert err.count("\n") == 1 and "<" not in err and "libSQL server" not in err, err
    said = "HTTP 502: Bad Gateway (the server, or a gateway in front of it, could not answer"
    assert f"Error: {proxy.url}: {said}" in err
    assert err.strip().endswith(
        f"({project.dir / '002_fills.sql'} was committed before it; 'vcp-migrate status' shows what is applied)"
    )
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}
    again = cli(project, url, "migrate")
    assert again.exit_code == 0 and "Nothing to apply" in again.output


def test_a_commit_whose_answer_is_lost_with_the_server_is_in_doubt_and_the_backup_kept(
    project: Project, cluster: Cluster
) -> None:
    """The primary died with the answer to a COMMIT it had made: the run cannot ask again, so it
    says that whether the migration committed is unknown, and keeps the backup."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate", "--to", "1").exit_code == 0
    with LosingProxy(url, "COMMIT /* vcp-migrate */", then=cluster.kill_primary) as proxy:
        runner = process(project, proxy.url, "migrate", "--no-dump")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    warning, lease, error = err.splitlines()  # the lease is released by the server's clock instead
    assert lease.startswith(f"Warning: {proxy.url}: the run lock's lease could not be released")
    assert warning.startswith("Warning: ") and warning.endswith(
        ": kept: the run may have changed the database before it stopped"
    )
    assert "nothing was changed" not in err
    assert error.endswith(
        f"(whether {project.dir / '002_fills.sql'} was committed is unknown (the server's answer to its COMMIT was"
        " lost): 'vcp-migrate status' tells once the server answers; the backup taken before this run, if any, is"
        " kept)"
    )
    assert "Deleted that backup" not in out
    assert len(list((project.root / f"127.0.0.1_{proxy.url.rsplit(':', 1)[1]}.db.backups").iterdir())) == 1
    cluster.restart_primary()
    assert history(url) == [1, 2] and tables(url) == {"trades", "fills"}  # it had committed
    assert cli(project, url, "migrate", "--lock-timeout", "90").exit_code == 0 and history(url) == [1, 2]


def test_ctrl_c_during_a_transactional_migration_on_a_server_deletes_the_backup_without_a_warning(
    project: Project, cluster: Cluster
) -> None:
    """A server's database is not compared with its backup: every Ctrl-C kept it, with a warning
    that a migration had changed the database outside a transaction, beside an error saying the
    migration was rolled back whole."""
    url = cluster.primary.url
    project.sql("001_trades.sql", "CREATE TABLE trades (id INTEGER PRIMARY KEY);", "DROP TABLE trades;")
    started = slow_migration(project, 30, "002_slow.py")
    assert cli(project, url, "migrate", "--to", "1").exit_code == 0
    runner = process(project, url, "migrate")
    wait_until(started.exists, timeout=30)
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130 and "Traceback" not in err, out + err
    assert "kept" not in err and "Deleted that backup again" in out
    assert history(url) == [1] and tables(url) == {"trades"}


def test_the_server_failing_during_the_backup_is_named_and_said_so(project: Project, cluster: Cluster) -> None:
    """The error named the backup's local stand-in and said to free space or fix permissions."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate", "--to", "1").exit_code == 0
    with LosingProxy(url, "PRAGMA user_version") as proxy:
        runner = process(project, proxy.url, "migrate")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert err.startswith(f"Error: {proxy.url}: backup into ") and err.count("\n") == 1
    assert err.strip().endswith(
        "(check that the server is running and run again, or pass --no-backup; nothing was changed)"
    )
    assert history(url) == [1] and not list(project.root.glob("*.db.backups/*"))


def test_a_redo_whose_commit_answer_is_lost_keeps_the_backup(project: Project, cluster: Cluster) -> None:
    """A redo's down and up of one migration leave the same history row whether its COMMIT was
    made or not: it said "nothing was changed" and deleted the backup, the only copy of the row
    the committed down had dropped with its table."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate").exit_code == 0
    query(url, "INSERT INTO fills (qty) VALUES (7)")
    with LosingProxy(url, "COMMIT /* vcp-migrate */") as proxy:
        runner = process(project, proxy.url, "redo")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert "nothing was changed" not in err and "Deleted that backup" not in out
    assert f"whether {project.dir / '002_fills.sql'} was committed is unknown" in err
    (backup,) = (project.root / f"127.0.0.1_{proxy.url.rsplit(':', 1)[1]}.db.backups").iterdir()
    with closing(sqlite3.connect(backup)) as kept:
        assert kept.execute("SELECT qty FROM fills").fetchall() == [(7,)]
    assert query(url, "SELECT count(*) FROM fills") == [(0,)]  # the redo had committed


def test_a_commit_whose_answer_is_lost_through_a_replica_is_asked_of_the_primary(
    project: Project, cluster: Cluster
) -> None:
    """Asked again with a plain read, a replica answered from data that had not caught up yet."""
    url = cluster.primary.url
    two(project)
    assert cli(project, url, "migrate").exit_code == 0
    cluster.settle()
    with LosingProxy(cluster.replicas[0].url, "COMMIT /* vcp-migrate */") as proxy:
        runner = process(project, proxy.url, "rollback", "--lock-timeout", "60")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert f"({project.dir / '002_fills.sql'} was committed before it;" in err and "Deleted that backup" not in out
    assert history(url) == [1]


def test_baseline_whose_commit_answer_is_lost_does_not_say_nothing_was_changed(
    project: Project, cluster: Cluster
) -> None:
    url = cluster.primary.url
    two(project)
    query(url, "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT)")
    with LosingProxy(url, "COMMIT /* vcp-migrate */") as proxy:
        runner = process(project, proxy.url, "baseline", "1")
        out, err = runner.communicate(timeout=120)
    assert proxy.lost.is_set() and runner.returncode == 1 and "Traceback" not in err, out + err
    assert "nothing was changed" not in err
    assert (
        "(whether it was committed is unknown (the server's answer to its COMMIT was lost): 'vcp-migrate status'"
        " tells once the server answers)"
    ) in err
    assert history(url) == [1]
