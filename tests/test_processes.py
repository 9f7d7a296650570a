"""What only a real process shows: SIGKILL, SIGINT, concurrent runners, lock timeouts, exit codes
of the installed console script, and databases that cannot be used."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vcp_migrate.lock import lock_path

from .conftest import ENV_VARS, Project, as_unprivileged, console_script, run_cli

SLOW = """
import os, time
from pathlib import Path

def up(connection):
    connection.execute("CREATE TABLE slow(x)")
    connection.executemany("INSERT INTO slow VALUES (?)", ((i,) for i in range(20000)))
    Path("started").write_text(str(os.getpid()))
    for _ in range(1200):  # short sleeps: a Ctrl-C that lands just before one is not held for long
        if Path("let_it_finish").exists():
            break
        time.sleep(0.1)

def down(connection):
    connection.execute("DROP TABLE slow")
"""


def start(project: Project, *args: str) -> subprocess.Popen[str]:
    command, *rest = args
    return subprocess.Popen(
        [str(console_script()), command, "--db", str(project.db), "--dir", str(project.dir), *rest],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def interrupted_once_started(project: Project, after: float = 0.5, wait: float = 30) -> tuple[int | None, str]:
    """Run migrate, send it one SIGINT ``after`` seconds past the migration's mark ``started``,
    and return its exit code and standard error (a process that does not end is killed)."""
    process = start(project, "migrate")
    try:
        wait_for(project.root / "started", process)
        time.sleep(after)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=wait)
    finally:
        process.kill()
    return process.returncode, stderr


def digest_all(project: Project) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in project.root.glob("test.db*")}


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_sigkill_mid_migration_leaves_nothing_and_next_run_works(project: Project, journal_mode: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_slow.py", SLOW)
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    connection = sqlite3.connect(project.db)
    connection.execute(f"PRAGMA journal_mode = {journal_mode}")
    connection.close()
    process = start(project, "migrate")
    wait_for(project.root / "started", process)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL
    status = run_cli(project, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert project.tables() == {"a"} and project.history() == [1]
    (project.root / "let_it_finish").write_text("")
    again = run_cli(project, "migrate", "--lock-timeout", "0")
    assert again.returncode == 0, again.stderr
    assert project.history() == [1, 2] and project.query("SELECT count(*) FROM slow") == [(20000,)]
    assert project.query("PRAGMA integrity_check") == [("ok",)]


def test_sigint_rolls_back_and_exits_130(project: Project) -> None:
    project.write("001_slow.py", SLOW)
    process = start(project, "migrate")
    wait_for(project.root / "started", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert stderr.startswith("Error: interrupted while running") and "Traceback" not in stderr
    assert project.tables() == set() and project.history() == []


ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n {until}) SELECT count(*) FROM n"
MARK = "from pathlib import Path\ndef up(c):\n    Path('started').write_text('')\ndef down(c):\n    pass\n"


def test_ctrl_c_during_a_long_statement_stops_it_at_once_and_rolls_it_back(project: Project) -> None:
    """Python runs its handler between bytecodes, so Ctrl-C waited for the statement in progress
    to end (a backfill of minutes; here, never) before the run rolled it back."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_mark.py", MARK)
    project.sql("003_endless.sql", f"INSERT INTO a {ENDLESS.format(until='')};", "DELETE FROM a;")
    code, stderr = interrupted_once_started(project)
    assert code == 130, stderr
    assert stderr.startswith("Error: interrupted while running") and "003_endless.sql" in stderr, stderr
    assert project.history() == [1, 2] and project.query("SELECT count(*) FROM a") == [(0,)]
    assert not project.db.with_name("test.db-journal").exists()
    project.sql("003_endless.sql", "INSERT INTO a VALUES (1);", "DELETE FROM a;")  # the cause fixed
    again = run_cli(project, "migrate", "--lock-timeout", "0")
    assert again.returncode == 0, again.stderr
    assert project.history() == [1, 2, 3] and project.query("SELECT x FROM a") == [(1,)]


GOES_ON = """
import sqlite3, signal
from pathlib import Path
ENDLESS = "INSERT INTO a WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n"

def up(c):
    cursor = c.cursor()
    cursor.execute("INSERT INTO a VALUES ('before')")
    Path("started").write_text("")
    try:
        cursor.execute(ENDLESS)
    except sqlite3.OperationalError:  # "interrupted": and the migration goes on
        cursor.execute({after!r})

def down(c):
    pass
"""


@pytest.mark.parametrize(
    "after",
    [
        "INSERT INTO a VALUES ('before')",  # a statement prepared before: from C it would run at once
        "INSERT INTO a VALUES ('after')",  # prepared now: its authorizer call would swallow the interrupt
    ],
)
def test_ctrl_c_in_a_long_insert_a_migration_catches_leaves_nothing_of_what_follows(
    project: Project, after: str
) -> None:
    """SQLite's interrupt of an INSERT rolls our transaction back; the migration catches the
    error and writes again, which would commit on its own: the KeyboardInterrupt comes first."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_goes_on.py", GOES_ON.format(after=after))
    code, stderr = interrupted_once_started(project)
    assert code == 130 and stderr.startswith("Error: interrupted while running"), stderr
    assert project.history() == [1] and project.query("SELECT x FROM a") == []


NESTED = """
from pathlib import Path
from vcp_migrate import MigrationManager

def up(c):
    MigrationManager("other.db", "other", dump_schema=False).migrate()
    Path("started").write_text("")
    c.execute("INSERT INTO a {endless}")

def down(c):
    pass
"""


def test_a_run_inside_a_migration_on_another_database_leaves_the_outer_run_interruptible(project: Project) -> None:
    """The inner run's end stopped the watching of the run around it: its long statement then
    waited for its end again."""
    (project.root / "other").mkdir()
    (project.root / "other" / "001_o.sql").write_text("-- migrate:up\nCREATE TABLE o(x);\n-- migrate:down\n")
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_nested.py", NESTED.format(endless=ENDLESS.format(until="")))
    code, stderr = interrupted_once_started(project)
    assert code == 130 and "002_nested.py" in stderr, stderr
    assert project.history() == [1] and project.query("SELECT count(*) FROM a") == [(0,)]


OWN_HANDLER = """
import signal
from pathlib import Path

def up(c):
    previous = signal.signal(signal.SIGINT, lambda *_: Path("seen").write_text(""))
    Path("started").write_text("")
    c.execute("INSERT INTO a {endless}")
    signal.signal(signal.SIGINT, previous)

def down(c):
    pass
"""


def test_a_sigint_handler_a_migration_puts_in_decides_and_nothing_is_interrupted(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_own.py", OWN_HANDLER.format(endless=ENDLESS.format(until="WHERE i < 3000000")))
    code, stderr = interrupted_once_started(project, after=0.2, wait=120)
    assert code == 0, stderr
    assert (project.root / "seen").exists() and project.history() == [1, 2]
    assert project.query("SELECT count(*) FROM a") == [(1,)]


def test_ctrl_c_in_a_long_statement_outside_a_transaction_says_what_stays(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_mark.py", MARK)
    project.write(
        "003_outside.sql",
        f"-- migrate:up transaction:false\nINSERT INTO a VALUES (1);\nINSERT INTO a {ENDLESS.format(until='')};\n"
        "-- migrate:down\nDELETE FROM a;\n",
    )
    code, stderr = interrupted_once_started(project)
    assert code == 130, stderr
    assert "003_outside.sql, which runs outside a transaction: what it had committed until then stays" in stderr
    assert "rolled back whole" not in stderr and "Traceback" not in stderr
    assert project.history() == [1, 2] and project.query("SELECT x FROM a") == [(1,)]


def test_from_python_the_watching_ends_with_the_run_and_an_application_s_wakeup_descriptor_stays(
    project: Project,
) -> None:
    """No thread of ours outlives migrate() (a program that forks after it is single-threaded
    again), and a wakeup descriptor the program set (as asyncio does) keeps getting its signals."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write(
        "002_b.py",
        "import os, signal\ndef up(c):\n    os.kill(os.getpid(), signal.SIGUSR1)\n    c.execute('CREATE TABLE b(x)')\n"
        "def down(c):\n    c.execute('DROP TABLE b')\n",
    )
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")
    script = (
        "import signal, socket, threading\nfrom vcp_migrate import MigrationManager\n"
        f"manager = MigrationManager({str(project.db)!r}, {str(project.dir)!r})\n"
        "manager.migrate(1)\n"
        "assert threading.active_count() == 1 and signal.set_wakeup_fd(-1) == -1\n"
        "ours, theirs = socket.socketpair()\nours.setblocking(False)\ntheirs.setblocking(False)\n"
        "signal.signal(signal.SIGUSR1, lambda *_: None)\nsignal.set_wakeup_fd(ours.fileno())\n"
        "manager.migrate()\n"
        "assert signal.set_wakeup_fd(-1) == ours.fileno(), 'the program lost its wakeup descriptor'\n"
        "assert theirs.recv(16) == bytes([signal.SIGUSR1]), 'the signal did not reach it'\n"
        "print(threading.active_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    result = subprocess.run([sys.executable, "-c", script], cwd=project.root, capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0 and result.stdout == "1\n", result.stderr
    assert project.history() == [1, 2, 3]


def test_under_an_application_s_own_sigint_handler_a_long_statement_is_not_interrupted(project: Project) -> None:
    """From Python, a handler of the application's own decides what Ctrl-C means: vcp-migrate
    interrupts nothing for it (the statement ends, the migration is applied)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_mark.py", MARK)
    project.sql("003_long.sql", f"INSERT INTO a {ENDLESS.format(until='WHERE i < 3000000')};", "DELETE FROM a;")
    script = (
        "import os, signal, threading, time\nfrom pathlib import Path\nfrom vcp_migrate import MigrationManager\n"
        "seen = []\nsignal.signal(signal.SIGINT, lambda *_: seen.append('SIGINT'))\n"
        "def send():\n    while not Path('started').exists():\n        time.sleep(0.01)\n"
        "    time.sleep(0.2)\n    os.kill(os.getpid(), signal.SIGINT)\n"
        "threading.Thread(target=send).start()\n"
        f"MigrationManager({str(project.db)!r}, {str(project.dir)!r}).migrate()\n"
        "print(seen)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    result = subprocess.run([sys.executable, "-c", script], cwd=project.root, capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0 and result.stdout == "['SIGINT']\n", result.stderr
    assert project.history() == [1, 2, 3] and project.query("SELECT x FROM a") == [(3000000,)]


def test_concurrent_runners_apply_each_migration_exactly_once(project: Project) -> None:
    project.write(
        "001_ledger.py",
        "def up(c):\n    c.execute('CREATE TABLE ledger(version, pid)')\n"
        "    c.execute('INSERT INTO ledger VALUES (1, ?)', (__import__('os').getpid(),))\n"
        "def down(c):\n    c.execute('DROP TABLE ledger')\n",
    )
    for version in range(2, 7):
        project.write(
            f"00{version}_step.py",
            "import os, time\n"
            "def up(c):\n    time.sleep(0.1)\n"
            f"    c.execute('INSERT INTO ledger VALUES ({version}, ?)', (os.getpid(),))\n"
            f"def down(c):\n    c.execute('DELETE FROM ledger WHERE version = {version}')\n",
        )
    runners = [start(project, "migrate") for _ in range(8)]
    outputs = [runner.communicate(timeout=120) for runner in runners]
    assert [runner.returncode for runner in runners] == [0] * 8, outputs
    assert project.query("SELECT version, count(*) FROM ledger GROUP BY version") == [(v, 1) for v in range(1, 7)]
    assert project.history() == list(range(1, 7))
    applied_lines = [
        line
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("Applied ") and "(" in line and "migration(s)" not in line
    ]
    assert len(applied_lines) == 6
    assert not list(project.root.glob(".vcp-lock-*"))


def test_waiter_past_the_lock_timeout_fails_cleanly(project: Project) -> None:
    project.write("001_slow.py", SLOW)
    holder = start(project, "migrate")
    wait_for(project.root / "started", holder)
    started = time.monotonic()
    waiter = run_cli(project, "migrate", "--lock-timeout", "1")
    elapsed = time.monotonic() - started
    holder.kill()
    holder.wait()
    assert waiter.returncode == 1
    assert waiter.stderr.splitlines() == [
        f"waiting for the run lock held by pid {holder.pid} (up to 1 s)",  # said once, at once
        f"Error: {project.db}: another vcp-migrate run (pid {holder.pid}) held the database for 1s"
        " (wait for it to finish or raise --lock-timeout; nothing was changed)",
    ]
    assert elapsed >= 1
    assert project.tables() == set() and project.history() == []


GATED = """
import os, time
from pathlib import Path

def _gate(what):
    with open("ledger.txt", "a") as ledger:
        ledger.write(what + "\\n")
    Path("started-" + what).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60  # a failed test must not leave this process behind for ever
    while not Path("go-" + what).exists() and time.monotonic() < deadline:
        time.sleep(0.02)

def up(connection):
    connection.execute("CREATE TABLE gated(x)")
    _gate("up")

def down(connection):
    connection.execute("DROP TABLE gated")
    _gate("down")
"""


def start_on(project: Project, database: Path, *args: str) -> subprocess.Popen[str]:
    command, *rest = args
    return subprocess.Popen(
        [str(console_script()), command, "--db", str(database), "--dir", str(project.dir), *rest],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("alias", ["symlink", "hard link"])
def test_runners_through_another_path_to_the_database_wait_for_each_other(project: Project, alias: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_gated.py", GATED)
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    other = project.root / "alias.db"
    if alias == "symlink":
        other.symlink_to(project.db)
    else:
        os.link(project.db, other)
    for direction, command, first, second in (
        ("up", ["migrate"], project.db, other),
        ("down", ["rollback", "--to", "1"], other, project.db),
    ):
        holder = start_on(project, first, *command)
        wait_for(project.root / f"started-{direction}", holder)
        impatient = start_on(project, second, *command, "--lock-timeout", "0.5")
        _, stderr = impatient.communicate(timeout=60)
        assert impatient.returncode == 1
        assert stderr == (
            f"waiting for the run lock held by pid {holder.pid} (up to 0.5 s)\n"
            f"Error: {second}: another vcp-migrate run (pid {holder.pid}) held the database for 0.5s"
            " (wait for it to finish or raise --lock-timeout; nothing was changed)\n"
        )
        patient = start_on(project, second, *command)  # must wait, then find nothing left to do
        time.sleep(1)
        (project.root / f"go-{direction}").write_text("")
        for process in (holder, patient):
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
    assert (project.root / "ledger.txt").read_text().split() == ["up", "down"]
    assert project.tables() == {"a"} and project.history() == [1]
    assert project.query("PRAGMA integrity_check") == [("ok",)]


def test_lock_file_removed_while_held_stops_the_run_before_its_next_commit(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_gated.py", GATED)
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")
    holder = start(project, "migrate")
    wait_for(project.root / "started-up", holder)
    (lock,) = project.root.glob(".vcp-lock-*")
    lock.unlink()
    (project.root / "go-up").write_text("")
    _, stderr = holder.communicate(timeout=60)
    assert holder.returncode == 1
    assert stderr == (
        f"Error: {project.db}: the lock file {lock} was removed or replaced while this run held it;"
        " another run may be changing the database (nothing more was applied)\n"
    )
    assert project.tables() == {"a"} and project.history() == [1]
    again = run_cli(project, "migrate", "--lock-timeout", "0")
    assert again.returncode == 0, again.stderr
    assert project.tables() == {"a", "gated", "c"} and project.history() == [1, 2, 3]


@pytest.mark.parametrize("kind", ["FIFO", "directory", "symlink to the database"])
def test_something_planted_at_the_lock_path_is_refused_without_hanging(project: Project, kind: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert run_cli(project, "migrate").returncode == 0
    at = lock_path(project.db)
    if kind == "FIFO":
        os.mkfifo(at)
        what = "is not a regular file"
    elif kind == "directory":
        at.mkdir()
        what = "is a directory"
    else:
        at.symlink_to(project.db)
        what = "is a symbolic link"
    before = project.digest()
    for command in ("migrate", "rollback"):
        result = run_cli(project, command, timeout=20)
        assert result.returncode == 1
        assert result.stderr == (
            f"Error: {at}: {what}, not a run lock of vcp-migrate"
            f" (remove it once no vcp-migrate run is using {project.db}; nothing was changed)\n"
        )
    assert project.digest() == before and project.history() == [1] and os.path.lexists(at)
    assert project.query("PRAGMA integrity_check") == [("ok",)]


def test_application_holding_a_write_lock_makes_migrate_fail_cleanly(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    before = digest_all(project)
    application = sqlite3.connect(project.db, isolation_level=None)
    application.execute("BEGIN IMMEDIATE")
    try:
        result = run_cli(project, "migrate", "--lock-timeout", "0.5")
    finally:
        application.execute("ROLLBACK")
        application.close()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {project.db}: is locked by another connection"
        " (retry when it is released, or raise --lock-timeout; nothing was changed)"
    )
    assert digest_all(project) == before
    assert run_cli(project, "migrate").returncode == 0 and project.history() == [1, 2]


HOLDS = {
    "a write transaction": "BEGIN IMMEDIATE",
    "a read transaction": "BEGIN",
    "the database exclusively": "BEGIN EXCLUSIVE",
}


def interrupted_while_held(project: Project, hold: str, *command: str) -> tuple[int, str]:
    """Run ``command`` while an application holds the database (``hold``: its BEGIN, then a read),
    press Ctrl-C once the command waits for it, and let go: the exit code and standard error."""
    application = sqlite3.connect(project.db, isolation_level=None)
    application.execute(hold)
    application.execute("SELECT count(*) FROM sqlite_master").fetchall()
    process = start(project, *command)
    try:
        time.sleep(2)  # started, and waiting for the lock
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        application.execute("ROLLBACK")
        application.close()
    return process.returncode, stderr


@pytest.mark.parametrize("holds", sorted(HOLDS))
def test_ctrl_c_while_waiting_for_the_application_s_lock_stops_the_wait_at_once(project: Project, holds: str) -> None:
    """SQLite's busy handler sleeps in C: Ctrl-C while a run waited for the application's write
    transaction (at its BEGIN), for its readers (at its COMMIT, in rollback-journal mode) or for
    its exclusive lock (at the history read that begins a run) came only once --lock-timeout had
    run out (here 120 s)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    before = digest_all(project)
    returncode, stderr = interrupted_while_held(
        project, HOLDS[holds], "migrate", "--lock-timeout", "120", "--no-backup"
    )
    assert returncode == 130 and stderr.startswith("Error: interrupted"), stderr
    assert digest_all(project) == before and project.history() == [1]


@pytest.mark.parametrize("command", [("baseline", "1"), ("repair", "--yes"), ("status",), ("current",)])
def test_ctrl_c_while_any_command_waits_to_open_a_database_held_exclusively_stops_at_once(
    project: Project, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """The first read of a database a command opens (is it one?) waited in SQLite's C busy
    handler: only migrate read the history first, so every other command ignored Ctrl-C until
    the application let go or the lock timeout ran out (here 120 s)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert run_cli(project, "migrate").returncode == 0
    before = digest_all(project)
    monkeypatch.setenv("VCP_MIGRATE_LOCK_TIMEOUT", "120")
    returncode, stderr = interrupted_while_held(project, HOLDS["the database exclusively"], *command)
    assert returncode == 130 and stderr.startswith("Error: interrupted"), stderr
    assert "Traceback" not in stderr and digest_all(project) == before and project.history() == [1]


@pytest.mark.parametrize("holds", ["a write transaction", "a read transaction"])
def test_a_run_waiting_for_the_application_s_lock_goes_on_once_it_is_released(project: Project, holds: str) -> None:
    """The wait is made in slices: one that ends while the application still holds its lock is
    followed by the next, and the run goes on as soon as the lock is released."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    application = sqlite3.connect(project.db, isolation_level=None, check_same_thread=False)
    application.execute("BEGIN IMMEDIATE" if holds == "a write transaction" else "BEGIN")
    application.execute("SELECT count(*) FROM sqlite_master").fetchall()
    release = threading.Timer(1.5, lambda: application.execute("ROLLBACK"))
    release.start()
    started = time.monotonic()
    try:
        result = run_cli(project, "migrate", "--lock-timeout", "30", "--no-backup")
    finally:
        release.join()
        application.close()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 1.5 and project.history() == [1, 2]


def test_database_in_a_read_only_folder_is_refused_by_its_run_lock(project: Project) -> None:
    """The file is writable, its folder is not: the run lock cannot be created there, nothing runs."""
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    folder = project.root / "data"
    folder.mkdir()
    database = folder / "app.db"
    assert run_cli(project, "migrate", "--db", str(database)).returncode == 0
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    before = database.read_bytes()
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            as_unprivileged([str(console_script()), "migrate", "--db", str(database), "--dir", str(project.dir)]),
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        folder.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"Error: {database}: cannot create the lock file {lock_path(database)}: Permission denied"
        " (the database's directory must be writable; nothing was changed)"
    )
    assert database.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == ["app.db"]


def test_read_only_database_is_refused_and_unchanged(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    before = project.digest()
    project.db.chmod(0o444)
    try:
        result = subprocess.run(
            as_unprivileged([str(console_script()), "migrate", "--db", str(project.db), "--dir", str(project.dir)]),
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        project.db.chmod(0o644)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        f"Error: {project.db}: is read-only (check the permissions of the file and its folder; nothing was changed)"
    )
    assert project.digest() == before and project.history() == [1]


@pytest.mark.parametrize("command", ["status", "migrate", "rollback", "validate", "new"])
def test_file_that_is_not_a_database(project: Project, command: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.db.write_text("these are my trading notes, not a database\n" * 50)
    before = project.digest()
    result = run_cli(project, command, *(["x"] if command == "new" else []))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {project.db}: is not a SQLite database (check --db; nothing was changed)"
    assert project.digest() == before
    assert not list(project.root.glob(".vcp-lock-*"))


def test_corrupt_database(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    assert run_cli(project, "migrate", "--to", "1").returncode == 0
    data = bytearray(project.db.read_bytes())
    data[100:400] = b"\xab" * 300  # the schema page's b-tree header and cell pointers
    project.db.write_bytes(bytes(data))
    before = project.digest()
    for command in ("status", "migrate", "rollback"):
        result = run_cli(project, command)
        assert result.returncode == 1, (command, result.stderr)
        assert result.stderr.startswith(f"Error: {project.db}: is corrupt (") and result.stderr.count("\n") == 1
        assert "restore it from a backup" in result.stderr
        assert project.digest() == before


def test_database_path_that_is_a_directory(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.db.mkdir()
    for command in ("status", "migrate"):
        result = run_cli(project, command)
        assert result.returncode == 1
        assert result.stderr.strip() == f"Error: {project.db}: is a directory, not a database file (check --db)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("through", ["itself", "a link"])
def test_database_path_that_is_a_named_pipe_is_never_opened(project: Project, through: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    pipe = project.root / "pipe.db"
    os.mkfifo(pipe)
    if through == "a link":
        os.symlink(pipe.name, project.db)
    else:
        project.db = pipe
    for command in ("status", "migrate"):
        result = run_cli(project, command, timeout=20)  # opening the pipe would wait for a writer
        assert result.returncode == 1
        assert result.stderr == f"Error: {project.db}: is not a regular file (check --db)\n"
    assert stat.S_ISFIFO(os.stat(project.db).st_mode)
    assert sorted(p.name for p in project.root.iterdir()) == sorted(
        ["migrations", "pipe.db"] + (["test.db"] if through == "a link" else [])
    )


def test_mistyped_database_path_creates_nothing(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    typo = project.root / "vcp_tradng.db"
    for command in ("status", "rollback", "validate"):
        subprocess.run(
            [str(console_script()), command, "--db", str(typo), "--dir", str(project.dir)],
            cwd=project.root,
            capture_output=True,
            timeout=60,
        )
        assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_console_script_exit_codes_and_python_dash_m(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert run_cli(project, "status", "--exit-code").returncode == 3
    assert run_cli(project, "migrate").returncode == 0
    assert run_cli(project, "status", "--exit-code").returncode == 0
    assert run_cli(project, "rollback", "--steps", "0").returncode == 2
    assert run_cli(project, "rollback", "--steps", "5").returncode == 1
    module = subprocess.run(
        [sys.executable, "-m", "vcp_migrate", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and "vcp-migrate, version" in module.stdout


# Started by the interpreter before the console script runs: Ctrl-C (a real SIGINT) arrives just as
# the command line's modules start to load.
INTERRUPT_WHILE_LOADING = """
import os, signal, sys

class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "vcp_migrate.cli":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
"""


@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_ctrl_c_while_the_command_line_loads_is_an_interrupt_not_a_traceback(project: Project, how: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    hooks = project.root / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(INTERRUPT_WHILE_LOADING)
    env = {**{k: v for k, v in os.environ.items() if k not in ENV_VARS}, "PYTHONPATH": str(hooks)}
    start = [str(console_script())] if how == "console script" else [sys.executable, "-m", "vcp_migrate"]
    done = subprocess.run(
        [*start, "migrate", "--db", str(project.db), "--dir", str(project.dir)],
        cwd=project.root, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (130, "")
    assert done.stderr == "Error: interrupted before anything was done; nothing was changed\n"
    assert not project.db.exists()


# Started by the interpreter before the console script runs: Ctrl-C (a real SIGINT) arrives as
# Python cleans up at exit, once the command has ended.
INTERRUPT_AT_EXIT = """
import atexit, os, signal, time

def interrupt():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)

atexit.register(interrupt)
"""


@pytest.mark.parametrize("command", [("migrate",), ("fleet", "migrate")])
def test_ctrl_c_once_the_command_has_ended_changes_nothing(project: Project, command: tuple[str, ...]) -> None:
    """A run that completed exits 0 with what it said, not a traceback or death by the signal."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()  # a fleet migrates databases that exist
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    hooks = project.root / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(INTERRUPT_AT_EXIT)
    env = {**{k: v for k, v in os.environ.items() if k not in ENV_VARS}, "PYTHONPATH": str(hooks)}
    target = ["--db", str(project.db)] if command == ("migrate",) else [str(project.db), "--jobs", "1"]
    done = subprocess.run(
        [str(console_script()), *command, *target, "--dir", str(project.dir), "--no-dump"],
        cwd=project.root, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert "Traceback" not in done.stdout and "KeyboardInterrupt" not in done.stdout
    assert project.history() == [1, 2]


LEAVES_A_THREAD = """
import threading
import time

def up(connection):
    connection.execute("CREATE TABLE b (x)")

    def work():
        while True:
            try:
                connection.execute("INSERT INTO b VALUES (1)")
            except Exception:
                pass
            time.sleep(0.01)

    threading.Thread(target=work, name="backfill").start()

def down(connection):
    connection.execute("DROP TABLE b")
"""


def test_a_migration_that_leaves_a_thread_running_fails_and_the_process_ends(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_thread.py", LEAVES_A_THREAD)
    result = run_cli(project, "migrate", timeout=30)
    assert result.returncode == 1, result.stderr
    assert "002_thread.py: up() returned with thread(s) still running (backfill)" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.history() == [1] and project.tables() == {"a"}
    # the locks were released: the next run does not wait
    project.write(
        "002_thread.py",
        "def up(c):\n    c.execute('CREATE TABLE b (x)')\n\ndef down(c):\n    c.execute('DROP TABLE b')\n",
    )
    assert run_cli(project, "migrate", "--lock-timeout", "0").returncode == 0
    assert project.history() == [1, 2]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("kind", ["named pipe", "looping link"])
def test_a_named_pipe_or_looping_link_never_hangs_a_command(project: Project, kind: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert run_cli(project, "migrate").returncode == 0
    if kind == "named pipe":
        os.mkfifo(project.dir / "003_x.sql")
        reason = "is a named pipe (FIFO), not a regular file, so it was not read"
    else:
        os.symlink("003_x.sql", project.dir / "003_x.sql")
        reason = "is a link that loops back on itself"
    before = project.digest()
    status = run_cli(project, "status", timeout=20)
    assert status.returncode == 0 and status.stderr == ""
    assert [line.split() for line in status.stdout.splitlines() if " 3 " in line] == [["3", "invalid", "x"]]
    for command in ("migrate", "rollback"):
        result = run_cli(project, command, timeout=20)
        assert result.returncode == 1
        assert result.stderr.startswith(f"Error: {project.dir / '003_x.sql'}: {reason}; remove ")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stdout + result.stderr
    validate = run_cli(project, "validate", timeout=20)
    assert validate.returncode == 1 and f"{project.dir / '003_x.sql'}: {reason}" in validate.stdout
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}


def test_a_thread_left_using_the_connection_is_refused_it_and_fails_the_migration(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE acct (bal INTEGER);\nINSERT INTO acct VALUES (10000);", "DROP TABLE acct;")
    project.write(
        "002_thread.py",
        "import threading, time\n\n"
        "def up(connection):\n"
        "    connection.execute('CREATE TABLE log (n INTEGER)')\n"
        "    def work():\n"
        "        for _ in range(300):\n"
        "            try:\n"
        "                connection.execute('UPDATE acct SET bal = bal / 100')\n"
        "            except Exception:\n"
        "                pass\n"
        "            time.sleep(0.01)\n"
        "    threading.Thread(target=work).start()\n\n"
        "def down(connection):\n    connection.execute('DROP TABLE log')\n",
    )
    result = run_cli(project, "migrate", timeout=60)
    assert result.returncode == 1, result.stderr  # not a crash
    assert "002_thread.py: up() returned with thread(s) still running" in result.stderr
    assert project.history() == [1] and project.query("SELECT bal FROM acct") == [(10000,)]


def test_a_waiting_runner_says_so_at_once_and_once(project: Project) -> None:
    project.write("001_slow.py", SLOW)
    holder = start(project, "migrate")
    wait_for(project.root / "started", holder)
    waiter = subprocess.Popen(
        [str(console_script()), "migrate", "--db", str(project.db), "--dir", str(project.dir), "--lock-timeout", "3"],
        cwd=project.root,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert waiter.stderr is not None
    first = waiter.stderr.readline()  # before the timeout runs out: it is said when the wait begins
    assert first == f"waiting for the run lock held by pid {holder.pid} (up to 3 s)\n"
    assert waiter.poll() is None
    rest = waiter.communicate(timeout=30)[1]
    holder.kill()
    holder.wait()
    assert "waiting for the run lock" not in rest and rest.startswith("Error: ")
    assert project.tables() == set() and project.history() == []


@pytest.mark.parametrize("command", ["migrate", "rollback", "redo", "baseline 1", "repair --yes"])
def test_ctrl_c_while_waiting_for_the_run_lock_says_nothing_was_changed(project: Project, command: str) -> None:
    """A run waiting for the run lock another real migrate holds (in a slow Python migration), sent
    Ctrl-C, said 'a transactional migration is rolled back whole': it had run none, changed
    nothing. It says it was waiting and that nothing was changed, exit 130; the holder goes on,
    and the waiter left no backup nor history row."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write("002_slow.py", SLOW)
    holder = start(project, "migrate")
    try:
        wait_for(project.root / "started", holder)
        waiter = start(project, *command.split(), "--lock-timeout", "60")
        try:
            assert waiter.stderr is not None
            assert waiter.stderr.readline() == f"waiting for the run lock held by pid {holder.pid} (up to 60 s)\n"
            waiter.send_signal(signal.SIGINT)
            out, err = waiter.communicate(timeout=30)
        finally:
            waiter.kill()
        assert (waiter.returncode, out) == (130, "")
        assert (
            err == f"Error: interrupted while waiting for the run lock held by pid {holder.pid}; nothing was changed\n"
        )
        (project.root / "let_it_finish").write_text("")
        assert holder.wait(timeout=60) == 0, holder.communicate()
    finally:
        holder.kill()
    assert project.history() == [1, 2] and project.tables() == {"a", "slow"}
    assert len(project.manager().backups()) == 1  # the holder's (the first run created the database)
