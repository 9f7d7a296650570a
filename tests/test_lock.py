"""The run lock in one process: flock locks belong to open files, so two RunLocks conflict.

Also what anyone who can write the database's directory could plant under the lock's name, every
path to one database taking one lock, and a lock file removed while its run holds it."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from vcp_migrate import DatabaseError, LockTimeout
from vcp_migrate.lock import RunLock, lock_path, same_file

from .conftest import Project


def make_database(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t(x)")
        connection.execute("INSERT INTO t VALUES ('precious')")
        connection.commit()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def enter_within(lock: RunLock, seconds: float = 10) -> BaseException | None:
    """Try to take ``lock`` in a thread, so a lock file that would block (a FIFO) fails the test
    instead of hanging it; the exception raised, or None (the lock is then released)."""
    raised: list[BaseException | None] = []

    def attempt() -> None:
        try:
            lock.__enter__()
            lock.__exit__(None, None, None)
            raised.append(None)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(seconds)
    assert raised, f"taking the run lock hung for {seconds}s"
    return raised[0]


def test_second_holder_times_out_naming_the_first(tmp_path: Path) -> None:
    database = make_database(tmp_path / "x.db")
    with RunLock(database, timeout=1) as lock:
        assert lock.path == lock_path(database)
        assert lock.path.read_text() == str(os.getpid())
        started = time.monotonic()
        expected = rf"another vcp-migrate run \(pid {os.getpid()}\) held the database for 0.2s"
        with pytest.raises(LockTimeout, match=expected):
            RunLock(database, timeout=0.2).__enter__()
        assert 0.2 <= time.monotonic() - started < 1.0
    assert not lock.path.exists()


def test_waiter_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    database = make_database(tmp_path / "x.db")
    first = RunLock(database, timeout=1).__enter__()
    threading.Timer(0.2, first.__exit__, (None, None, None)).start()
    with RunLock(database, timeout=5) as second:
        assert second.path.exists()
    assert not second.path.exists()


def test_lock_file_replaced_under_a_waiter_is_not_trusted(tmp_path: Path) -> None:
    """A waiter that locks a file its holder has just deleted must not think it holds the lock."""
    database = make_database(tmp_path / "x.db")
    with RunLock(database, timeout=1) as lock:
        fd = os.open(lock.path, os.O_RDWR)
        os.unlink(lock.path)
        assert same_file(lock.path, fd) is False
        os.close(fd)


def test_lock_is_named_by_the_database_identity_in_its_real_directory(tmp_path: Path) -> None:
    real = tmp_path / "data"
    real.mkdir()
    database = make_database(real / "x.db")
    (tmp_path / "alias.db").symlink_to(database)
    status = os.stat(database)
    with RunLock(tmp_path / "alias.db", timeout=0) as lock:
        assert lock.path == real / f".vcp-lock-{status.st_dev}-{status.st_ino}"
        assert lock.identity is not None and lock.identity.links == 1


@pytest.mark.parametrize("alias", ["symlink", "hard link", "symlinked directory", "relative path"])
def test_every_path_to_one_database_takes_one_lock(tmp_path: Path, alias: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database = make_database(tmp_path / "x.db")
    other = tmp_path / "alias.db"
    if alias == "symlink":
        other.symlink_to(database)
    elif alias == "hard link":
        os.link(database, other)
    elif alias == "symlinked directory":
        (tmp_path / "linked").symlink_to(tmp_path)
        other = tmp_path / "linked" / "x.db"
    else:
        monkeypatch.chdir(tmp_path)
        other = Path("x.db")
    with RunLock(database, timeout=1), pytest.raises(LockTimeout):
        RunLock(other, timeout=0.1).__enter__()


PLANTS = ["symlink to the database", "symlink to another file", "dangling symlink", "hard link to another file"]
PLANTS += ["FIFO", "directory", "large file", "file that is not a pid"]


def plant(kind: str, at: Path, database: Path, victim: Path) -> None:
    if kind == "symlink to the database":
        at.symlink_to(database)
    elif kind == "symlink to another file":
        at.symlink_to(victim)
    elif kind == "dangling symlink":
        at.symlink_to(victim.with_name("created-through-the-link"))
    elif kind == "hard link to another file":
        os.link(victim, at)
    elif kind == "FIFO":
        os.mkfifo(at)
    elif kind == "directory":
        at.mkdir()
    elif kind == "large file":
        at.write_text("9" * 21)
    else:
        at.write_text("notes\n")


REFUSALS = {
    "symlink to the database": "is a symbolic link",
    "symlink to another file": "is a symbolic link",
    "dangling symlink": "is a symbolic link",
    "hard link to another file": "has 2 hard links",
    "FIFO": "is not a regular file",
    "directory": "is a directory",
    "large file": "holds 21 bytes",
    "file that is not a pid": "holds something other than a pid",
}


@pytest.mark.parametrize("kind", PLANTS)
def test_anything_planted_at_the_lock_path_is_refused_and_left_alone(tmp_path: Path, kind: str) -> None:
    database = make_database(tmp_path / "x.db")
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file, that a root runner must not overwrite\n")
    at = lock_path(database)
    plant(kind, at, database, victim)
    before = {p: digest(p) for p in (database, victim)}
    raised = enter_within(RunLock(database, timeout=0.5))
    assert isinstance(raised, DatabaseError) and not isinstance(raised, LockTimeout), raised
    assert str(raised) == (
        f"{at}: {REFUSALS[kind]}, not a run lock of vcp-migrate"
        f" (remove it once no vcp-migrate run is using {database}; nothing was changed)"
    )
    assert {p: digest(p) for p in (database, victim)} == before
    assert os.path.lexists(at) and not victim.with_name("created-through-the-link").exists()
    if kind == "file that is not a pid":
        assert at.read_text() == "notes\n"


def test_lock_file_a_killed_run_left_is_taken_over(tmp_path: Path) -> None:
    database = make_database(tmp_path / "x.db")
    lock_path(database).write_text("4194304")
    with RunLock(database, timeout=0) as lock:
        assert lock.path.read_text() == str(os.getpid())
    assert not lock.path.exists()


def test_lock_file_deleted_as_a_waiter_opens_it_is_looked_at_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its holder released it (deleting it) between a waiter's open and its checks: not a refusal."""
    database = make_database(tmp_path / "x.db")
    path = lock_path(database)
    path.write_text("4194304")
    real_open = os.open
    released: list[bool] = []

    def open_as_the_holder_releases(file: str | Path, flags: int, mode: int = 0o777) -> int:
        fd = real_open(file, flags, mode)
        if Path(file) == path and not released:
            released.append(True)
            path.unlink()
        return fd

    monkeypatch.setattr(os, "open", open_as_the_holder_releases)
    with RunLock(database, timeout=0) as lock:
        assert released and lock.path.read_text() == str(os.getpid())


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_verify_fails_once_the_lock_file_is_removed_or_replaced(tmp_path: Path, how: str) -> None:
    database = make_database(tmp_path / "x.db")
    with RunLock(database, timeout=0) as lock:
        lock.verify()
        lock.path.unlink()
        if how == "replaced":
            lock.path.write_text("1")  # a newcomer's lock file: never ours to delete
        with pytest.raises(DatabaseError) as raised:
            lock.verify()
    assert str(raised.value) == (
        f"{database}: the lock file {lock.path} was removed or replaced while this run held it;"
        " another run may be changing the database (nothing more was applied)"
    )
    assert lock.path.exists() == (how == "replaced")


def test_first_run_creates_the_database_so_racing_runs_agree_on_one_lock(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    first = RunLock(database, timeout=0, create=True).__enter__()
    assert first.created and database.stat().st_size == 0
    with pytest.raises(LockTimeout):
        RunLock(database, timeout=0.1, create=True).__enter__()
    waiter: list[RunLock] = []
    thread = threading.Thread(target=lambda: waiter.append(RunLock(database, timeout=5, create=True).__enter__()))
    thread.start()
    time.sleep(0.2)
    first.remove_if_created_empty()  # a failed first run, under its lock: the waiter must start again
    first.__exit__(None, None, None)
    thread.join(10)
    (second,) = waiter
    assert second.created and second.identity is not None
    assert second.identity.inode == os.stat(database).st_ino and second.path == lock_path(database)
    second.__exit__(None, None, None)


def test_missing_database_without_create(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="x.db: does not exist"):
        RunLock(tmp_path / "x.db", timeout=0).__enter__()
    assert list(tmp_path.iterdir()) == []


def test_database_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="x.db: cannot be created: No such file or directory"):
        RunLock(tmp_path / "missing" / "x.db", timeout=0, create=True).__enter__()


@pytest.mark.parametrize("kind", ["symlink to the database", "symlink to another file", "hard link to another file"])
def test_rollback_refuses_a_planted_lock_file_and_changes_nothing(project: Project, kind: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    victim = project.root / "victim.txt"
    victim.write_text("someone else's file\n")
    at = lock_path(project.db)
    plant(kind, at, project.db, victim)
    before = {p: digest(p) for p in (project.db, victim)}
    result = project.cli("rollback")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {at}: {REFUSALS[kind]}, not a run lock of vcp-migrate"
        f" (remove it once no vcp-migrate run is using {project.db}; nothing was changed)\n"
    )
    assert {p: digest(p) for p in (project.db, victim)} == before
    assert project.query("PRAGMA integrity_check") == [("ok",)]
    assert project.tables() == {"a"} and project.history() == [1]


REMOVES_THE_LOCK = """
from pathlib import Path

def up(connection):
    connection.execute("CREATE TABLE b(x)")
    for lock in Path(".").glob(".vcp-lock-*"):
        lock.unlink()

def down(connection):
    connection.execute("DROP TABLE b")
"""


def test_lock_file_removed_during_a_run_stops_it_before_the_next_commit(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_b.py", REMOVES_THE_LOCK)
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {project.db}: the lock file {project.root}/.vcp-lock-")
    assert result.stderr.endswith(
        " was removed or replaced while this run held it; another run may be changing the database"
        " (nothing more was applied)\n"
    )
    assert project.tables() == {"a"} and project.history() == [1]


def test_database_with_another_hard_link_is_warned_about(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    assert project.cli("migrate", "--to", "1").exit_code == 0
    (project.root / "elsewhere").mkdir()
    os.link(project.db, project.root / "elsewhere" / "same.db")
    result = project.cli("migrate")
    assert result.exit_code == 0, result.output
    assert (
        f"Warning: {project.db}: the database file has 2 hard links; runs through a name in another"
        " directory take another run lock and are not serialised with this one, and SQLite documents"
        " hard links to a database as a way to corrupt it (keep one name)\n"
    ) in result.stderr
    assert project.history() == [1, 2]


@pytest.mark.parametrize("call", ["migrate()", "rollback()", "status()"])
def test_a_migration_calling_vcp_migrate_on_its_own_database_is_told_so_at_once(project: Project, call: str) -> None:
    """The same thread asking for the lock it holds: flock made it wait the whole lock timeout,
    then blamed 'another vcp-migrate run' with this process's own pid."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_nested.py",
        f"""
        from vcp_migrate import MigrationManager
        def up(connection):
            connection.execute("CREATE TABLE b (x)")
            MigrationManager({str(project.db)!r}, {str(project.dir)!r}, lock_timeout=30).{call}
        def down(connection):
            connection.execute("DROP TABLE b")
        """,
    )
    project.manager().migrate(1)
    started = time.monotonic()
    if call == "status()":  # only reads: no lock, so it works inside a run
        assert [run.version for run in project.manager().migrate()] == [2]
        assert project.history() == [1, 2]
        return
    with pytest.raises(
        Exception, match="already holds this database's run lock, and this call comes from code"
    ) as raised:
        project.manager().migrate()
    assert time.monotonic() - started < 5 and "pid" not in str(raised.value)
    assert project.history() == [1] and project.tables() == {"a"}
    assert sorted(p.name for p in project.root.iterdir() if p.name.startswith(".vcp-lock")) == []
    assert [run.version for run in project.manager().migrate(1)] == []  # the lock was given back


@pytest.mark.parametrize("how", ["renamed", "replaced"])
def test_a_database_moved_or_replaced_during_the_run_fails_it_and_nothing_more_is_committed(
    project: Project, how: str
) -> None:
    """Renamed: SQLite's write failed as 'read-only' (check the permissions). Replaced: the
    migration committed into the file no path named any more, and the run said it completed."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    other = project.root / "other.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE theirs (y)")
    if how == "renamed":
        action = f"os.rename({str(project.db)!r}, {str(project.root / 'moved.db')!r})"
    else:
        action = f"os.replace({str(other)!r}, {str(project.db)!r})"
    project.write(
        "002_b.py",
        f"""
        import os
        def up(connection):
            connection.execute("CREATE TABLE b (x)")
            {action}
        def down(connection):
            connection.execute("DROP TABLE b")
        """,
    )
    with pytest.raises(DatabaseError, match="was moved(, deleted or replaced| or deleted) during the run"):
        project.manager(backup=False).migrate()
    old = project.root / "moved.db" if how == "renamed" else None
    if old is not None:  # the file the run had open: as it was before the migration
        with closing(sqlite3.connect(old)) as connection:
            assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]
            assert {r[0] for r in connection.execute("SELECT name FROM sqlite_master")} >= {"a"}
            assert connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'b'").fetchone() == (0,)
    else:  # the file now at the path is the one put there, untouched
        assert project.tables() == {"theirs"}


@pytest.mark.parametrize("seconds", [0.0, 0.01, 0.3])
def test_waiting_for_an_application_s_write_lock_keeps_the_lock_timeout_and_sqlite_s_error(
    tmp_path: Path, seconds: float
) -> None:
    """The wait is made in slices of 50 ms, for Ctrl-C: one shorter timeout waited a whole slice,
    and the error that gave up lost SQLite's code (SQLITE_BUSY) for one of ours."""
    from vcp_migrate.file_errors import database_error
    from vcp_migrate.sqlite import open_database
    from vcp_migrate.transactions import BEGIN

    database = tmp_path / "app.db"
    sqlite3.connect(database).close()
    with closing(sqlite3.connect(database, isolation_level=None)) as application:
        application.execute("BEGIN IMMEDIATE")
        with closing(open_database(database, create=False, timeout=seconds)) as connection:
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError) as raised:
                connection.execute(BEGIN)
            waited = time.monotonic() - started
            assert connection.execute("PRAGMA busy_timeout").fetchone() == (int(seconds * 1000),)
    assert seconds * 0.8 <= waited < seconds + 0.03, waited  # SQLite gives up a little early, as it always did
    assert isinstance(database_error(raised.value, database), LockTimeout)
    assert getattr(raised.value, "sqlite_errorname", "SQLITE_BUSY") == "SQLITE_BUSY"  # from Python 3.11


def test_a_lock_timeout_past_what_sqlite_holds_is_its_longest_not_none(tmp_path: Path) -> None:
    """SQLite keeps its busy timeout in milliseconds in 32 bits: 3,000,000 s overflowed to 0, and
    every wait for an application failed at once."""
    from vcp_migrate.sqlite import open_database

    with closing(open_database(tmp_path / "app.db", create=True, timeout=3_000_000)) as connection:
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (2**31 - 1,)


def test_a_lock_file_that_cannot_be_deleted_after_the_commit_is_left_for_the_next_run(project: Project) -> None:
    """Releasing the run lock deletes its file; a directory that no longer lets it (made immutable,
    or read-only, while the run went on) raised 'unexpected PermissionError' after the migration had
    committed: exit 1 for a change that was made. The file is left; the next run takes and deletes it."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr to make a directory whose files cannot be deleted")
    probe = project.root / "probe"
    probe.mkdir()
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root and the right to make a directory immutable")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:  # its commit then needs no new file beside it
        assert connection.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    project.write(
        "002_b.py",
        f"""
        import subprocess

        def up(connection):
            subprocess.run(["chattr", "+i", {str(project.root)!r}], check=True)
            connection.execute("CREATE TABLE b (x)")

        def down(connection):
            connection.execute("DROP TABLE b")
        """,
    )
    try:
        result = project.cli("migrate", "--no-backup", "--no-dump")
    finally:
        subprocess.run(["chattr", "-i", str(project.root)], check=True)
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[-1].startswith("Applied 1 migration(s) in ")
    assert project.history() == [1, 2] and "b" in project.tables()
    (left,) = [name for name in os.listdir(project.root) if name.startswith(".vcp-lock-")]
    assert project.cli("rollback", "--no-backup", "--no-dump").exit_code == 0
    assert project.history() == [1] and not (project.root / left).exists()


@pytest.mark.parametrize("at", ["_is_at", "_restat", "_check_content"])
def test_ctrl_c_just_after_the_lock_was_taken_lets_go_of_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, at: str
) -> None:
    """Ctrl-C that reached Python after flock() had taken the lock, before the run held it, left
    its descriptor open and locked: every later run, in this process or any other, waited for it
    until the process ended (LockTimeout, "held by another process"). It is let go of now."""
    import subprocess
    import sys

    from vcp_migrate import lock

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    before = sorted(os.listdir("/proc/self/fd"))
    real = getattr(lock, at)

    def interrupted(*args: object) -> object:
        monkeypatch.setattr(lock, at, real)
        raise KeyboardInterrupt

    monkeypatch.setattr(lock, at, interrupted)
    with pytest.raises(KeyboardInterrupt, match="nothing was changed"):
        project.manager().migrate()
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert project.history() == [1] and project.tables() == {"a"}
    code = (
        "import sys; from vcp_migrate import MigrationManager;"
        " MigrationManager(sys.argv[1], sys.argv[2], lock_timeout=1).migrate()"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(project.db), str(project.dir)], capture_output=True, text=True
    )
    assert other.returncode == 0, other.stderr
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}
    assert [run.version for run in project.manager(lock_timeout=1).rollback()] == [2]
    assert project.history() == [1] and project.tables() == {"a"}
