"""Fixtures: a project directory with migrations written from strings, and a file database
that tests reopen to check what is (not) in it; and the sets of migrations several test files use."""

from __future__ import annotations

import hashlib
import os
import pty
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from vcp_migrate import MigrationManager
from vcp_migrate.cli import main

from .cluster import libsql_cluster  # noqa: F401 - the libSQL cluster fixture, for every test file

ENV_VARS = ("VCP_MIGRATE_DB", "VCP_MIGRATE_DIR", "VCP_MIGRATE_LOCK_TIMEOUT", "VCP_MIGRATE_CONFIG", "NO_COLOR")


class Project:
    """A temporary project: ``migrations/`` and ``test.db`` under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "migrations"
        self.dir.mkdir()
        self.db = root / "test.db"

    def write(self, name: str, text: str = "", *, raw: bytes | None = None) -> Path:
        path = self.dir / name
        if raw is not None:
            path.write_bytes(raw)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def sql(self, name: str, up: str, down: str = "") -> Path:
        return self.write(name, f"-- migrate:up\n{textwrap.dedent(up)}\n-- migrate:down\n{textwrap.dedent(down)}\n")

    def manager(self, **kwargs: object) -> MigrationManager:
        return MigrationManager(self.db, self.dir, **kwargs)  # type: ignore[arg-type]

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """Run a query on a fresh connection, as an outsider would."""
        connection = sqlite3.connect(self.db)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def tables(self) -> set[str]:
        """User tables, without SQLite's and vcp-migrate's own."""
        if not self.db.exists():
            return set()
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows if not str(r[0]).startswith(("sqlite_", "vcp_migrations"))}

    def columns(self, table: str) -> list[str]:
        return [str(row[1]) for row in self.query(f"PRAGMA table_info({table})")]

    def history(self) -> list[int]:
        """Versions in the history table; [] when it does not exist."""
        if not self.db.exists() or not self.query("SELECT 1 FROM sqlite_master WHERE name = 'vcp_migrations'"):
            return []
        return [int(r[0]) for r in self.query("SELECT version FROM vcp_migrations ORDER BY version")]  # type: ignore[call-overload]

    def digest(self) -> str:
        return hashlib.sha256(self.db.read_bytes()).hexdigest()

    def cli(self, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        """Run the command line in-process with --db and --dir of this project."""
        command, *rest = args
        arguments = [command, "--db", str(self.db), "--dir", str(self.dir), *rest]
        return CliRunner().invoke(main, arguments, env=env, input=input)


class Synced(list[tuple[int, int]]):
    """The files and folders synced to disk (``os.fsync``) while a test runs, in order."""

    def order(self, *paths: Path) -> list[int]:
        """Where each of ``paths`` was first synced (a ValueError for one that was not)."""
        return [self.index((found.st_dev, found.st_ino)) for found in (path.stat() for path in paths)]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Synced:
    """Record each file and folder this process syncs to disk, by device and inode."""
    seen = Synced()
    real = os.fsync

    def recording(fd: int) -> None:
        found = os.fstat(fd)
        seen.append((found.st_dev, found.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.chdir(tmp_path)
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield Project(tmp_path)


def console_script() -> Path:
    """The installed vcp-migrate beside the interpreter running the tests."""
    path = Path(sys.executable).parent / "vcp-migrate"
    assert path.exists(), f"vcp-migrate is not installed beside {sys.executable}: pip install -e '.[test]'"
    return path


def with_output_closed(command: list[str], cwd: Path, *, read_first: int = 0, **env: str) -> tuple[int, str]:
    """Run ``command`` as a real process whose standard output is a pipe nobody reads any more
    (``| head -1`` once head is gone; ``read_first``: after reading that many bytes, while the
    command is still writing): its exit code and what it wrote on stderr."""
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | env
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    assert process.stdout is not None
    if read_first:
        process.stdout.read(read_first)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    return process.returncode, err.decode()


def with_output_missing(command: list[str], cwd: Path, closing: str = ">&-", **env: str) -> tuple[int, str]:
    """Run ``command`` as a real process started with its standard output closed (``>&-``: no
    descriptor 1 at all; ``closing`` names others, ``0<&-`` for standard input): its exit code and
    what it wrote on stderr."""
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | env
    shell = ["/bin/sh", "-c", f'exec "$@" {closing}', "sh", *command]
    process = subprocess.run(
        shell, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, capture_output=True, timeout=120
    )
    return process.returncode, process.stderr.decode()


def with_output_on_a_full_disk(command: list[str], cwd: Path, *, errors: bool = False, **env: str) -> tuple[int, str]:
    """Run ``command`` as a real process whose standard output (``errors``: standard error) is a
    file on a full disk (the device that answers every write with ENOSPC, ``> /dev/full``): its exit
    code and what it wrote on the other stream."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | env
    with open("/dev/full", "wb") as full:
        streams = {"stdout": subprocess.PIPE, "stderr": full} if errors else {"stdout": full, "stderr": subprocess.PIPE}
        process = subprocess.run(command, cwd=cwd, env=environment, timeout=120, **streams)  # type: ignore[call-overload]
    return process.returncode, (process.stdout if errors else process.stderr).decode()


def on_a_terminal(command: list[str], cwd: Path, *, columns: int = 80) -> tuple[int, str]:
    """Run ``command`` as a real process with its output on a pseudo-terminal COLUMNS wide: its
    exit code and everything it wrote there, escape sequences included."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(COLUMNS=str(columns), LINES="50", TERM="xterm-256color")
    process = subprocess.Popen(command, cwd=cwd, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    code = process.wait(timeout=60)
    return code, b"".join(chunks).decode()


def run_cli(project: Project, *args: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a real process in the project's directory."""
    command, *rest = args
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    return subprocess.run(
        [str(console_script()), command, "--db", str(project.db), "--dir", str(project.dir), *rest],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )


# -- migrations that several test files share -----------------------------------------------------


TRADES = "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT, quantity INTEGER);"


def three(project: Project) -> None:
    """Tables a, b and c, one per migration, each with its down."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")


def five_thousand_rows(project: Project) -> None:
    """001 applied: a table t of 5,000 rows whose v is 'x', enough for a small page cache to spill
    (an UPDATE that makes every row long writes pages to the file before its COMMIT)."""
    project.sql(
        "001_t.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);\n"
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 5000)\n"
        "INSERT INTO t (v) SELECT 'x' FROM r;",
        "DROP TABLE t;",
    )
    project.manager(backup=False).migrate()


def still_five_thousand_rows(project: Project, history: tuple[int, ...] = (1,), value: str = "x") -> None:
    """The database reopened is sound, t holds its 5,000 rows each with ``value``, the history ``history``."""
    assert project.query("PRAGMA integrity_check") == [("ok",)]
    assert project.query("SELECT count(*), min(v), max(v) FROM t") == [(5000, value, value)]
    assert project.history() == list(history)


def applied_1_3_then_2(project: Project) -> None:
    """Tables t1 and t3 applied, then t2 with allow_out_of_order: applied in the order 1, 3, 2."""
    for version in (1, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    project.manager().migrate()
    project.sql("002_t2.sql", "CREATE TABLE t2(x);", "DROP TABLE t2;")
    assert [r.version for r in project.manager().migrate(allow_out_of_order=True)] == [2]


def three_trades(project: Project) -> None:
    """trades with one row (AAPL), then a pnl column, then an index on symbol; each with its down."""
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);\nINSERT INTO trades (symbol) VALUES ('AAPL');",
        "DROP TABLE trades;",
    )
    project.sql("002_pnl.sql", "ALTER TABLE trades ADD COLUMN pnl REAL;", "ALTER TABLE trades DROP COLUMN pnl;")
    project.sql("003_idx.sql", "CREATE INDEX trades_symbol ON trades(symbol);", "DROP INDEX trades_symbol;")


def trading(project: Project) -> None:
    """trades (TRADES), then an index on symbol; each with its down."""
    project.sql("001_trades.sql", TRADES, "DROP TABLE trades;")
    project.sql("002_index.sql", "CREATE INDEX trades_symbol ON trades(symbol);", "DROP INDEX trades_symbol;")


def modified_missing_and_out_of_order(project: Project) -> None:
    """Versions 1, 2 and 4 applied; then 1 edited, 2's file deleted, 3 added below 4."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.sql("004_d.sql", "CREATE TABLE d(x);", "DROP TABLE d;")
    project.manager().migrate()
    project.sql("001_a.sql", "CREATE TABLE a(x, y);", "DROP TABLE a;")
    (project.dir / "002_b.sql").unlink()
    project.sql("003_c.sql", "CREATE TABLE c(x);")


def wrong_directory(project: Project) -> Path:
    """Versions 1-3 applied from migrations/; returns another directory holding none of them."""
    three(project)
    project.manager().migrate()
    elsewhere = project.root / "other"
    elsewhere.mkdir()
    (elsewhere / "007_g.sql").write_text("-- migrate:up\nCREATE TABLE g(x);\n-- migrate:down\nDROP TABLE g;\n")
    return elsewhere


def wrong_directory_error(project: Project, elsewhere: Path) -> str:
    return (
        f"Error: {elsewhere}: none of the 3 migration(s) applied to {project.db} (version(s) 1, 2, 3) has its file"
        " in this directory, so it is probably the wrong migrations directory (pass the directory this database"
        " was migrated from as the migrations directory (--dir); nothing was changed)\n"
    )


def file_size_limit(limit: int) -> Callable[[], None]:
    """For a child process: writing past ``limit`` bytes fails with EFBIG, as on a full disk."""

    def apply() -> None:
        # Writing past RLIMIT_FSIZE fails with EFBIG, as on a full disk, once SIGXFSZ is ignored.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def add_ballast(database: Path) -> None:
    """A table holding 1 MB in ``database``: a copy of it then outgrows a small file-size limit."""
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE ballast (b BLOB)")
        connection.execute("INSERT INTO ballast VALUES (zeroblob(1000000))")
        connection.commit()


def blobs(path: Path, megabytes: int, mode: str = "delete") -> None:
    """A database of about ``megabytes`` MB in ``path``."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute(f"PRAGMA journal_mode = {mode}")
        connection.execute("CREATE TABLE blobs (b BLOB)")
        connection.execute(
            "INSERT INTO blobs WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT zeroblob(1000) FROM n",
            (megabytes * 1000,),
        )


def interrupt_after_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C reaching Python just after a migration's (or a batch's) COMMIT: raised as the
    session notes the history written, which it does once the transaction has committed."""
    from vcp_migrate.session import Session

    def noted(self: Session, value: bool) -> None:
        if value:
            raise KeyboardInterrupt
        self.__dict__["ready"] = value

    monkeypatch.setattr(Session, "history_ready", property(lambda self: self.__dict__["ready"], noted), raising=False)


def interrupt_once_copied(process: subprocess.Popen[str], folder: Path, size: int) -> str:
    """Send SIGINT to ``process`` once a partial copy in ``folder`` holds more than ``size`` bytes
    (a backup or a safety copy under way); its standard error once it has ended."""
    deadline = time.monotonic() + 60
    while not any(path.stat().st_size > size for path in folder.glob("*.partial")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.0005)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=60)[1]


def as_unprivileged(command: list[str]) -> list[str]:
    """Root ignores file permissions; drop that power so a read-only file is read-only."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *command]


def trigger_on_the_history(project: Project, *, drop: bool = False) -> str:
    """Put a trigger on the history table by hand, as an outsider would (``drop``: take it off
    again); the error every command that writes the history refuses to run with while it is there."""
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute(
            "DROP TRIGGER hand_trg"
            if drop
            else "CREATE TRIGGER hand_trg AFTER INSERT ON vcp_migrations BEGIN"
            " DELETE FROM vcp_migrations WHERE version = 1; END"
        )
        connection.commit()
    return (
        f"Error: {project.db}: its history tables carry trigger(s) that this run did not make (hand_trg), which"
        ' could rewrite the history (drop them with DROP TRIGGER "hand_trg": vcp-migrate\'s history must be'
        " written only by vcp-migrate; nothing was changed)"
    )
