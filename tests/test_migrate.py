"""migrate: a migration and its history row commit together or not at all, whatever it does."""

from __future__ import annotations

import gc
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import warnings
from contextlib import closing
from pathlib import Path

import pytest

import vcp_migrate
from vcp_migrate import DatabaseError, MigrationFailed, MigrationFileError, PlanError

from .conftest import (
    Project,
    console_script,
    five_thousand_rows,
    interrupt_after_commit,
    run_cli,
    still_five_thousand_rows,
    three,
    trigger_on_the_history,
    with_output_closed,
    with_output_missing,
    with_output_on_a_full_disk,
    wrong_directory,
    wrong_directory_error,
)

TRADES = "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);"


def test_applies_in_order_and_records_history(project: Project) -> None:
    project.sql("001_trades.sql", TRADES, "DROP TABLE trades;")
    project.write(
        "002_pnl.py",
        """
        def up(connection):
            connection.execute("ALTER TABLE trades ADD COLUMN pnl REAL")
        def down(connection):
            connection.execute("ALTER TABLE trades DROP COLUMN pnl")
        """,
    )
    runs = project.manager().migrate()
    assert [(r.version, r.name, r.direction) for r in runs] == [(1, "trades", "up"), (2, "pnl", "up")]
    assert project.columns("trades") == ["id", "symbol", "pnl"]
    rows = project.query("SELECT version, name, checksum, applied_at, execution_ms FROM vcp_migrations")
    assert [r[:2] for r in rows] == [(1, "trades"), (2, "pnl")]
    for _, _, checksum, applied_at, execution_ms in rows:
        assert len(str(checksum)) == 64
        assert str(applied_at).endswith("Z") and "T" in str(applied_at)
        assert isinstance(execution_ms, int) and execution_ms >= 0
    assert project.query("SELECT value FROM vcp_migrations_meta WHERE key = 'layout'") == [("2",)]
    assert project.query("SELECT file, source FROM vcp_migrations WHERE version = 1") == [
        ("001_trades.sql", (project.dir / "001_trades.sql").read_bytes())
    ]
    assert project.manager().migrate() == []


def test_target_stops_after_the_version(project: Project) -> None:
    for version in (1, 2, 3):
        project.sql(f"00{version}_t{version}.sql", f"CREATE TABLE t{version}(x);", f"DROP TABLE t{version};")
    assert [r.version for r in project.manager().migrate(2)] == [1, 2]
    assert project.tables() == {"t1", "t2"}
    with pytest.raises(PlanError, match="target=7 is not a migration.*known versions: 1, 2, 3"):
        project.manager().migrate(7)


def test_failing_third_statement_leaves_no_partial_schema_and_no_history(project: Project) -> None:
    project.sql("001_ok.sql", "CREATE TABLE ok(x);", "DROP TABLE ok;")
    project.sql(
        "002_bad.sql",
        "CREATE TABLE first(x);\nCREATE INDEX first_x ON first(x);\nINSERT INTO no_such_table VALUES (1);",
    )
    with pytest.raises(MigrationFailed) as error:
        project.manager().migrate()
    message = str(error.value)
    assert message.startswith(str(project.dir / "002_bad.sql") + ": statement 3 failed: no such table: no_such_table")
    assert "it was rolled back; the 1 migration(s) before it in this run stay applied" in message
    assert error.value.statement_index == 3 and error.value.version == 2
    assert project.tables() == {"ok"}
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'first_x'") == []
    assert project.history() == [1]
    project.sql("002_bad.sql", "CREATE TABLE first(x);")
    assert [r.version for r in project.manager().migrate()] == [2]


def test_first_migration_failing_on_a_new_database_leaves_no_file(project: Project) -> None:
    project.sql("001_bad.sql", "CREATE TABLE t(x);\nSELECT * FROM nowhere;")
    with pytest.raises(MigrationFailed, match=r"statement 2 failed.*\(nothing was applied\)$"):
        project.manager().migrate()
    assert not project.db.exists()
    assert list(project.root.glob("test.db*")) == []


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ("connection.commit()", r"call commit\(\)"),
        ("connection.rollback()", r"call rollback\(\)"),
        ("connection.execute('COMMIT')", "run COMMIT"),
        ("connection.execute('END')", "run COMMIT"),
        ("connection.execute('ROLLBACK')", "run ROLLBACK"),
        ("connection.execute('BEGIN')", "run BEGIN"),
        # 3.10 and 3.11 reach the Python-level commit(), later versions the C-level COMMIT
        ("connection.cursor().executescript('SELECT 1;')", r"(run COMMIT|call commit\(\))"),
        ("connection.close()", r"call close\(\)"),
        ("connection.set_authorizer(None)", r"call set_authorizer\(\)"),
    ],
)
def test_python_code_cannot_commit_on_its_own(project: Project, body: str, refused: str) -> None:
    project.write(
        "001_sneaky.py",
        f"""
        def up(connection):
            connection.execute("CREATE TABLE created_before(x)")
            {body}
            connection.execute("CREATE TABLE created_after(x)")
        def down(connection):
            pass
        """,
    )
    with pytest.raises(MigrationFailed) as error:
        project.manager().migrate()
    assert re.search(rf"up\(\) tried to {refused}", str(error.value)), str(error.value)
    assert "(nothing was applied)" in str(error.value)
    assert project.tables() == set()
    assert project.history() == []


BACKUP_INSIDE = """
import sqlite3

def up(connection):
    connection.execute("CREATE TABLE b (x)")
    copy = sqlite3.connect("copy.db")
    {backup}
    connection.execute("CREATE TABLE c (x)")

def down(connection):
    pass
"""


@pytest.mark.parametrize(
    ("backup", "said"),
    [
        # Even when it swallows the error: the migration still fails.
        (
            "try:\n        connection.backup(copy)\n    except sqlite3.Error:\n        pass",
            r"up\(\) tried to call backup\(\) inside its transaction.*'vcp-migrate backups'",
        ),
        # Our connection as the target: SQLite refuses it at once, as in use.
        ("copy.backup(connection)", "up\\(\\) failed at line 6: OperationalError: destination database is in use"),
    ],
    ids=["source", "target"],
)
def test_backup_inside_a_migration_fails_at_once(project: Project, backup: str, said: str) -> None:
    """SQLite cannot copy a database in the middle of its connection's write: sqlite3 retried that
    in C forever, where Ctrl-C could not reach it. A real process, so that a hang is a timeout."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    project.write("002_copy.py", BACKUP_INSIDE.format(backup=backup))
    result = run_cli(project, "migrate", "--no-backup", timeout=30)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and re.search(said, result.stderr), result.stderr
    assert "(nothing was applied)" in result.stderr
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}


def test_refusal_is_enforced_even_when_the_migration_swallows_the_error(project: Project) -> None:
    project.write(
        "001_sneaky.py",
        """
        def up(connection):
            connection.execute("CREATE TABLE t(x)")
            try:
                connection.commit()
            except Exception:
                pass
        def down(connection):
            pass
        """,
    )
    with pytest.raises(MigrationFailed, match=r"tried to call commit\(\)"):
        project.manager().migrate()
    assert project.tables() == set() and project.history() == []


def test_commit_statement_in_a_sql_file_is_refused(project: Project) -> None:
    project.sql("001_x.sql", "CREATE TABLE t(x);\nCOMMIT;\nCREATE TABLE u(x);")
    with pytest.raises(MigrationFailed, match="statement 2 tried to run COMMIT"):
        project.manager().migrate()
    assert project.tables() == set() and project.history() == []


def test_the_guard_covers_statements_prepared_before_it_was_first_needed(tmp_path: Path) -> None:
    """The authorizer is installed when the connection is first guarded: a statement prepared and
    cached before then (the same text a migration runs) is authorized again, never reused as it was."""
    from vcp_migrate import sqlite, transactions

    path = tmp_path / "x.db"
    with closing(sqlite.open_database(path, create=True, timeout=1)) as connection:
        connection.execute("BEGIN")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("COMMIT")  # prepared and cached with no guard
        connection.execute(transactions.BEGIN)
        connection.execute("INSERT INTO t VALUES (1)")
        connection.guarded = True
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            connection.execute("COMMIT")
        connection.guarded = False
        assert connection.refused == "run COMMIT" and connection.in_transaction
        connection.execute(transactions.ROLLBACK)
    with closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_executescript_runs_inside_the_migration_transaction(project: Project) -> None:
    project.write(
        "001_script.py",
        """
        def up(connection):
            connection.executescript("CREATE TABLE a(x); INSERT INTO a VALUES ('x;y');")
            connection.execute("INSERT INTO nowhere VALUES (1)")
        def down(connection):
            pass
        """,
    )
    with pytest.raises(MigrationFailed, match=r"up\(\) failed at line 3: OperationalError: no such table: nowhere"):
        project.manager().migrate()
    assert project.tables() == set() and project.history() == []
    project.write(
        "001_script.py",
        """
        def up(connection):
            connection.executescript("CREATE TABLE a(x); INSERT INTO a VALUES ('x;y');")
        def down(connection):
            connection.executescript("DROP TABLE a;")
        """,
    )
    project.manager().migrate()
    assert project.query("SELECT x FROM a") == [("x;y",)]


def test_keyboard_interrupt_rolls_back_and_next_run_works(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write(
        "001_interrupted.py",
        """
        import os
        def up(connection):
            connection.execute("CREATE TABLE t(x)")
            if not os.environ.get("LET_IT_PASS"):
                raise KeyboardInterrupt
        def down(connection):
            connection.execute("DROP TABLE t")
        """,
    )
    with pytest.raises(KeyboardInterrupt):
        project.manager().migrate()
    assert project.tables() == set() and project.history() == []
    assert not list(project.root.glob(".vcp-lock-*"))
    monkeypatch.setenv("LET_IT_PASS", "1")
    assert [r.version for r in project.manager(lock_timeout=0).migrate()] == [1]
    assert project.tables() == {"t"} and project.history() == [1]


def test_sys_exit_in_a_migration_is_a_failure(project: Project) -> None:
    project.write(
        "001_x.py", "import sys\ndef up(c):\n    c.execute('CREATE TABLE t(x)')\n    sys.exit(4)\ndef down(c): pass\n"
    )
    with pytest.raises(MigrationFailed, match=r"up\(\) failed at line 4: SystemExit: 4"):
        project.manager().migrate()
    assert project.tables() == set()


@pytest.mark.parametrize("base", ["Exception", "sqlite3.OperationalError"])
def test_an_exception_whose_message_cannot_be_read_is_the_migrations_failure(project: Project, base: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    project.write(
        "002_x.py",
        f"import sqlite3\nclass Odd({base}):\n    def __str__(self):\n        raise RuntimeError('no')\n"
        "def up(c):\n    c.execute('CREATE TABLE t(x)')\n    raise Odd()\ndef down(c): pass\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir / '002_x.py'}: up() failed at line 7: Odd (its message could not be read)"
        " (nothing was applied)\n"
    )
    assert project.tables() == {"a"} and project.history() == [1]


@pytest.mark.parametrize(
    ("made", "what", "use"),
    [
        ("async def made(c):\n    c.execute('CREATE TABLE lost (x)')\n", "an awaitable", "await"),
        ("def made(c):\n    c.execute('CREATE TABLE lost (x)')\n    yield\n", "a generator", "iterate"),
        ("async def made(c):\n    c.execute('CREATE TABLE lost (x)')\n    yield\n", "a generator", "iterate"),
    ],
)
def test_an_up_that_returns_a_coroutine_or_a_generator_fails(project: Project, made: str, what: str, use: str) -> None:
    """The loader cannot see it (a plain function that returns one): the call is checked, nothing is
    committed, and the coroutine is closed, so Python warns of nothing."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    project.write(
        "002_b.py", made + "def up(c):\n    c.execute('CREATE TABLE b (x)')\n    return made(c)\ndef down(c): pass\n"
    )
    # What earlier tests left to collect (connections their migrations opened and never closed warn,
    # on Python 3.13) is collected first: only this run's leftovers may warn below.
    gc.collect()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        result = project.cli("migrate")
        gc.collect()
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir / '002_b.py'}: up() returned {what}, which vcp-migrate does not {use}, so its work"
        " never ran; make up a plain function that does the work when called (nothing was applied)\n"
    )
    assert [str(w.message) for w in warned] == []
    assert project.tables() == {"a"} and project.history() == [1]


LEAVES_A_RAW_THREAD = """
import _thread, sqlite3, time

def up(connection):
    connection.execute("CREATE TABLE b (x)")
    path = connection.execute("PRAGMA database_list").fetchone()[2]

    def work():
        own = sqlite3.connect(path, timeout=30, isolation_level=None)
        for n in range(5):
            own.execute("INSERT INTO a VALUES (?)", (n,))
            time.sleep(0.05)
        own.close()
        open(path + ".done", "w").close()

    _thread.start_new_thread(work, ())

def down(connection):
    connection.execute("DROP TABLE b")
"""


@pytest.mark.parametrize("seen", [False, True])
def test_a_thread_started_with_thread_and_left_running_fails_the_migration(project: Project, seen: bool) -> None:
    """threading.enumerate() does not list it (or lists it as a dummy that cannot be joined, once it
    asked for its threading object); Python's count of threads counts it. It cannot be stopped: its
    own connection waits for the migration's transaction, and writes once it is rolled back."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    asks = "        __import__('threading').current_thread()\n" if seen else ""
    project.write("002_raw.py", LEAVES_A_RAW_THREAD.replace("    def work():\n", f"    def work():\n{asks}"))
    with pytest.raises(MigrationFailed) as failed:
        project.manager().migrate()
    assert str(failed.value) == (
        f"{project.dir / '002_raw.py'}: up() returned with thread(s) still running (1 started with _thread);"
        " a migration must finish its work (join its threads) before it returns (it was rolled back; the 1"
        " migration(s) before it in this run stay applied)"
    )
    assert project.history() == [1] and project.tables() == {"a"}
    done = Path(f"{project.db}.done")
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.exists()
    assert project.query("SELECT x FROM a") == [(0,), (1,), (2,), (3,), (4,)]  # written after the rollback
    assert project.history() == [1] and project.tables() == {"a"}


NATIVE_THREAD = """
import _thread, ctypes, time

def up(connection):
    connection.execute("CREATE TABLE b (x)")
    libc = ctypes.CDLL(None)
    thread = ctypes.c_ulong()
    # A thread of C code, as a library's thread pool starts: it runs libc's sleep(3), never Python.
    libc.pthread_create(ctypes.byref(thread), None, ctypes.cast(libc.sleep, ctypes.c_void_p), ctypes.c_void_p(3))
    {python}
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="the system's count of threads is Linux's")
@pytest.mark.parametrize("python", [False, True], ids=["alone", "with a thread of _thread"])
def test_a_thread_of_c_code_a_migration_starts_is_not_waited_for(
    project: Project, monkeypatch: pytest.MonkeyPatch, python: bool
) -> None:
    """The system counts it and Python never does: it was taken for a thread of _thread yet to run,
    and waited for (1 s; here as long as the thread ran). One of _thread beside it is still found."""
    from vcp_migrate import left_threads

    monkeypatch.setattr(left_threads, "_SETTLE_SECONDS", 30.0)
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    started = "_thread.start_new_thread(time.sleep, (0.5,))" if python else ""
    project.write("002_pool.py", NATIVE_THREAD.format(python=started))
    began = time.monotonic()
    if python:
        with pytest.raises(MigrationFailed, match=r"still running \(1 started with _thread\)"):
            project.manager().migrate()
        assert project.history() == [1]
    else:
        project.manager().migrate()
        assert project.history() == [1, 2]
    assert time.monotonic() - began < 2.5


def test_the_quiet_that_tells_a_thread_of_c_code_follows_the_switch_interval() -> None:
    """A thread of _thread waiting for the GIL wakes once a switch interval: one a migration or its
    application lengthened (0.1 s) must not make such a thread look like C code's, quiet since the
    interval the module was imported with (5 ms: one of three missed under load)."""
    from vcp_migrate import left_threads

    interval = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.1)
        assert left_threads.quiet_seconds() >= 0.3
    finally:
        sys.setswitchinterval(interval)
    assert left_threads.quiet_seconds() == max(3 * interval, 0.015)


CALLABLES = """
import functools

def _create(connection, name):
    connection.execute(f"CREATE TABLE {name} (x)")
    connection.execute(f"INSERT INTO {name} VALUES (1)")

class Drop:
    def __call__(self, connection):
        connection.execute("DROP TABLE p")
        if connection.execute("SELECT count(*) FROM sqlite_master WHERE name = 'keep'").fetchone()[0]:
            raise ValueError("keep is there")

up = functools.partial(_create, name="p")
down = Drop()
"""


def test_a_partial_or_a_callable_object_runs_as_up_or_down(project: Project) -> None:
    project.write("001_p.py", CALLABLES)
    dry = project.cli("migrate", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "CREATE TABLE p (x);" in dry.output and not project.db.exists()
    assert project.cli("validate").exit_code == 0
    assert project.cli("migrate").exit_code == 0
    assert project.query("SELECT x FROM p") == [(1,)] and project.history() == [1]
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute("CREATE TABLE keep (x)")
    result = project.cli("rollback", "--no-backup")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir / '001_p.py'}: down() failed at line 11: ValueError: keep is there"
        " (its down was undone whole: it is still applied)\n"
    )
    assert project.query("SELECT x FROM p") == [(1,)] and project.history() == [1]
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute("DROP TABLE keep")
    assert project.cli("rollback", "--no-backup").exit_code == 0
    assert project.tables() == set() and project.history() == []


def test_a_migration_that_fails_to_load_stops_the_run_before_anything_runs(project: Project) -> None:
    project.sql("001_ok.sql", "CREATE TABLE ok(x);")
    project.write("002_broken.py", "def up(connection)\n    pass\n")
    with pytest.raises(MigrationFileError, match=r"002_broken.py: line 1: .*nothing was applied"):
        project.manager().migrate()
    assert not project.db.exists()
    project.manager().migrate(1)
    before = project.digest()
    with pytest.raises(MigrationFileError, match="002_broken.py"):
        project.manager().migrate()
    assert project.digest() == before


def test_connection_state_does_not_leak_into_the_next_migration(project: Project) -> None:
    project.sql(
        "001_legacy.sql",
        "PRAGMA legacy_alter_table = ON;\nPRAGMA recursive_triggers = ON;\nCREATE TEMP TABLE scratch(x);",
    )
    project.write(
        "002_python_sets_state.py",
        """
        def up(connection):
            connection.execute("PRAGMA case_sensitive_like = ON")
            connection.create_function("leaky", 0, lambda: 1)
            connection.row_factory = lambda cursor, row: "not a tuple"
        def down(connection):
            pass
        """,
    )
    project.write(
        "003_observe.py",
        """
        def up(connection):
            legacy = connection.execute("PRAGMA legacy_alter_table").fetchone()[0]
            recursive = connection.execute("PRAGMA recursive_triggers").fetchone()[0]
            temp = connection.execute("SELECT count(*) FROM sqlite_temp_master").fetchone()[0]
            like = connection.execute("SELECT 'A' LIKE 'a'").fetchone()[0]
            try:
                connection.execute("SELECT leaky()")
                leaky = 1
            except Exception:
                leaky = 0
            connection.execute("CREATE TABLE seen(legacy, recursive, temp, like_ci, leaky)")
            connection.execute("INSERT INTO seen VALUES (?, ?, ?, ?, ?)", (legacy, recursive, temp, like, leaky))
        def down(connection):
            connection.execute("DROP TABLE seen")
        """,
    )
    project.manager().migrate()
    assert project.query("SELECT * FROM seen") == [(0, 0, 0, 1, 0)]


# Whether a callback the migration before set is called back during a statement of this one.
CALLED_BACK = (
    "(os.path.exists('called') and os.remove('called'), connection.execute('SELECT 42'), os.path.exists('called'))[2]"
)


@pytest.mark.parametrize(
    ("sets", "observes", "clean"),
    [
        (
            "connection.create_function('leaky', 0, lambda: 7)",
            "connection.execute('SELECT leaky()').fetchone()[0]",
            None,
        ),
        (
            "connection.create_aggregate('agg', 1, type('A', (), {'step': lambda s, v: 0, 'finalize': lambda s: 7}))",
            "connection.execute('SELECT agg(1)').fetchone()[0]",
            None,
        ),
        (
            "connection.create_collation('rev', lambda a, b: (a < b) - (a > b))",
            "connection.execute(\"SELECT 'a' < 'b' COLLATE rev\").fetchone()[0]",
            None,
        ),
        ("connection.isolation_level = 'DEFERRED'", "connection.isolation_level", None),
        (
            "connection.execute('PRAGMA reverse_unordered_selects = ON')",
            "connection.execute('PRAGMA reverse_unordered_selects').fetchone()[0]",
            0,
        ),
        # Through the base class, past the methods that mark the connection: what cannot be undone
        # is seen after the step, what can is undone.
        (
            "sqlite3.Connection.create_collation(connection, 'rev', lambda a, b: (a < b) - (a > b))",
            "connection.execute(\"SELECT 'a' < 'b' COLLATE rev\").fetchone()[0]",
            None,
        ),
        ("sqlite3.Connection.isolation_level.__set__(connection, 'DEFERRED')", "connection.isolation_level", None),
        (
            "sqlite3.Connection.set_trace_callback(connection, lambda sql: open('called', 'a').write(sql))",
            CALLED_BACK,
            False,
        ),
        (
            "sqlite3.Connection.set_progress_handler(connection, lambda: (open('called', 'a').write('x'), 0)[1], 1)",
            CALLED_BACK,
            False,
        ),
        (
            "sqlite3.Connection.row_factory.__set__(connection, sqlite3.Row)",
            "type(connection.execute('SELECT 1').fetchone()).__name__",
            "tuple",
        ),
        (
            "sqlite3.Connection.text_factory.__set__(connection, bytes)",
            "connection.execute(\"SELECT 'x'\").fetchone()[0]",
            "x",
        ),
        pytest.param(
            "sqlite3.Connection.setlimit(connection, sqlite3.SQLITE_LIMIT_LENGTH, 1000)",
            "connection.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) == 1000",
            False,
            marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="setlimit() came with Python 3.11"),
        ),
        pytest.param(
            "sqlite3.Connection.autocommit.__set__(connection, False)",
            "connection.autocommit",
            getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", None),
            marks=pytest.mark.skipif(sys.version_info < (3, 12), reason="autocommit came with Python 3.12"),
        ),
    ],
    ids=[
        "function",
        "aggregate",
        "collation",
        "isolation_level",
        "pragma",
        "base collation",
        "base isolation_level",
        "base trace callback",
        "base progress handler",
        "base row_factory",
        "base text_factory",
        "base limit",
        "base autocommit",
    ],
)
def test_each_kind_of_connection_state_is_dropped_after_its_migration(
    project: Project, sets: str, observes: str, clean: object
) -> None:
    """A migration that changes its connection gets it replaced: the next one sees a fresh one."""
    project.write("001_sets.py", f"import sqlite3\n\ndef up(connection):\n    {sets}\n")
    project.write(
        "002_observes.py",
        "import os\nimport sqlite3\n\ndef up(connection):\n"
        "    try:\n"
        f"        seen = {observes}\n"
        "    except Exception:\n"
        "        seen = None\n"
        "    connection.execute('CREATE TABLE seen (x)')\n"
        "    connection.execute('INSERT INTO seen VALUES (?)', (repr(seen),))\n",
    )
    project.manager().migrate()
    assert project.query("SELECT x FROM seen") == [(repr(clean),)]
    assert project.history() == [1, 2]


def test_a_python_migration_that_changes_nothing_keeps_the_connection(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reopening after every Python migration cost a tenth of a run of many: only a changed one is."""
    from vcp_migrate import sqlite

    for version in range(1, 6):
        project.write(
            f"{version:03d}_t{version}.py",
            f"def up(connection):\n    connection.execute('CREATE TABLE t{version} (x)')\n"
            f"    connection.executemany('INSERT INTO t{version} VALUES (?)', [(1,), (2,)])\n",
        )
    opened: list[object] = []
    real = sqlite.open_database
    monkeypatch.setattr(sqlite, "open_database", lambda *a, **k: opened.append(a) or real(*a, **k))
    project.manager().migrate()
    assert project.history() == [1, 2, 3, 4, 5] and len(opened) == 1


def test_foreign_key_violation_fails_the_migration_and_names_the_table(project: Project) -> None:
    project.sql(
        "001_schema.sql",
        """
        CREATE TABLE accounts (id INTEGER PRIMARY KEY);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));
        INSERT INTO accounts VALUES (1);
        INSERT INTO orders VALUES (10, 1);
        """,
    )
    project.sql("002_orphan.sql", "DELETE FROM accounts;\nCREATE TABLE marker(x);")
    project.manager().migrate(1)
    with pytest.raises(MigrationFailed) as error:
        project.manager().migrate()
    assert "foreign key check failed: table orders row 10 references a missing row in accounts" in str(error.value)
    assert project.query("SELECT * FROM accounts") == [(1,)]
    assert "marker" not in project.tables() and project.history() == [1]


def test_rebuilding_a_parent_table_keeps_every_child_row(project: Project) -> None:
    project.sql(
        "001_schema.sql",
        """
        CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY,
                             account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE);
        INSERT INTO accounts VALUES (1, 'a'), (2, 'b');
        INSERT INTO orders VALUES (10, 1), (11, 2), (12, 2);
        """,
    )
    project.sql(
        "002_rebuild_accounts.sql",
        """
        CREATE TABLE accounts_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');
        INSERT INTO accounts_new SELECT id, name FROM accounts;
        DROP TABLE accounts;
        ALTER TABLE accounts_new RENAME TO accounts;
        """,
    )
    project.manager().migrate()
    assert project.query("SELECT id, account_id FROM orders ORDER BY id") == [(10, 1), (11, 2), (12, 2)]
    connection = sqlite3.connect(project.db)
    assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    connection.close()


def test_foreign_key_enforcement_is_off_inside_and_restored_after(project: Project) -> None:
    """On a connection with enforcement on (as an application runs), a migration that briefly
    orphans child rows succeeds, because enforcement is off inside its transaction; the final
    check finds nothing wrong, and the connection has enforcement on again afterwards."""
    from vcp_migrate import execution, loading, sqlite
    from vcp_migrate.discovery import scan

    project.sql(
        "001_parent.sql",
        "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));\n"
        "INSERT INTO p VALUES (1);\nINSERT INTO c VALUES (10, 1);",
    )
    project.sql("002_reinsert_parent.sql", "DELETE FROM p;\nINSERT INTO p VALUES (1);")
    project.manager().migrate(1)
    connection = sqlite.open_database(project.db, create=False, timeout=1)
    connection.execute("PRAGMA foreign_keys = ON")
    runner = execution.Runner(execution.Session(project.db, 1, connection))
    second = loading.load(scan(project.dir).migrations[1])
    assert runner.one(second, "up", earlier=0).error is None
    assert runner.session.connection is connection  # plain SQL: the same connection goes on
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    connection.close()
    assert project.history() == [1, 2] and project.query("SELECT * FROM c") == [(10, 1)]


def test_non_transactional_migrations_run_outside_a_transaction(project: Project) -> None:
    project.sql("001_t.sql", "CREATE TABLE t(x);")
    project.write(
        "002_wal.sql",
        "-- migrate:up transaction:false\nPRAGMA journal_mode = WAL;\nVACUUM;\n"
        "-- migrate:down transaction:false\nPRAGMA journal_mode = DELETE;\n",
    )
    project.write("003_py.py", "transactional = False\ndef up(c):\n    c.execute('VACUUM')\ndef down(c): pass\n")
    project.manager().migrate()
    assert project.query("PRAGMA journal_mode") == [("wal",)]
    assert project.history() == [1, 2, 3]
    project.manager().rollback(2)
    assert project.query("PRAGMA journal_mode") == [("delete",)]


def test_vacuum_in_a_transactional_migration_fails_cleanly(project: Project) -> None:
    project.sql("001_vacuum.sql", "CREATE TABLE t(x);\nVACUUM;")
    with pytest.raises(MigrationFailed, match="statement 2 failed: cannot VACUUM from within a transaction"):
        project.manager().migrate()
    assert project.tables() == set()


def test_failed_non_transactional_migration_says_what_stays(project: Project) -> None:
    project.write("001_x.sql", "-- migrate:up transaction:false\nCREATE TABLE t(x);\nSELECT * FROM nowhere;\n")
    with pytest.raises(MigrationFailed, match="runs outside a transaction, so what it did before failing stays"):
        project.manager().migrate()
    assert project.tables() == {"t"} and project.history() == []


def test_modified_applied_file_is_refused(project: Project) -> None:
    project.sql("001_t.sql", "CREATE TABLE t(x);", "DROP TABLE t;")
    project.manager().migrate()
    project.sql("001_t.sql", "CREATE TABLE t(x, y);", "DROP TABLE t;")
    project.sql("002_u.sql", "CREATE TABLE u(x);")
    before = project.digest()
    with pytest.raises(PlanError, match=r"001_t.sql: changed since it was applied on .*nothing was applied"):
        project.manager().migrate()
    assert project.digest() == before


def test_line_ending_change_is_not_a_modification(project: Project) -> None:
    path = project.sql("001_t.sql", "CREATE TABLE t(x);", "DROP TABLE t;")
    project.manager().migrate()
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert project.manager().migrate() == []


def test_out_of_order_is_refused_unless_allowed(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("003_c.sql", "CREATE TABLE c(x);")
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    with pytest.raises(PlanError, match="version 2 is pending but version 3 is already applied"):
        project.manager().migrate()
    assert "b" not in project.tables()
    assert [r.version for r in project.manager().migrate(allow_out_of_order=True)] == [2]
    assert project.history() == [1, 2, 3]


def test_missing_applied_file_is_a_warning_for_migrate(project: Project) -> None:
    from vcp_migrate import Observer

    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    project.manager().migrate()
    (project.dir / "001_a.sql").unlink()
    project.sql("003_c.sql", "CREATE TABLE c(x);")
    warnings: list[str] = []

    class Collect(Observer):
        def warning(self, message: str) -> None:
            warnings.append(message)

    assert [r.version for r in project.manager(observer=Collect()).migrate()] == [3]
    assert warnings == [f"version 1 (a) is applied but its file is missing from {project.dir}"]


@pytest.mark.parametrize("flags", [(), ("--dry-run",)], ids=["migrate", "dry run"])
def test_a_directory_with_none_of_the_applied_files_is_refused(project: Project, flags: tuple[str, ...]) -> None:
    elsewhere = wrong_directory(project)  # its pending 007 would otherwise be applied
    before, listing = project.digest(), sorted(p.name for p in project.root.iterdir())
    result = project.cli("migrate", "--dir", str(elsewhere), *flags)
    assert result.exit_code == 1
    assert result.stdout == "" and result.stderr == wrong_directory_error(project, elsewhere)
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == listing
    assert project.history() == [1, 2, 3] and project.tables() == {"a", "b", "c"}
    assert not (elsewhere / "schema.sql").exists()
    with pytest.raises(PlanError, match="none of the 3 migration.s. applied to .* probably the wrong migrations"):
        project.manager().__class__(project.db, elsewhere).migrate()
    assert project.digest() == before and project.history() == [1, 2, 3]


def test_directory_problems_stop_migrate(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.write("add_index.sql", "-- migrate:up\n")
    with pytest.raises(MigrationFileError, match="add_index.sql: name does not match"):
        project.manager().migrate()
    assert not project.db.exists()


def _made_without_history(project: Project) -> None:
    connection = sqlite3.connect(project.db)
    connection.execute("CREATE TABLE existing(x)")
    connection.execute("INSERT INTO existing VALUES (42)")
    connection.commit()
    connection.close()
    project.sql("001_a.sql", "CREATE TABLE IF NOT EXISTS existing(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")


def test_database_the_application_made_without_history_is_refused_naming_baseline(project: Project) -> None:
    _made_without_history(project)
    before = project.digest()
    for run in (project.manager().migrate, project.manager().dry_run_migrate):
        with pytest.raises(
            PlanError, match=r"test.db: has 1 table\(s\) \(existing\) and no migration history.*baseline"
        ):
            run()
        assert project.digest() == before
    result = project.cli("up")
    assert result.exit_code == 1 and "vcp-migrate baseline VERSION" in result.stderr
    assert "--allow-existing" in result.stderr and project.digest() == before
    assert project.cli("baseline", "1").exit_code == 0
    assert project.cli("up").exit_code == 0  # once baselined, the rest applies
    assert project.history() == [1, 2] and project.query("SELECT x FROM existing") == [(42,)]


def test_allow_existing_applies_every_migration_to_it(project: Project) -> None:
    _made_without_history(project)
    result = project.cli("up", "--allow-existing")
    assert result.exit_code == 0, result.output
    assert project.query("SELECT x FROM existing") == [(42,)]
    assert project.tables() == {"existing", "b"} and project.history() == [1, 2]


def test_allow_existing_from_the_config_and_the_api(project: Project) -> None:
    _made_without_history(project)
    assert project.manager(allow_existing=True).migrate()
    assert project.history() == [1, 2]


def test_an_emptied_database_that_vcp_migrate_made_is_not_refused(project: Project) -> None:
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a(x);\n-- migrate:down\nDROP TABLE a;\n")
    project.manager().migrate()
    project.query("CREATE TABLE kept_by_the_application(x)")
    project.manager().rollback(to=0)
    assert [run.version for run in project.manager().migrate()] == [1]


def test_no_create_refuses_a_missing_database_and_creates_nothing(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    with pytest.raises(DatabaseError, match=r"test.db: does not exist, and create=False forbids creating it"):
        project.manager(create=False).migrate()
    result = project.cli("up", "--no-create")
    assert result.exit_code == 1 and "does not exist, and --no-create forbids creating it" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not project.db.exists() and sorted(p.name for p in project.root.iterdir()) == ["migrations"]
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\ncreate = false\n")
    assert project.cli("up").exit_code == 1 and not project.db.exists()
    assert project.cli("up", "--create").exit_code == 0 and project.history() == [1]
    assert project.cli("up", "--no-create").exit_code == 0  # it exists now


def test_created_is_said_once_and_only_when_the_database_is_new(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    first = project.cli("up", "--to", "1")
    assert first.stdout.count(f"Created {project.db}") == 1
    second = project.cli("up")
    assert "Created" not in second.stdout and second.exit_code == 0


def test_migrate_and_rollback_json(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    up = project.cli("up", "--json")
    assert up.exit_code == 0, up.output
    result = json.loads(up.stdout)
    assert result["created"] is True and result["version_before"] == 0 and result["version_after"] == 2
    assert [(r["version"], r["name"], r["direction"]) for r in result["ran"]] == [(1, "a", "up"), (2, "b", "up")]
    assert all(isinstance(r["ms"], int) for r in result["ran"]) and result["backup"] is None
    assert result["error"] is None and result["database"] == str(project.db)
    down = json.loads(project.cli("rollback", "--json").stdout)
    assert down["version_before"] == 2 and down["version_after"] == 1 and not down["created"]
    assert [(r["version"], r["direction"]) for r in down["ran"]] == [(2, "down")]
    assert down["backup"]["version"] == 2 and Path(down["backup"]["file"]).exists()


def test_migrate_json_when_a_migration_fails_says_what_committed(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x); INSERT INTO nowhere VALUES (1);")
    result = project.cli("up", "--json")
    assert result.exit_code == 1 and "no such table: nowhere" in result.stderr
    report = json.loads(result.stdout)
    assert [r["version"] for r in report["ran"]] == [1] and report["version_after"] == 1
    assert "no such table: nowhere" in report["error"]
    assert project.history() == [1] and project.tables() == {"a"}


def test_migrate_json_carries_an_unexpected_error_as_the_error_line_does(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error vcp-migrate did not raise on purpose exited 1 with "error": null in the JSON."""
    from vcp_migrate import history

    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    record = history.record

    def failing(connection: object, migration: object, execution_ms: int, after: str | None = None) -> str:
        if migration.version == 2:  # type: ignore[attr-defined]
            raise RuntimeError("a defect")
        return record(connection, migration, execution_ms, after)  # type: ignore[arg-type]

    monkeypatch.setattr(history, "record", failing)
    result = project.cli("up", "--json")
    said = "unexpected RuntimeError: a defect (run again with --debug and report it)"
    assert result.exit_code == 1 and result.stderr == f"Error: {said}\n"
    report = json.loads(result.stdout)
    assert report["error"] == said and [r["version"] for r in report["ran"]] == [1] and report["version_after"] == 1
    assert project.history() == [1] and project.tables() == {"a"}  # 002 rolled back with its history row


PRINTING = """
def up(connection):
    connection.execute("CREATE TABLE b (x)")
    print("hello from up")
def down(connection):
    connection.execute("DROP TABLE b")
    print("hello from down")
"""


def test_json_holds_only_json_what_a_migration_prints_goes_to_standard_error(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_b.py", PRINTING)
    for args, said in ((("up", "--json"), "hello from up"), (("rollback", "--json", "--to", "0"), "hello from down")):
        command = [str(console_script()), *args, "--db", str(project.db), "--dir", str(project.dir), "--no-backup"]
        result = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert isinstance(json.loads(result.stdout), dict) and result.stderr == said + "\n"
    assert project.history() == [] and project.tables() == set()
    plain = project.cli("up")
    assert plain.exit_code == 0 and "hello from up" in plain.stdout  # without --json, where it always went


def test_json_with_a_dry_run_is_a_usage_error(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    assert project.cli("up").exit_code == 0
    before = project.digest()
    for args in (("up", "--dry-run", "--json"), ("up", "--sql", "--json"), ("down", "--json", "--dry-run")):
        result = project.cli(*args)
        assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
        assert "--json cannot be used with --dry-run or --sql" in result.stderr
    assert project.digest() == before and project.history() == [1]


def test_migrate_json_names_no_backup_when_the_run_deleted_it(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    assert project.cli("up").exit_code == 0
    project.sql("002_b.sql", "CREATE TABLE b(x); INSERT INTO nowhere VALUES (1);")
    before = project.digest()
    result = project.cli("up", "--json")
    assert result.exit_code == 1 and "nothing was applied" in result.stderr
    report = json.loads(result.stdout)
    assert report["ran"] == [] and report["backup"] is None  # nothing committed: the backup was deleted
    assert not any(project.root.glob("test.db.backups/*.db")) and project.digest() == before


def test_migrate_json_is_printed_when_the_database_cannot_be_read(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.db.write_bytes(b"not a database, not at all, not even close")
    before = project.digest()
    for command in ("up", "down"):
        result = project.cli(command, "--json")
        assert result.exit_code == 1 and result.stderr.count("\n") == 1
        assert "is not a SQLite database" in result.stderr
        report = json.loads(result.stdout)
        assert report["version_before"] is None and report["version_after"] is None and report["ran"] == []
        assert "is not a SQLite database" in report["error"] and "--db" in report["error"]
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


def test_foreign_history_table_is_refused(project: Project) -> None:
    connection = sqlite3.connect(project.db)
    connection.execute("CREATE TABLE vcp_migrations(id)")
    connection.commit()
    connection.close()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    before = project.digest()
    from vcp_migrate import DatabaseError

    with pytest.raises(DatabaseError, match=r"test.db: has a vcp_migrations table that vcp-migrate did not create"):
        project.manager().migrate()
    assert project.digest() == before


@pytest.mark.parametrize(
    ("setup", "name"),
    [
        ("CREATE TABLE vcp_migrations_meta(k)", "vcp_migrations_meta table"),
        ("CREATE TABLE vcp_migrations_meta(key, value)", "vcp_migrations_meta table"),
        ("CREATE VIEW vcp_migrations AS SELECT 1 AS version", "vcp_migrations view"),
        ("CREATE TABLE VCP_MIGRATIONS(x)", "VCP_MIGRATIONS table"),
    ],
    ids=["meta of other columns", "meta alone", "view", "capitals"],
)
@pytest.mark.parametrize("command", [("status",), ("up", "--allow-existing"), ("migrate",)])
def test_an_application_object_named_like_a_history_table_is_refused(
    project: Project, setup: str, name: str, command: tuple[str, ...]
) -> None:
    with closing(sqlite3.connect(project.db)) as connection:
        connection.executescript(f"CREATE TABLE app(x); {setup};")
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    before = project.digest()
    result = project.cli(*command)
    assert result.exit_code == 1
    assert result.output.endswith(
        f"Error: {project.db}: has a {name} that vcp-migrate did not create"
        f" (rename the application's {name}; nothing was changed)\n"
    )
    assert project.digest() == before and project.tables() - {"VCP_MIGRATIONS"} == {"app"}


def test_a_migration_that_makes_the_connection_query_only_is_named(project: Project) -> None:
    project.write("001_q.sql", "-- migrate:up\nPRAGMA query_only=ON;\n-- migrate:down\nSELECT 1;\n")
    project.write("002_n.sql", "-- migrate:up transaction:false\nCREATE TABLE n(x);\nPRAGMA query_only=ON;\n")
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    assert result.output.endswith(
        f"Error: {project.dir / '001_q.sql'}: it made the connection read-only (PRAGMA query_only = ON), so its history"
        " row could not be written; leave query_only as it was, or set it back to OFF at the end (nothing was"
        " applied)\n"
    )
    assert project.history() == [] and project.tables() == set()
    project.write("001_q.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    assert (
        f"Error: {project.dir / '002_n.sql'}: it made the connection read-only (PRAGMA query_only = ON)"
        in result.output
    )
    assert "outside a transaction, so what it did before failing stays" in result.output
    assert project.history() == [1] and project.tables() == {"n"}


@pytest.mark.parametrize(
    "through", ["its path", "a symbolic link", "a hard link", "a file: URI without locking", "outside a transaction"]
)
def test_a_migration_that_attaches_its_own_database_is_refused_the_attach(project: Project, through: str) -> None:
    """A second handle on the file beside our transaction: it waits for our lock, or (nolock=1)
    writes past it; either way the ATTACH is refused as SQLite prepares it, nothing changed."""
    project.sql("001_a.sql", "CREATE TABLE a(x);\nINSERT INTO a VALUES (1);")
    project.manager().migrate()
    other = project.root / "elsewhere" / "same.db"
    other.parent.mkdir()
    if through == "a symbolic link":
        other.symlink_to(project.db)
    elif through == "a hard link":
        os.link(project.db, other)
    attached = {"a symbolic link": other, "a hard link": other}.get(through, project.db)
    name = f"file:{attached}?nolock=1" if through == "a file: URI without locking" else str(attached)
    outside = " transaction:false" if through == "outside a transaction" else ""
    project.write("002_at.sql", f"-- migrate:up{outside}\nATTACH '{name}' AS again;\nDELETE FROM again.a;\n")
    before = project.digest()
    result = project.cli("migrate", "--no-backup", "--lock-timeout", "0.2")
    assert result.exit_code == 1
    assert (
        f"Error: {project.dir / '002_at.sql'}: statement 1 tried to attach the database's own file ({name}); use the"
        " database as main instead (" in result.output
    )
    assert project.history() == [1] and project.query("SELECT x FROM a") == [(1,)] and project.digest() == before


def test_a_migration_that_attaches_its_own_database_by_an_expression_is_named_at_once(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);\nINSERT INTO a VALUES (1);")
    project.write("002_at.sql", f"-- migrate:up\nATTACH '{project.db}' || '' AS again;\nDELETE FROM again.a;\n")
    result = project.cli("migrate", "--no-backup")  # the lock timeout of 30 s is not waited for
    assert result.exit_code == 1
    assert result.output.endswith(
        f"Error: {project.dir / '002_at.sql'}: statement 1 attached the database's own file (as again); use the"
        " database as main instead (it was rolled back; the 1 migration(s) before it in this run stay applied)\n"
    )
    assert project.history() == [1] and project.query("SELECT x FROM a") == [(1,)]


def test_history_from_a_newer_release_is_refused(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.manager().migrate()
    connection = sqlite3.connect(project.db)
    connection.execute("UPDATE vcp_migrations_meta SET value = '99' WHERE key = 'layout'")
    connection.commit()
    connection.close()
    from vcp_migrate import DatabaseError

    with pytest.raises(DatabaseError, match="written by a newer vcp-migrate.*upgrade vcp-migrate"):
        project.manager().status()


# -- a migration cannot end our transaction or rewrite its history row unnoticed ----------------

BYPASS_COMMIT = """
import os
import sqlite3

def up(connection):
    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)
    connection.execute("CREATE TABLE sneaky (x)")
    connection.execute("COMMIT")
    {after}

def down(connection):
    connection.execute("DROP TABLE sneaky")
"""


@pytest.mark.parametrize(
    "after", ["raise ValueError('after the commit')", "connection.execute('INSERT INTO sneaky VALUES (1)')"]
)
def test_a_migration_that_commits_past_the_guards_fails_loudly(project: Project, after: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_sneaky.py", BYPASS_COMMIT.format(after=after))
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "002_sneaky.py: " in result.output and "ended vcp-migrate's transaction itself" in result.output
    assert (
        "committed without a history row" in result.output and "'vcp-migrate validate' shows the drift" in result.output
    )
    assert "nothing was applied" not in result.output
    # What the migration committed is there, and the history says exactly what ran through us.
    assert project.history() == [1] and "sneaky" in project.tables()
    assert project.query("PRAGMA user_version") == [(1,)]
    validate = project.cli("validate")
    assert validate.exit_code == 1 and "drift" in validate.output


@pytest.mark.parametrize(
    ("body", "said", "rows"),
    [
        ("COMMIT", "at most the 1 row change(s) it made", [(1,)]),
        # What it changed in a transaction of its own that it left open is rolled back: it was
        # counted as committed.
        ("COMMIT; BEGIN; INSERT INTO sneaky VALUES (2)", "at most the 2 row change(s) it made", [(1,)]),
        ("ROLLBACK", "at most the 1 row change(s) it made", None),
    ],
    ids=["committed", "left open", "rolled back"],
)
def test_what_a_migration_that_ended_the_transaction_committed_is_said(
    project: Project, body: str, said: str, rows: list[tuple[int]] | None
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_sneaky.py",
        "import sqlite3\n\ndef up(connection):\n"
        "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
        "    connection.execute('CREATE TABLE sneaky (x)')\n"
        "    connection.execute('INSERT INTO sneaky VALUES (1)')\n"
        + "".join(f"    connection.execute({statement.strip()!r})\n" for statement in body.split(";")),
    )
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"committed itself ({said}, and any schema change) stays committed without a history row" in output
    assert ("the transaction it began and left open was rolled back" in output) == ("BEGIN" in body)
    assert project.history() == [1]
    assert (project.query("SELECT x FROM sneaky") if "sneaky" in project.tables() else None) == rows


def test_a_temp_trigger_that_deletes_the_history_row_fails_the_migration(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql(
        "002_trap.sql",
        "CREATE TABLE b (x);\n"
        "CREATE TEMP TRIGGER hide AFTER INSERT ON vcp_migrations BEGIN\n"
        "  DELETE FROM vcp_migrations WHERE version = NEW.version;\n"
        "END;",
        "DROP TABLE b;",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "002_trap.sql: it left trigger(s) on the history table (hide)" in result.output
    assert "Applied 2" not in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    project.write("002_trap.sql", "-- migrate:up\nCREATE TABLE b (x);\n-- migrate:down\nDROP TABLE b;\n")
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]


def test_a_temp_trigger_that_restores_the_row_on_rollback_fails_the_rollback(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql(
        "002_b.sql",
        "CREATE TABLE b (x);",
        "DROP TABLE b;\n"
        "CREATE TEMP TRIGGER keep AFTER DELETE ON vcp_migrations BEGIN\n"
        "  INSERT INTO vcp_migrations SELECT OLD.version, OLD.name, OLD.checksum, OLD.applied_at,"
        " OLD.execution_ms, OLD.file, OLD.source;\n"
        "END;",
    )
    project.manager().migrate()
    result = project.cli("rollback")
    assert result.exit_code == 1 and "it left trigger(s) on the history table (keep)" in result.output
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}


@pytest.mark.parametrize("temp", ["TEMP ", ""], ids=["temp trigger", "trigger in the database"])
def test_a_trigger_that_rewrites_other_history_rows_fails_the_migration(project: Project, temp: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql(
        "002_trap.sql",
        f"CREATE {temp}TRIGGER evil AFTER INSERT ON vcp_migrations BEGIN\n"
        "  DELETE FROM vcp_migrations WHERE version < NEW.version;\n"
        "END;\n"
        "CREATE TABLE two (a);",
        "DROP TABLE two;",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_trap.sql: it left trigger(s) on the history table (evil)" in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []


@pytest.mark.parametrize("options", [(), ("--atomic",), ("--dry-run",)], ids=["each", "atomic", "dry run"])
def test_a_trigger_put_on_the_history_by_hand_refuses_migrate_before_anything(
    project: Project, options: tuple[str, ...]
) -> None:
    """A trigger the run did not make is not blamed on the first migration it runs (which would
    fail before its COMMIT, told to drop a trigger it never made): the run refuses to begin."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate(target=1)
    error = trigger_on_the_history(project)
    before, files = project.digest(), sorted(project.root.iterdir())
    result = project.cli("migrate", *options)
    assert (result.exit_code, result.stderr, result.stdout) == (1, error + "\n", "")
    assert project.digest() == before and sorted(project.root.iterdir()) == files  # no backup either
    assert project.history() == [1] and project.tables() == {"a"}
    with pytest.raises(DatabaseError, match="trigger\\(s\\) that this run did not make \\(hand_trg\\)"):
        project.manager().migrate()
    trigger_on_the_history(project, drop=True)
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]


@pytest.mark.parametrize("table", ["vcp_migrations", "vcp_migrations_meta"])
def test_a_migration_that_drops_a_history_table_fails_and_is_rolled_back(project: Project, table: str) -> None:
    """The history read before the run found the tables; a migration that drops one fails whole,
    and the history is not quietly made anew with only its own row."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_drop.sql", f"CREATE TABLE b (x);\nDROP TABLE {table};", "DROP TABLE b;")
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_drop.sql" in result.output and "Traceback" not in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    assert project.query("SELECT count(*) FROM vcp_migrations_meta") == [(2,)]


def test_a_rollback_whose_history_row_is_already_gone_is_rolled_back(project: Project) -> None:
    """The row goes from under the rollback (here by a down that hides from the authorizer, as
    another run through another name could): the rollback fails whole."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_b.py",
        "import sqlite3\n\n"
        "def up(connection):\n    connection.execute('CREATE TABLE b (x)')\n\n"
        "def down(connection):\n    connection.execute('DROP TABLE b')\n"
        "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
        "    connection.execute('DELETE FROM vcp_migrations WHERE version = 2')\n",
    )
    project.manager().migrate()
    result = project.cli("rollback")
    assert result.exit_code == 1
    assert "002_b.py: its history row was already gone: another run rolled it back first" in result.output
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}


HISTORY_WRITES = {
    "another version's row deleted": ("DELETE FROM vcp_migrations WHERE version = 1;", "vcp_migrations"),
    "another version's checksum rewritten": (
        "UPDATE vcp_migrations SET checksum = 'x' WHERE version = 1;",
        "vcp_migrations",
    ),
    "a row made up": (
        "INSERT INTO vcp_migrations (version, name, checksum, applied_at, execution_ms) VALUES (9, 'n', 'c', 'a', 0);",
        "vcp_migrations",
    ),
    "the layout rewritten": ("UPDATE vcp_migrations_meta SET value = '2' WHERE key = 'layout';", "vcp_migrations_meta"),
    "through a trigger on another table": (
        "CREATE TRIGGER wipe AFTER INSERT ON log BEGIN DELETE FROM vcp_migrations; END;\nINSERT INTO log VALUES (1);",
        "vcp_migrations (INSERT, UPDATE or DELETE) through the trigger wipe",
    ),
    "a write that changes no row": ("DELETE FROM vcp_migrations WHERE version = 42;", "vcp_migrations"),
}


@pytest.mark.parametrize("case", list(HISTORY_WRITES), ids=list(HISTORY_WRITES))
@pytest.mark.parametrize("atomic", [False, True], ids=["each", "atomic"])
def test_a_migration_that_writes_the_history_fails_and_changes_nothing(
    project: Project, case: str, atomic: bool
) -> None:
    """The history must say exactly what is committed: a migration writing its rows (which would
    have a later run apply a migration again, or skip one) fails whole, whatever it changed."""
    statement, table = HISTORY_WRITES[case]
    project.sql("001_a.sql", "CREATE TABLE a (x);\nCREATE TABLE log (x);", "DROP TABLE log;\nDROP TABLE a;")
    project.manager().migrate()
    before = project.query("SELECT * FROM vcp_migrations"), project.query("SELECT * FROM vcp_migrations_meta")
    project.sql("002_b.sql", f"CREATE TABLE b (x);\n{statement}", "DROP TABLE b;")
    result = project.cli("migrate", *(["--atomic"] if atomic else []))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"002_b.sql: it writes to the history table {table}" in result.output
    assert "leave the history tables to vcp-migrate" in result.output
    assert (project.query("SELECT * FROM vcp_migrations"), project.query("SELECT * FROM vcp_migrations_meta")) == before
    assert project.tables() == {"a", "log"} and project.query("PRAGMA user_version") == [(1,)]
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]


def test_a_trigger_the_application_left_that_writes_the_history_fails_the_migration_firing_it(
    project: Project,
) -> None:
    project.sql("001_a.sql", "CREATE TABLE t (x);", "DROP TABLE t;")
    project.sql("002_b.sql", "INSERT INTO t VALUES (1);", "DELETE FROM t;")
    project.manager().migrate(target=1)
    with closing(sqlite3.connect(project.db)) as connection:  # not through vcp-migrate
        connection.execute(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM vcp_migrations WHERE version = 1; END"
        )
        connection.commit()
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert (
        "002_b.sql: it writes to the history table vcp_migrations (INSERT, UPDATE or DELETE) through the trigger tr"
        in (result.output)
    )
    assert project.history() == [1] and project.query("SELECT count(*) FROM t") == [(0,)]
    assert project.query("PRAGMA user_version") == [(1,)]


# A migration that leaves a trigger which writes the history whenever the application writes a
# table: (the migration's SQL, the trigger named, its table, the history table it writes).
HISTORY_TRIGGERS = {
    "after insert": (
        "CREATE TRIGGER tr AFTER INSERT ON log BEGIN DELETE FROM vcp_migrations; END;",
        "tr", "log", "vcp_migrations",
    ),
    "update of one column, quoted names": (
        'CREATE TRIGGER "Tr 2" BEFORE UPDATE OF y ON [log] BEGIN'
        " UPDATE \"VCP_MIGRATIONS\" SET name = 'x'; END;",
        "Tr 2", "log", "vcp_migrations",
    ),
    "delete, through a trigger of a second table it creates": (
        "CREATE TABLE audit (x);\n"
        "CREATE TRIGGER first AFTER DELETE ON log BEGIN INSERT INTO audit VALUES (old.x); END;\n"
        "CREATE TRIGGER second AFTER INSERT ON audit BEGIN"
        " INSERT INTO vcp_migrations_meta (key, value) VALUES ('k', 'v'); END;",
        "second", "audit", "vcp_migrations_meta",
    ),
    "its table renamed after": (
        "CREATE TABLE n (x);\nCREATE TRIGGER tr AFTER DELETE ON n BEGIN DELETE FROM vcp_migrations_meta; END;\n"
        "ALTER TABLE n RENAME TO renamed;",
        "tr", "renamed", "vcp_migrations_meta",
    ),
    "after a PRAGMA and a virtual table": (
        "PRAGMA user_version = 7;\nCREATE VIRTUAL TABLE docs USING fts5(body);\n"
        "CREATE TRIGGER tr AFTER INSERT ON log BEGIN DELETE FROM vcp_migrations; END;",
        "tr", "log", "vcp_migrations",
    ),
    "calling a function only the application registers (read, not compiled)": (
        "CREATE TRIGGER tr AFTER INSERT ON log BEGIN SELECT app_user();"
        " UPDATE OR REPLACE [vcp_migrations] SET name = 'x'; END;",
        "tr", "log", "vcp_migrations",
    ),
    "update of the rowid": (
        "CREATE TRIGGER tr BEFORE UPDATE OF _rowid_ ON log BEGIN UPDATE vcp_migrations SET checksum = 'x'; END;",
        "tr", "log", "vcp_migrations",
    ),
    "instead of a write to a view": (
        "CREATE VIEW v AS SELECT x FROM log;\n"
        "CREATE TRIGGER tr INSTEAD OF INSERT ON v BEGIN DELETE FROM vcp_migrations; END;",
        "tr", "v", "vcp_migrations",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HISTORY_TRIGGERS), ids=list(HISTORY_TRIGGERS))
@pytest.mark.parametrize("atomic", [False, True], ids=["each", "atomic"])
def test_a_migration_that_leaves_a_trigger_writing_the_history_fails_and_changes_nothing(
    project: Project, case: str, atomic: bool
) -> None:
    """The trigger would rewrite the history whenever the application writes its table, long
    after the run: the migration creating it fails whole, even though it fires it not."""
    statements, trigger, table, written = HISTORY_TRIGGERS[case]
    project.sql("001_a.sql", "CREATE TABLE log (x, y);", "DROP TABLE log;")
    project.manager().migrate()
    before = project.digest()
    project.sql("002_b.sql", f"CREATE TABLE b (x);\n{statements}", "DROP TABLE b;")
    result = project.cli("migrate", *(["--atomic"] if atomic else []))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert (
        f"002_b.sql: it creates the trigger {trigger} on {table}, which writes to the history table {written}"
        f" (INSERT, UPDATE or DELETE) whenever {table} is written (drop it in the migration)"
        in " ".join(result.output.split())
    )
    assert project.digest() == before and project.history() == [1]
    assert project.query("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view')") == []
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]


def test_a_python_migration_that_leaves_a_trigger_writing_the_history_fails(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE log (x);", "DROP TABLE log;")
    project.write(
        "002_b.py",
        "def up(connection):\n    connection.execute("
        "'CREATE TRIGGER tr AFTER INSERT ON log BEGIN DELETE FROM vcp_migrations; END')\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_b.py: it creates the trigger tr on log" in result.output
    assert project.history() == [1]
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []


@pytest.mark.parametrize("kind", ["sql", "py"])
def test_a_migration_outside_a_transaction_is_stopped_before_it_writes_the_history(project: Project, kind: str) -> None:
    """Nothing would undo such a write once done: SQLite is refused it as it prepares the
    statement. What the migration did before stays, as for any failure outside a transaction;
    the history is untouched and the migration stays pending."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.query("SELECT * FROM vcp_migrations"), project.query("SELECT * FROM vcp_migrations_meta")
    if kind == "sql":
        project.write(
            "002_b.sql",
            "-- migrate:up transaction:false\nCREATE TABLE b (x);\nDELETE FROM vcp_migrations;\n"
            "-- migrate:down\nDROP TABLE b;\n",
        )
    else:
        project.write(
            "002_b.py",
            "transactional = False\n\ndef up(connection):\n    connection.execute('CREATE TABLE b (x)')\n"
            "    connection.execute(\"UPDATE vcp_migrations_meta SET value = '9' WHERE key = 'layout'\")\n",
        )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    table = "vcp_migrations" if kind == "sql" else "vcp_migrations_meta"
    who = "statement 2" if kind == "sql" else "up()"
    assert (
        f"002_b.{kind}: {who} tried to write to the history table {table} (INSERT, UPDATE or DELETE); leave the"
        " history tables to vcp-migrate" in " ".join(result.output.split())
    )
    assert (project.query("SELECT * FROM vcp_migrations"), project.query("SELECT * FROM vcp_migrations_meta")) == before
    assert project.tables() == {"a", "b"} and project.history() == [1]
    assert project.cli("status").exit_code == 0


# The history table's stored definition given a foreign key to the application's table a, whose
# cascade would let the application's deletes empty the history (read at the next open).
_HISTORY_BOUND = (
    "PRAGMA writable_schema = ON;\nUPDATE sqlite_master SET sql = replace(sql, 'name TEXT NOT NULL',"
    " 'name TEXT NOT NULL REFERENCES a (x) ON DELETE CASCADE') WHERE name = 'vcp_migrations';\n"
    "PRAGMA writable_schema = OFF;\n"
)
_HISTORY_COLUMNS = (
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL,"
    " execution_ms INTEGER NOT NULL, file TEXT, source BLOB)"
)
# What else a migration could do to the history: (its file's name, its text, what the error says).
HISTORY_RESHAPED = {
    "history dropped and made again": (
        "002_b.sql",
        f"-- migrate:up\nDROP TABLE vcp_migrations;\nCREATE TABLE vcp_migrations {_HISTORY_COLUMNS};\n",
        "it dropped a history table (vcp_migrations), so it cannot be recorded",
    ),
    "history swapped for a copy": (
        "002_b.sql",
        "-- migrate:up\nALTER TABLE vcp_migrations RENAME TO old;\n"
        f"CREATE TABLE vcp_migrations {_HISTORY_COLUMNS};\nDROP TABLE old;\n",
        "it altered or renamed a history table (vcp_migrations), so it cannot be recorded",
    ),
    "created if not there, then emptied": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE IF NOT EXISTS vcp_migrations (x);\nDELETE FROM vcp_migrations;\n",
        "it created a history table (vcp_migrations), so it cannot be recorded",
    ),
    "meta dropped and made again": (
        "002_b.sql",
        "-- migrate:up\nDROP TABLE vcp_migrations_meta;\n"
        "CREATE TABLE vcp_migrations_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n",
        "it dropped a history table (vcp_migrations_meta), so it cannot be recorded",
    ),
    "a trigger written straight into the schema": (
        "002_b.sql",
        "-- migrate:up\nPRAGMA writable_schema = ON;\nINSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql)"
        " VALUES ('trigger', 'tr', 'a', 0,"
        " 'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END');\n"
        "PRAGMA writable_schema = OFF;\n",
        "it creates the trigger tr on a, which writes to the history table vcp_migrations",
    ),
    "a trigger rewritten in the schema after it was made": (
        "002_b.sql",
        "-- migrate:up\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END;\nPRAGMA writable_schema = ON;\n"
        "UPDATE sqlite_master SET sql = 'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END'"
        " WHERE name = 'tr';\nPRAGMA writable_schema = OFF;\n",
        "it creates the trigger tr on a, which writes to the history table vcp_migrations",
    ),
    "a foreign key written into its definition": (
        "002_b.sql",
        f"-- migrate:up\n{_HISTORY_BOUND}",
        "it gave the history table vcp_migrations a foreign key in the schema (writable_schema)",
    ),
    "a view named as the trigger": (
        "002_b.sql",
        "-- migrate:up\nCREATE TRIGGER evil AFTER INSERT ON a BEGIN SELECT app_fn(new.x); DELETE FROM vcp_migrations;"
        " END;\nCREATE VIEW evil AS SELECT 1 AS y;\nCREATE TRIGGER v INSTEAD OF DELETE ON evil BEGIN SELECT 1; END;\n",
        "it creates the trigger evil on a, which writes to the history table vcp_migrations",
    ),
    "a blob of the history written": (
        "002_b.py",
        "def up(connection):\n    with connection.blobopen('vcp_migrations', 'checksum', 1) as blob:\n"
        "        blob.write(b'0' * len(blob))\n",
        "up() tried to write to the table vcp_migrations through blobopen(); leave the history tables to",
    ),
    "an index on it, whose expressions run at every write": (
        "002_b.sql",
        "-- migrate:up\nCREATE INDEX vi ON vcp_migrations (json(name)) WHERE version > 2;\n",
        "it put an index on a history table (vcp_migrations), so it cannot be recorded",
    ),
    "outside a transaction, an index on it": (
        "002_b.sql",
        "-- migrate:up transaction:false\nCREATE INDEX vi ON vcp_migrations (json(name));\n",
        "statement 1 tried to put an index on a history table (vcp_migrations); leave the history tables to",
    ),
    "a blob of the schema written": (
        "002_b.py",
        "def up(connection):\n    connection.execute('CREATE TABLE aaaaaaaaaaaaaa (x)')\n"
        "    with connection.blobopen('sqlite_master', 'sql', 1) as blob:\n        blob.write(b'x')\n",
        "up() tried to write to the table sqlite_master through blobopen(); leave the history tables to"
        " vcp-migrate and the schema to SQLite",
    ),
    "outside a transaction, a trigger that writes it": (
        "002_b.sql",
        "-- migrate:up transaction:false\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END;\n",
        "statement 1 tried to create a trigger that writes to the history table vcp_migrations; leave the",
    ),
    "outside a transaction, a trigger made by executescript()": (
        "002_b.py",
        "transactional = False\n\ndef up(connection):\n    connection.executescript("
        "'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END; SELECT 1;')\n",
        "up() tried to create a trigger that writes to the history table vcp_migrations; leave the",
    ),
    "outside a transaction, a trigger made by executemany()": (
        "002_b.py",
        "transactional = False\n\ndef up(connection):\n    connection.executemany("
        "'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END', [()])\n",
        "up() tried to create a trigger that writes to the history table vcp_migrations; leave the",
    ),
    "outside a transaction, a column dropped": (
        "002_b.sql",
        "-- migrate:up transaction:false\nALTER TABLE vcp_migrations DROP COLUMN source;\n",
        "statement 1 tried to alter or rename a history table (vcp_migrations); leave the history tables to",
    ),
    "outside a transaction, a blob of the history written": (
        "002_b.py",
        "transactional = False\n\ndef up(connection):\n    with connection.blobopen('vcp_migrations', 'checksum', 1)"
        " as blob:\n        blob.write(b'0' * len(blob))\n",
        "up() tried to write to the table vcp_migrations through blobopen()",
    ),
}


@pytest.mark.parametrize("case", list(HISTORY_RESHAPED), ids=list(HISTORY_RESHAPED))
def test_a_migration_that_remakes_the_history_or_gets_past_the_authorizer_fails(project: Project, case: str) -> None:
    """Dropping or swapping a history table, or writing it where the authorizer does not look
    (the schema made writable, a blob), fails the migration: the history, the file itself, as
    before; the application writing its tables afterwards leaves the history as it was."""
    name, text, said = HISTORY_RESHAPED[case]
    if "blob" in case and sys.version_info < (3, 11):
        pytest.skip("blobopen() came with Python 3.11")
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    project.write(name, text)
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{name}: {said}" in " ".join(result.output.split()), result.output
    assert project.digest() == before
    with closing(sqlite3.connect(project.db)) as connection:  # the application, later
        connection.create_function("app_fn", 1, lambda x: x)
        connection.execute("INSERT INTO a VALUES (1)")
        connection.commit()
    assert project.history() == [1]
    assert project.cli("status").exit_code == 0


def test_a_schema_made_writable_in_one_migration_of_an_atomic_batch_is_checked_in_the_next(project: Project) -> None:
    """The setting lasts as long as the connection, which a batch keeps to its end."""
    project.sql("001_a.sql", "CREATE TABLE a (x);\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END;")
    project.manager().migrate()
    before = project.digest()
    project.sql("002_b.sql", "PRAGMA writable_schema = ON;")
    project.sql(
        "003_c.sql",
        "UPDATE sqlite_master SET sql = 'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END'"
        " WHERE name = 'tr';",
    )
    result = project.cli("migrate", "--atomic", "--no-backup")
    assert result.exit_code == 1
    assert "003_c.sql: it creates the trigger tr on a, which writes to the history table vcp_migrations" in (
        " ".join(result.output.split())
    )
    assert project.digest() == before


@pytest.mark.parametrize("kind", ["sql", "py"])
def test_an_attach_of_the_database_by_an_expression_without_locking_is_refused(project: Project, kind: str) -> None:
    """The authorizer cannot read a name given as an expression or a parameter: the databases
    attached are looked at after the statement (SQL) or the step (Python), before the COMMIT."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    trigger = "CREATE TRIGGER again.tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END"
    if kind == "sql":
        project.sql("002_b.sql", f"ATTACH 'file:' || '{project.db}' || '?nolock=1' AS again;\n{trigger};")
        said = "002_b.sql: statement 1 attached the database's own file (as again); use the database as main instead"
    else:
        project.write(
            "002_b.py",
            f"def up(connection):\n    connection.execute('ATTACH ? AS again', ('file:{project.db}?nolock=1',))\n"
            f"    connection.execute('{trigger}')\n",
        )
        said = "002_b.py: it attached the database's own file (as again); use the database as main instead"
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    assert said in " ".join(result.output.split())
    assert project.digest() == before


@pytest.mark.parametrize("kind", ["sql", "py"])
def test_an_attach_by_an_expression_of_a_database_named_by_bytes_not_utf8_is_refused(
    project: Project, kind: str
) -> None:
    """The databases attached are listed with their files' paths as bytes: read as text, a path
    that is not UTF-8 failed the check with "Could not decode to UTF-8 column 'file'"."""
    from vcp_migrate import MigrationManager

    database = os.fsencode(project.root) + b"/caf\xe9.db"
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert [run.version for run in MigrationManager(database, project.dir).migrate()] == [1]
    with open(database, "rb") as file:
        before = file.read()
    if kind == "sql":  # no SQL text can spell the path: it is an expression, which no authorizer reads
        project.sql("002_b.sql", f"ATTACH CAST(X'{database.hex()}' AS TEXT) AS again;\nDELETE FROM again.a;")
        said = "statement 1 attached the database's own file (as again); use the database as main instead"
    else:
        up = f"def up(connection):\n    connection.execute('ATTACH ? AS again', ({database!r},))\n"
        project.write("002_b.py", up)
        said = "it attached the database's own file (as again); use the database as main instead"
    with pytest.raises(MigrationFailed, match=re.escape(said)):
        MigrationManager(database, project.dir, backup=False).migrate()
    with open(database, "rb") as file:
        assert file.read() == before
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]


@pytest.mark.parametrize("how", ["another connection", "backup()"])
def test_a_migration_outside_a_transaction_that_changes_the_history_past_the_fence_fails(
    project: Project, how: str
) -> None:
    """No authorizer sees a second connection, or a backup written over the database: the history
    is read before and after the step. What it did stays (outside a transaction); the run says
    so, records nothing, and keeps the backup taken before it."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    if how == "another connection":
        write = (
            "    other = sqlite3.connect(connection.execute('PRAGMA database_list').fetchone()[2])\n"
            "    other.execute('DELETE FROM vcp_migrations WHERE version = 1')\n    other.commit()\n    other.close()\n"
        )
    else:
        write = "    empty = sqlite3.connect(':memory:')\n    empty.backup(connection)\n"
    project.write("002_b.py", f"import sqlite3\n\ntransactional = False\n\ndef up(connection):\n{write}")
    result = project.cli("migrate")
    assert result.exit_code == 1, result.output
    assert "002_b.py: the history tables' rows changed while it ran" in " ".join(result.output.split())
    assert "restore the backup taken before this run" in " ".join(result.output.split())
    assert 2 not in project.history()


def test_a_foreign_key_written_into_the_history_outside_a_transaction_is_named(project: Project) -> None:
    """Outside a transaction the schema's rewrite stays: the run names it, records nothing, and
    says to undo it or restore the backup (not to run it again)."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_b.sql",
        f"-- migrate:up transaction:false\n{_HISTORY_BOUND}",
    )
    result = project.cli("migrate")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "002_b.sql: it gave the history table vcp_migrations a foreign key in the schema" in said
    assert "undo what is named by hand, or restore the backup taken before this run" in said
    assert "run again" not in said
    assert project.history() == [1]


def test_a_migration_outside_a_transaction_that_fails_after_leaving_such_a_trigger_names_it(project: Project) -> None:
    """A cursor's execute() gets past the check of statements: the trigger is created, and stays
    (outside a transaction); the failure names it, so that it can be dropped."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_b.py",
        "transactional = False\n\ndef up(connection):\n    connection.cursor().execute("
        "'CREATE TRIGGER tr AFTER INSERT ON a BEGIN DELETE FROM vcp_migrations; END')\n"
        "    raise ValueError('later')\n",
    )
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    assert (
        "002_b.py: up() failed at line 5: ValueError: later; and it creates the trigger tr on a, which writes to the"
        " history table vcp_migrations" in " ".join(result.output.split())
    )
    assert project.history() == [1]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="setconfig() came with Python 3.12")
@pytest.mark.parametrize("setconfig", ["connection.setconfig(", "sqlite3.Connection.setconfig(connection, "])
def test_a_schema_made_writable_by_setconfig_has_every_trigger_read(project: Project, setconfig: str) -> None:
    """Through the base class too: the option is read after the step."""
    project.sql("001_a.sql", "CREATE TABLE a (x);\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN SELECT 1; END;")
    project.manager().migrate()
    before = project.digest()
    project.write(
        "002_b.py",
        "import sqlite3\n\ndef up(connection):\n"
        f"    {setconfig}sqlite3.SQLITE_DBCONFIG_WRITABLE_SCHEMA, True)\n"
        "    connection.execute(\"UPDATE sqlite_master SET sql = 'CREATE TRIGGER tr AFTER INSERT ON a BEGIN"
        " DELETE FROM vcp_migrations; END' WHERE name = 'tr'\")\n",
    )
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1 and "002_b.py: it creates the trigger tr on a" in " ".join(result.output.split())
    assert project.digest() == before


def test_triggers_that_only_read_the_history_or_are_dropped_again_are_accepted(project: Project) -> None:
    """Only a trigger the migration leaves, and that writes the history, is refused; one that an
    application had left on another table is not the migration's doing, and one that cannot be
    compiled before the application registers its function is read, not refused."""
    project.sql("001_a.sql", "CREATE TABLE log (x);\nCREATE TABLE audit (x);", "DROP TABLE audit;\nDROP TABLE log;")
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TRIGGER old AFTER INSERT ON audit BEGIN DELETE FROM vcp_migrations WHERE 0; END")
        connection.commit()
    project.sql(
        "002_b.sql",
        "CREATE TRIGGER reads AFTER INSERT ON log WHEN (SELECT count(*) FROM vcp_migrations) > 0"
        " BEGIN INSERT INTO audit SELECT max(version) FROM vcp_migrations; END;\n"
        "CREATE TRIGGER gone AFTER DELETE ON log BEGIN DELETE FROM vcp_migrations; END;\n"
        "DROP TRIGGER gone;\n"
        "CREATE VIEW masked AS SELECT x, app_mask(x) AS m FROM log;\n"
        "CREATE TRIGGER masked_set INSTEAD OF UPDATE OF x ON masked BEGIN"
        " UPDATE log SET x = app_mask(new.x) WHERE x = old.x; SELECT * FROM vcp_migrations; END;",
        "DROP TRIGGER masked_set;\nDROP VIEW masked;\nDROP TRIGGER reads;",
    )
    result = project.cli("migrate")
    assert result.exit_code == 0, result.output
    assert project.history() == [1, 2]
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name") == [
        ("masked_set",),
        ("old",),
        ("reads",),
    ]


def test_a_python_migration_that_writes_the_history_fails(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write(
        "002_b.py",
        "def up(connection):\n    connection.execute('CREATE TABLE b (x)')\n"
        "    connection.execute(\"UPDATE vcp_migrations SET name = 'renamed'\")\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_b.py: it writes to the history table vcp_migrations" in result.output
    assert project.query("SELECT version, name FROM vcp_migrations") == [(1, "a")]
    assert project.tables() == {"a"}


def test_a_down_that_writes_the_history_fails_and_stays_applied(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;\nDELETE FROM vcp_migrations WHERE version = 1;")
    project.manager().migrate()
    result = project.cli("rollback")
    assert result.exit_code == 1 and "002_b.sql: it writes to the history table vcp_migrations" in result.output
    assert "its down was undone whole: it is still applied" in result.output
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}
    assert project.query("PRAGMA user_version") == [(2,)]


@pytest.mark.parametrize(
    "raised",
    ["GeneratorExit()", "type('Custom', (BaseException,), {})('custom base exception')"],
    ids=["GeneratorExit", "custom BaseException"],
)
def test_a_base_exception_from_a_migration_is_its_failure_without_a_traceback(project: Project, raised: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_b.py",
        f"def up(connection):\n    connection.execute('CREATE TABLE b (x)')\n    raise {raised}\n\n"
        "def down(connection):\n    connection.execute('DROP TABLE b')\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    name = "GeneratorExit" if "Generator" in raised else "Custom: custom base exception"
    assert f"002_b.py: up() failed at line 3: {name}" in result.output
    assert project.history() == [1] and project.tables() == {"a"}


def test_a_second_connection_of_the_migration_that_waits_names_the_migration(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_own.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        "    connection.execute('CREATE TABLE b (x)')\n"
        "    own = sqlite3.connect(connection.execute('PRAGMA database_list').fetchone()[2], timeout=0.1)\n"
        "    own.execute('INSERT INTO a VALUES (1)')\n"
        "    own.commit()\n\n"
        "def down(connection):\n    connection.execute('DROP TABLE b')\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "002_own.py: up() failed: database is locked; a migration that opens its own connection" in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    assert project.query("SELECT count(*) FROM a") == [(0,)]


def test_a_base_exception_while_loading_a_migration_is_a_file_error(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_b.py", "raise GeneratorExit('at import')\n\ndef up(connection):\n    pass\n")
    result = project.cli("migrate")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "002_b.py: loading failed at line 1: GeneratorExit: at import" in result.output
    assert project.history() == [] and not project.db.exists()


# -- the checks before each COMMIT cost what the migration touched, and still catch everything -----
# From the second migration of a run on, the connection's authorizer tells the checks what a
# migration did (see vcp_migrate/watching.py); each case below is a later migration of one run, so
# the cheap path is the one under test, and each fails without the signal it relies on.

SCHEMA = (
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, code TEXT);\n"
    "CREATE UNIQUE INDEX accounts_code ON accounts(code);\n"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));\n"
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, account_code TEXT REFERENCES accounts(code));\n"
    "CREATE TABLE invoices (id INTEGER PRIMARY KEY, ledger_id INTEGER REFERENCES ledgers(key));\n"
    "INSERT INTO accounts VALUES (1, 'a1');\nINSERT INTO orders VALUES (10, 1);\n"
    "INSERT INTO notes VALUES (20, 'a1');\nINSERT INTO invoices VALUES (30, NULL);"
)
PYTHON_TRIGGER = (
    "def up(connection):\n"
    "    connection.execute('CREATE TABLE b (x)')\n"
    "    connection.execute('CREATE TRIGGER evil AFTER INSERT ON vcp_migrations BEGIN"
    " DELETE FROM vcp_migrations WHERE version < NEW.version; END')\n"
)
SWAPPED_AUTHORIZER = (
    "import sqlite3\n\n"
    "def up(connection):\n"
    "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
    "    connection.execute('CREATE TRIGGER evil AFTER INSERT ON vcp_migrations BEGIN"
    " DELETE FROM vcp_migrations WHERE version < NEW.version; END')\n"
)
LATER_IN_A_RUN = {
    "trigger on the history table (SQL)": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE b (x);\nCREATE TRIGGER evil AFTER INSERT ON vcp_migrations BEGIN\n"
        "  DELETE FROM vcp_migrations WHERE version < NEW.version;\nEND;\n",
        "it left trigger(s) on the history table (evil)",
    ),
    "trigger on the history table (Python)": ("002_b.py", PYTHON_TRIGGER, "it left trigger(s) on the history table"),
    "trigger on its meta table": (
        "002_b.sql",
        "-- migrate:up\nCREATE TRIGGER meta AFTER UPDATE ON vcp_migrations_meta BEGIN SELECT 1; END;\n",
        "it left trigger(s) on the history table (meta)",
    ),
    "trigger made past a swapped authorizer": ("002_b.py", SWAPPED_AUTHORIZER, "it left trigger(s)"),
    "meta table dropped": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE b (x);\nDROP TABLE vcp_migrations_meta;\n",
        "it dropped a history table (vcp_migrations_meta), so it cannot be recorded",
    ),
    "meta table renamed": (
        "002_b.sql",
        "-- migrate:up\nALTER TABLE vcp_migrations_meta RENAME TO old_meta;\n",
        "it altered or renamed a history table (vcp_migrations_meta), so it cannot be recorded",
    ),
    "history table renamed": (
        "002_b.sql",
        "-- migrate:up\nALTER TABLE vcp_migrations RENAME TO old_history;\n",
        "it altered or renamed a history table (vcp_migrations), so it cannot be recorded",
    ),
    "orphan child row (SQL)": (
        "002_b.sql",
        "-- migrate:up\nINSERT INTO orders VALUES (11, 99);\n",
        "table orders row 11 references a missing row in accounts",
    ),
    "orphan child row (Python)": (
        "002_b.py",
        "def up(connection):\n    connection.execute('INSERT INTO orders VALUES (11, 99)')\n",
        "table orders row 11 references a missing row in accounts",
    ),
    "parent row deleted": (
        "002_b.sql",
        "-- migrate:up\nDELETE FROM accounts;\n",
        "table orders row 10 references a missing row in accounts",
    ),
    "parent key updated": (
        "002_b.sql",
        "-- migrate:up\nUPDATE accounts SET code = 'a2';\n",
        "table notes row 20 references a missing row in accounts",
    ),
    "parent table dropped": (
        "002_b.sql",
        "-- migrate:up\nDROP TABLE accounts;\n",
        "table orders row 10 references a missing row in accounts",
    ),
    "child table made from another's rows": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE orders2 (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));\n"
        "INSERT INTO orders2 SELECT id, account_id + 1 FROM orders;\n",
        "table orders2 row 10 references a missing row in accounts",
    ),
    "the index a child's key needs dropped": (
        "002_b.sql",
        "-- migrate:up\nDROP INDEX accounts_code;\n",
        'foreign key mismatch - "notes" referencing "accounts"',
    ),
    "a parent made without the key its child needs": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE ledgers (id INTEGER PRIMARY KEY, key TEXT);\n",
        'foreign key mismatch - "invoices" referencing "ledgers"',
    ),
    "trigger on the history table named in capitals": (
        "002_b.sql",
        "-- migrate:up\nCREATE TABLE b (x);\nCREATE TRIGGER evil AFTER INSERT ON VCP_MIGRATIONS BEGIN\n"
        "  DELETE FROM vcp_migrations WHERE version < NEW.version;\nEND;\n",
        "it left trigger(s) on the history table (evil)",
    ),
    "child key rewritten through a blob (Python)": (
        "002_b.py",
        "def up(connection):\n"
        "    with connection.blobopen('notes', 'account_code', 20) as blob:\n"
        "        blob.write(b'zz')\n",
        "table notes row 20 references a missing row in accounts",
    ),
}


@pytest.mark.parametrize("case", list(LATER_IN_A_RUN), ids=list(LATER_IN_A_RUN))
@pytest.mark.parametrize("atomic", [False, True], ids=["each", "atomic"])
def test_a_later_migration_of_a_run_is_checked_as_the_first(project: Project, case: str, atomic: bool) -> None:
    if "blob" in case and not hasattr(sqlite3.Connection, "blobopen"):
        pytest.skip("blobopen() exists from Python 3.11")
    name, text, message = LATER_IN_A_RUN[case]
    project.sql("001_schema.sql", SCHEMA)
    project.write(name, text)
    result = project.cli("migrate", *(["--atomic"] if atomic else []))
    assert result.exit_code == 1 and "Traceback" not in result.output
    # In a batch on a new database, the history tables made by its first migration are looked up again
    # before the second one's row, and one dropped or renamed is found there first: refused all the same.
    assert message in result.output or (atomic and "did not create" in result.output and "history table" in message)
    if "references a missing row" in message:  # the order of the violations named is SQLite's or the tables'
        assert "foreign key check failed: table " in result.output
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []
    if atomic:  # the batch, and with it the history tables, left nothing
        assert project.history() == [] and project.tables() == set()
    else:
        assert project.history() == [1] and project.query("SELECT count(*) FROM vcp_migrations_meta") == [(2,)]
        assert project.tables() == {"accounts", "orders", "notes", "invoices"}
        assert project.query("SELECT * FROM accounts") == [(1, "a1")]
        assert project.query("SELECT * FROM orders") == [(10, 1)]
        assert project.query("SELECT name FROM sqlite_master WHERE name = 'accounts_code'") == [("accounts_code",)]


def test_a_trigger_on_the_history_table_named_in_capitals_is_refused_first_in_a_run(project: Project) -> None:
    """SQLite stores a trigger's table as the CREATE TRIGGER spelled it: the lookup of triggers on
    the history tables must ignore case as SQLite's names do, or the trigger is committed and
    rewrites the history at the next run."""
    project.sql("001_a.sql", "CREATE TABLE a (x);")
    assert project.cli("migrate").exit_code == 0
    project.sql(
        "002_b.sql",
        "CREATE TABLE b (x);\nCREATE TEMP TRIGGER evil AFTER INSERT ON main.Vcp_Migrations BEGIN\n"
        "  DELETE FROM vcp_migrations WHERE version < NEW.version;\nEND;\n"
        "CREATE TRIGGER evil2 AFTER INSERT ON VCP_MIGRATIONS BEGIN SELECT 1; END;",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "it left trigger(s) on the history table (evil, evil2)" in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    assert project.query("SELECT name FROM sqlite_master WHERE type = 'trigger'") == []


def test_tables_whose_names_differ_only_in_a_non_ascii_letter_are_checked_apart(project: Project) -> None:
    """SQLite folds only ASCII letters in names: "\u00c4rzte" and "\u00e4rzte" are two tables, which the
    cheap foreign key check must not take for one (checking the other, it missed this violation)."""
    project.sql(
        "001_schema.sql",
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY);\nINSERT INTO accounts VALUES (1);\n"
        'CREATE TABLE "\u00e4rzte" (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));\n'
        'CREATE TABLE "\u00c4rzte" (id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id));',
    )
    project.sql("002_b.sql", 'INSERT INTO "\u00c4rzte" VALUES (7, 99);')
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "foreign key check failed: table \u00c4rzte row 7 references a missing row in accounts" in result.output
    assert project.history() == [1] and project.query('SELECT * FROM "\u00c4rzte"') == []
    assert project.query("PRAGMA foreign_key_check") == []


@pytest.mark.skipif(not hasattr(sqlite3.Connection, "deserialize"), reason="deserialize() exists from Python 3.11")
def test_a_migration_that_replaces_the_database_with_deserialize_is_refused(project: Project) -> None:
    """deserialize() swaps the file for a copy in memory inside the transaction: the migration and
    its history row were then committed to that copy, and the run said it was applied."""
    project.sql("001_a.sql", "CREATE TABLE a (x);")
    project.write(
        "002_b.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        "    copy = sqlite3.connect(':memory:', isolation_level=None)\n"
        "    copy.deserialize(connection.serialize())\n"
        "    copy.execute('CREATE TABLE b (x)')\n"
        "    connection.deserialize(copy.serialize())\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_b.py: up() tried to call deserialize()" in result.output
    assert "Applied 2" not in result.output
    assert project.history() == [1] and project.tables() == {"a"}
    assert project.cli("migrate").exit_code == 1 and project.history() == [1]


def test_a_run_of_harmless_migrations_after_a_schema_with_foreign_keys_applies(project: Project) -> None:
    project.sql("001_schema.sql", SCHEMA)
    project.sql("002_more.sql", "CREATE TABLE ledgers (key TEXT PRIMARY KEY);\nINSERT INTO orders VALUES (11, 1);")
    project.sql(
        "003_more.sql",
        "DROP TABLE invoices;\nCREATE TABLE c (x REFERENCES orders(id));",
        "DROP TABLE c;\nCREATE TABLE invoices (id INTEGER PRIMARY KEY, ledger_id INTEGER REFERENCES ledgers(key));",
    )
    project.write(
        "004_more.py",
        "def up(connection):\n    connection.execute('INSERT INTO c VALUES (10)')\n\n"
        "def down(connection):\n    connection.execute('DELETE FROM c')\n",
    )
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2, 3, 4]
    assert project.query("PRAGMA foreign_key_check") == [] and project.query("PRAGMA user_version") == [(4,)]
    assert project.cli("rollback", "--steps", "2").exit_code == 0 and project.history() == [1, 2]
    assert project.query("PRAGMA user_version") == [(2,)] and "invoices" in project.tables()


def test_a_drop_that_failed_inside_python_keeps_the_table_checked(project: Project) -> None:
    """The authorizer sees a DROP when it is prepared, not whether it ran: a child table whose DROP
    failed (and was caught) must still be checked when its parent loses a row."""
    project.sql("001_schema.sql", SCHEMA)
    project.sql("002_b.sql", "CREATE TABLE b (x);")
    project.write(
        "003_c.py",
        "def up(connection):\n"
        "    connection.execute('INSERT INTO orders VALUES (11, 1)')\n"
        "    reading = connection.execute('SELECT * FROM orders')\n"
        "    reading.fetchone()\n"
        "    try:\n"
        "        connection.execute('DROP TABLE orders')\n"
        "    except Exception as refused:  # a statement still reads it\n"
        "        assert 'locked' in str(refused)\n"
        "    else:\n"
        "        raise AssertionError('dropped')\n"
        "    reading.close()\n"
        "    connection.execute('DELETE FROM accounts')\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "table orders row 10 references a missing row in accounts" in result.output
    assert project.history() == [1, 2] and project.query("SELECT * FROM accounts") == [(1, "a1")]


def test_a_temp_table_named_like_the_history_does_not_take_its_row(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql(
        "002_b.sql",
        "CREATE TABLE b (x);\nCREATE TEMP TABLE vcp_migrations (version INTEGER PRIMARY KEY, name TEXT, checksum TEXT,"
        " applied_at TEXT, execution_ms INTEGER, file TEXT, source BLOB);",
        "DROP TABLE b;",
    )
    assert project.cli("migrate").exit_code == 0
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}
    assert project.query("PRAGMA user_version") == [(2,)]
    assert project.cli("rollback").exit_code == 0 and project.history() == [1] and project.tables() == {"a"}


@pytest.mark.parametrize("first", [True, False], ids=["first statement", "after a schema change"])
def test_a_migration_that_runs_our_own_commit_is_refused(project: Project, first: bool) -> None:
    """Python caches prepared statements by their text, and a cached statement is not authorized
    again: a migration running our COMMIT's exact text reused the one the previous migration's
    commit left, and committed. Each step now installs a new authorizer, which expires them all."""
    from vcp_migrate.transactions import COMMIT

    create = "    connection.execute('CREATE TABLE b (x)')\n"
    commit = f"    connection.execute({COMMIT!r})\n"
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_b.py", "def up(connection):\n" + (commit + create if first else create + commit))
    result = project.cli("migrate")
    assert result.exit_code == 1 and "002_b.py: up() tried to run COMMIT" in result.output
    assert "committed without a history row" not in result.output
    assert project.history() == [1] and project.tables() == {"a"}


def test_the_connection_is_replaced_after_a_migration_swapped_its_authorizer(project: Project) -> None:
    """Without our authorizer nothing marks the connection's state: the next migration's PRAGMA
    would carry into the one after it."""
    project.sql("001_a.sql", "CREATE TABLE a (x);")
    # an authorizer that allows everything (None, which removes it, exists from Python 3.11 only)
    swap = "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
    project.write("002_swap.py", "import sqlite3\n\ndef up(connection):\n" + swap)
    project.sql("003_legacy.sql", "PRAGMA legacy_alter_table = ON;")
    project.write(
        "004_seen.py",
        "def up(connection):\n    seen = connection.execute('PRAGMA legacy_alter_table').fetchone()[0]\n"
        "    connection.execute('CREATE TABLE seen (x)')\n"
        "    connection.execute('INSERT INTO seen VALUES (?)', (seen,))\n",
    )
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2, 3, 4]
    assert project.query("SELECT x FROM seen") == [(0,)]


def _runner(project: Project) -> tuple[object, list[object]]:
    from vcp_migrate import discovery, loading
    from vcp_migrate.execution import Runner
    from vcp_migrate.session import Session

    files = list(discovery.scan(project.dir).migrations)
    return Runner(Session(project.db, 5.0)), list(loading.load_plan(files, "up"))


@pytest.mark.parametrize(
    ("outsider", "message"),
    [
        (
            "CREATE TRIGGER evil AFTER INSERT ON vcp_migrations BEGIN SELECT 1; END",
            "it left trigger(s) on the history table (evil)",
        ),
        ("INSERT INTO orders VALUES (11, 99)", "foreign key check failed: table orders row 11"),
    ],
    ids=["trigger on the history table", "orphan child row"],
)
def test_what_another_connection_commits_between_two_migrations_is_checked(
    project: Project, outsider: str, message: str
) -> None:
    """The cheap checks rely on nothing having changed but what the run watched: a commit by any
    other connection (PRAGMA data_version) sends the next migration back to the full checks."""
    from vcp_migrate.execution import Runner

    project.sql("001_schema.sql", SCHEMA)
    project.sql("002_b.sql", "CREATE TABLE b (x);")
    project.sql("003_c.sql", "CREATE TABLE c (x);")
    runner, (first, second, third) = _runner(project)
    assert isinstance(runner, Runner)
    try:
        assert runner.one(first, "up", earlier=0).error is None  # type: ignore[arg-type]
        assert runner.one(second, "up", earlier=1).error is None  # type: ignore[arg-type]
        with closing(sqlite3.connect(project.db, isolation_level=None)) as other:
            other.execute(outsider)
        outcome = runner.one(third, "up", earlier=2)  # type: ignore[arg-type]
    finally:
        runner.session.close()
    assert outcome.error is not None and message in str(outcome.error)
    assert project.history() == [1, 2] and "c" not in project.tables()


# -- atomic batches, PRAGMA user_version, history tables of the first release ---------------------


def test_atomic_batch_leaves_nothing_when_its_last_migration_fails(project: Project) -> None:
    three(project)
    project.sql("004_bad.sql", "CREATE TABLE d(x);\nINSERT INTO nowhere VALUES (1);")
    result = project.cli("migrate", "--atomic")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {project.dir / '004_bad.sql'}: statement 2 failed: no such table: nowhere"
        " (the whole batch was rolled back; nothing was changed)"
    )
    assert project.tables() == set() and project.history() == []
    project.sql("004_bad.sql", "CREATE TABLE d(x);")
    assert [r.version for r in project.manager().migrate(atomic=True)] == [1, 2, 3, 4]
    assert project.history() == [1, 2, 3, 4] and project.tables() == {"a", "b", "c", "d"}


def test_atomic_refuses_non_transactional_up_front(project: Project) -> None:
    three(project)
    project.write("004_vacuum.sql", "-- migrate:up transaction:false\nVACUUM;\n-- migrate:down\n")
    with pytest.raises(PlanError, match=r"004_vacuum.sql: is not transactional, so it cannot run in an atomic batch"):
        project.manager().migrate(atomic=True)
    assert not project.db.exists()


def test_user_version_follows_the_highest_applied_version(project: Project) -> None:
    three(project)
    project.manager().migrate()
    assert project.query("PRAGMA user_version") == [(3,)]
    project.manager().rollback(2)
    assert project.query("PRAGMA user_version") == [(1,)]
    project.manager().rollback(to=0)
    assert project.query("PRAGMA user_version") == [(0,)]


def test_user_version_can_be_left_alone(project: Project) -> None:
    three(project)
    connection = sqlite3.connect(project.db)
    connection.execute("PRAGMA user_version = 77")
    connection.close()
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\nuser_version = false\n")
    assert project.cli("migrate").exit_code == 0
    assert project.query("PRAGMA user_version") == [(77,)]


def test_versions_beyond_32_bits_leave_user_version_with_a_warning(project: Project) -> None:
    project.sql("20261124120000_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    result = project.cli("migrate")
    assert result.exit_code == 0
    assert "do not fit PRAGMA user_version" in result.stderr
    assert project.query("PRAGMA user_version") == [(0,)]


def test_history_from_the_first_release_is_upgraded_in_place(project: Project) -> None:
    three(project)
    connection = sqlite3.connect(project.db)
    connection.executescript(
        """
        CREATE TABLE a(x);
        CREATE TABLE vcp_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
                                     applied_at TEXT NOT NULL, execution_ms INTEGER NOT NULL);
        CREATE TABLE vcp_migrations_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO vcp_migrations_meta VALUES ('layout', '1');
        """
    )
    checksum = project.manager().status()[0]["checksum"]
    connection.execute("INSERT INTO vcp_migrations VALUES (1, 'a', ?, '2026-01-01T00:00:00.000Z', 3)", (checksum,))
    connection.commit()
    connection.close()
    assert [row["state"] for row in project.manager().status()] == ["applied", "pending", "pending"]
    assert [r.version for r in project.manager().migrate()] == [2, 3]
    assert project.query("SELECT value FROM vcp_migrations_meta WHERE key = 'layout'") == [("2",)]
    assert project.query("SELECT version, file, source IS NULL FROM vcp_migrations") == [
        (1, None, 1),
        (2, "002_b.sql", 0),
        (3, "003_c.sql", 0),
    ]
    (project.dir / "001_a.sql").unlink()
    with pytest.raises(PlanError, match="has no source in the history"):
        project.manager().rollback(to=0, from_history=True)
    assert project.history() == [1, 2, 3]


def an_account(project: Project) -> None:
    """Version 1 applied: one account with a balance of 10,000."""
    project.sql(
        "001_a.sql",
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER);\nINSERT INTO acct VALUES (1, 10000);",
        "DROP TABLE acct;",
    )
    project.manager().migrate()


def test_a_migration_that_commits_then_begins_again_is_caught(project: Project) -> None:
    an_account(project)
    project.write(
        "002_evil.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        "    connection.execute('UPDATE acct SET bal = bal / 100')\n"
        "    sqlite3.Connection.set_authorizer(connection, lambda *args: sqlite3.SQLITE_OK)\n"
        "    connection.execute('COMMIT')\n"
        "    connection.execute('BEGIN')\n"
        "    raise RuntimeError('boom')\n\n"
        "def down(connection):\n    pass\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "after it had ended vcp-migrate's transaction itself" in result.output
    assert "committed without a history row" in result.output and "nothing was applied" not in result.output
    assert project.query("SELECT bal FROM acct") == [(100,)] and project.history() == [1]
    backups = list((project.root / "test.db.backups").iterdir())
    assert len(backups) == 1  # kept: the database changed


def test_a_non_transactional_migration_that_leaves_a_transaction_open_keeps_the_backup(project: Project) -> None:
    an_account(project)
    project.write(
        "002_nt.sql",
        "-- migrate:up transaction:false\nUPDATE acct SET bal = bal / 100;\nBEGIN;\nINSERT INTO acct VALUES (2, 1);\n"
        "-- migrate:down transaction:false\nSELECT 1;\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert "002_nt.sql: it left a transaction open" in result.output
    assert project.query("SELECT bal FROM acct ORDER BY id") == [(100,)] and project.history() == [1]
    backups = list((project.root / "test.db.backups").iterdir())
    assert len(backups) == 1 and "kept" in result.output


@pytest.mark.parametrize("failing", [False, True], ids=["ends", "fails"])
def test_a_non_transactional_migration_that_leaves_its_transaction_open_says_it_was_rolled_back(
    project: Project, failing: bool
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    then = "SELECT * FROM nowhere;\n" if failing else ""
    project.write(
        "002_p.sql", f"-- migrate:up transaction:false\nCREATE TABLE t(x);\nBEGIN;\nCREATE TABLE u(x);\n{then}"
    )
    result = project.cli("migrate", "--no-backup")
    assert result.exit_code == 1
    what = (
        "statement 4 failed: no such table: nowhere"
        if failing
        else "it left a transaction open (a BEGIN without its COMMIT); a migration that runs outside a transaction"
        " must end the transactions it begins"
    )
    assert result.output.endswith(
        f"Error: {project.dir / '002_p.sql'}: {what} (it runs outside a transaction: the transaction it began and"
        " did not end was rolled back, what it had committed before stays; make it idempotent and run again; the 1"
        " migration(s) before it in this run stay applied)\n"
    )
    assert project.tables() == {"a", "t"} and project.history() == [1]


def test_a_link_repointed_during_the_run_does_not_move_the_run_to_another_database(project: Project) -> None:
    from vcp_migrate import MigrationManager

    real, other, link = project.root / "a.db", project.root / "b.db", project.root / "current.db"
    sqlite3.connect(other).execute("CREATE TABLE untouched (x)").connection.close()
    link.symlink_to(real.name)
    project.sql("001_a.sql", "CREATE TABLE one (x);", "DROP TABLE one;")
    project.write(
        "002_flip.py",
        "import os\n\n"
        "def up(connection):\n"
        "    os.symlink('b.db', 'flipped.db')\n"
        "    os.replace('flipped.db', 'current.db')  # a deploy flips the link while we run\n\n"
        "def down(connection):\n    pass\n",
    )
    project.sql("003_c.sql", "CREATE TABLE three (x);", "DROP TABLE three;")
    runs = MigrationManager(link, project.dir, backup=False).migrate()
    assert [run.version for run in runs] == [1, 2, 3]
    with closing(sqlite3.connect(real)) as connection:
        assert [row[0] for row in connection.execute("SELECT version FROM vcp_migrations")] == [1, 2, 3]
    with closing(sqlite3.connect(other)) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert names == {"untouched"}


NOOP_IMPORTS = """
import sys
import time
import warnings
from vcp_migrate.cli import main

try:
    main(["up", "--db", sys.argv[1], "--dir", sys.argv[2]])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith(("vcp_migrate", "rich")))), file=sys.stderr)
"""


def test_a_no_op_up_loads_nothing_it_does_not_use(project: Project) -> None:
    """The most frequent deploy-time call: nothing to apply; it reads the files and the history,
    takes the run lock, and loads no migration code, runner, backups, checks or Rich."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_b.py", "def up(connection):\n    connection.execute('CREATE TABLE b (x)')\n")
    project.manager().migrate()
    result = subprocess.run(
        [sys.executable, "-c", NOOP_IMPORTS, str(project.db), str(project.dir)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == f"Nothing to apply: {project.db} is up to date.\n"
    loaded = set(result.stderr.split())
    assert "vcp_migrate.commands.migrate" in loaded  # it did run the command
    for heavy in (
        "loading",
        "execution",
        "steps",
        "connection_state",
        "backups",
        "checks",
        "schema",
        "hazards",
        "render",
        "backends.hrana",
        "cli.reading",
        "cli.fleet",
        "commands.stopping",
    ):
        assert f"vcp_migrate.{heavy}" not in loaded, heavy
    assert not {name for name in loaded if name == "rich" or name.startswith("rich.")}


RUN_IMPORTS = """
import sys
import time
import warnings
from vcp_migrate.cli import main

try:
    main(["up", "--db", sys.argv[1], "--dir", sys.argv[2], "--no-dump", "--no-backup"])
except SystemExit:
    pass
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_run_without_a_schema_file_loads_no_schema_writer(project: Project) -> None:
    """Each module costs every run its import: the schema writer (difflib) only when it writes, the
    translation of SQLite's file errors only on an error, and the guard's random name comes from
    os.urandom, not the secrets module (random, hmac, base64)."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("002_b.py", "def up(connection):\n    connection.execute('CREATE TABLE b (x)')\n")
    result = subprocess.run(
        [sys.executable, "-c", RUN_IMPORTS, str(project.db), str(project.dir)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Applied 2 migration(s)" in result.stdout
    loaded = set(result.stderr.split())
    assert "vcp_migrate.steps" in loaded  # it did run migrations
    for module in ("vcp_migrate.schema", "vcp_migrate.file_errors", "difflib", "secrets"):
        assert module not in loaded, module
    assert project.history() == [1, 2] and not (project.dir / "schema.sql").exists()


def test_standard_output_closed_stops_no_migration_halfway(project: Project) -> None:
    """``vcp-migrate up | head -1`` once head is gone: a line about a migration (its backup taken,
    before its COMMIT) or a migration's own print() must not stop the run there. Every migration
    is applied as without the pipe, the backup kept as after any run; one line says so, exit 1."""
    three(project)
    project.write(
        "004_d.py", "def up(connection):\n    print('backfilling')\n    connection.execute('CREATE TABLE d (x)')\n"
    )
    project.manager().migrate(1)
    command = [str(console_script()), "up", "--db", str(project.db), "--dir", str(project.dir)]
    code, err = with_output_closed(command, project.root)
    assert code == 1 and "Traceback" not in err
    assert err == "Error: standard output was closed before all was printed; the command went on to its end\n"
    assert project.history() == [1, 2, 3, 4]
    assert [backup.version for backup in project.manager().backups()] == [1]


@pytest.mark.parametrize("shut", [">&-", ">&- 2>&-"])
@pytest.mark.parametrize("quiet", [False, True])
def test_no_standard_output_at_all_is_said_and_its_number_taken_by_no_file(
    project: Project, quiet: bool, shut: str
) -> None:
    """``vcp-migrate up >&-``: exit 0 without a word, and descriptor 1 free, so the run lock
    opened next took it (what the process wrote there went into that file), and a program the
    migration ran had no standard output (``echo`` fails with EBADF). It is now the null device
    meanwhile; the lost lines are said, exit 1 (-q prints nothing there: exit 0). With standard
    error closed too, nothing can be said, and descriptor 2 is the null device as well (it was the
    stand-in's file, which a program the migration ran does not inherit)."""
    three(project)
    child = [sys.executable, "-c", "import os; os.write(1, b'backfilled'); os.write(2, b'noted')"]
    project.write(
        "004_d.py",
        "import os, subprocess\n"
        "def up(connection):\n"
        "    one, two = (os.path.samestat(os.fstat(fd), os.stat(os.devnull)) for fd in (1, 2))\n"
        f"    child = subprocess.run({child!r}).returncode\n"
        "    connection.execute('CREATE TABLE d (one_is_nowhere, two_is_nowhere, child_exit)')\n"
        "    connection.execute('INSERT INTO d VALUES (?, ?, ?)', (one, two, child))\n",
    )
    project.manager().migrate(1)
    command = [str(console_script()), *(["-q"] if quiet else []), "up", "--db", str(project.db)]
    code, err = with_output_missing([*command, "--dir", str(project.dir)], project.root, shut)
    if "2>&-" not in shut:  # the program the migration ran wrote there first
        assert err.startswith("noted")
        err = err.removeprefix("noted")
    if quiet:
        assert (code, err) == (0, "")
    elif "2>&-" in shut:
        assert (code, err) == (1, "")
    else:
        assert code == 1 and err == (
            "Error: standard output was closed from the start, so nothing the command printed could be seen;"
            " the command went on to its end\n"
        )
    assert project.history() == [1, 2, 3, 4]
    with closing(sqlite3.connect(project.db)) as connection:
        found = connection.execute("SELECT one_is_nowhere, two_is_nowhere, child_exit FROM d").fetchall()
        assert found == [(1, int("2>&-" in shut), 0)]


def test_a_thread_left_running_with_no_standard_output_ends_the_process_at_once(project: Project) -> None:
    """A migration that leaves a thread running fails, and the process ends without waiting for
    the thread; with standard output closed from the start, ending it tried to flush a stream
    that is not there: a traceback, then Python waited for the thread (forever, for one that never
    ends)."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_left.py",
        "import threading, time\ndef up(connection):\n    threading.Thread(target=time.sleep, args=(3600,)).start()\n",
    )
    command = [str(console_script()), "up", "--db", str(project.db), "--dir", str(project.dir)]
    code, err = with_output_missing(command, project.root)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"Error: {project.dir / '002_left.py'}: up() returned with thread(s) still running")
    assert project.history() == [1] and project.tables() == {"a"}


@pytest.mark.parametrize("shut", ["0<&-", "0<&- >&-"])
def test_no_standard_input_at_all_leaves_the_run_lock_out_of_a_migration_s_input(project: Project, shut: str) -> None:
    """``vcp-migrate up 0<&-``: descriptor 0 was free, so the run lock, the first file the run
    opened, took it, and a migration (or a program it ran) reading its input read the lock file.
    It is the null device meanwhile; the run goes on as with any input."""
    three(project)
    project.write(
        "004_d.py",
        "import os\n"
        "def up(connection):\n"
        "    nowhere = os.path.samestat(os.fstat(0), os.stat(os.devnull))\n"
        "    connection.execute('CREATE TABLE d (zero_is_nowhere, read)')\n"
        "    connection.execute('INSERT INTO d VALUES (?, ?)', (nowhere, os.read(0, 100)))\n",
    )
    project.manager().migrate(1)
    command = [str(console_script()), "-q", "up", "--db", str(project.db), "--dir", str(project.dir)]
    assert with_output_missing(command, project.root, shut) == (0, "")
    assert project.history() == [1, 2, 3, 4]
    with closing(sqlite3.connect(project.db)) as connection:
        assert connection.execute("SELECT zero_is_nowhere, read FROM d").fetchall() == [(1, b"")]
    assert sorted(path.name for path in project.root.iterdir() if "lock" in path.name) == []


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_standard_output_on_a_full_disk_stops_no_migration_halfway(project: Project, unbuffered: str) -> None:
    """``vcp-migrate up >> deploy.log`` on a full disk: the line after a migration's COMMIT raised
    ENOSPC, so the run stopped there (002 applied, 003 not: "unexpected OSError", or exit 120 with a
    traceback). Every migration is applied as with the output written; one line says so, exit 1."""
    three(project)
    project.manager().migrate(1)
    command = [str(console_script()), "up", "--db", str(project.db), "--dir", str(project.dir)]
    code, err = with_output_on_a_full_disk(command, project.root, PYTHONUNBUFFERED=unbuffered)
    assert code == 1 and "Traceback" not in err
    assert err == (
        "Error: standard output could not be written (No space left on device), so some of what the command"
        " printed is lost; the command went on to its end\n"
    )
    assert project.history() == [1, 2, 3] and project.tables() == {"a", "b", "c"}
    assert [backup.version for backup in project.manager().backups()] == [1]


@pytest.mark.parametrize("where", ["in up()", "at load", "in up(), then failing"])
def test_a_migration_that_changes_the_current_folder_moves_none_of_the_run_s_paths(
    project: Project, where: str
) -> None:
    """Relative paths were read again after migration code ran: a chdir() left an empty database
    behind in the first folder, and wrote the schema file into the other one."""
    elsewhere = project.root / "elsewhere"
    (elsewhere / "migrations").mkdir(parents=True)
    move = f"os.chdir({str(elsewhere)!r})"
    fail = "\n    raise RuntimeError('after the move')" if "failing" in where else ""
    top, body = (move, "pass") if where == "at load" else ("", move + fail)
    up = f"def up(connection):\n    connection.execute('CREATE TABLE a (x)')\n    {body}\n"
    project.write("001_moving.py", f"import os\n{top}\n{up}def down(connection):\n    pass\n")
    manager = vcp_migrate.MigrationManager("test.db", "migrations")  # relative to the folder the run starts in
    if fail:
        with pytest.raises(MigrationFailed, match="after the move"):
            manager.migrate()
        assert not project.db.exists()  # this run created it: removed again, here, not elsewhere
    else:
        assert [run.version for run in manager.migrate()] == [1]
        assert project.history() == [1] and "-- version: 1" in (project.dir / "schema.sql").read_text()
    assert Path.cwd() == project.root
    assert [str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")] == ["migrations"]


class _Raising(vcp_migrate.Observer):
    def __init__(self, hook: str) -> None:
        self.hook = hook

    def started(self, *args: object) -> None:
        if self.hook == "started":
            raise ValueError("the observer broke")

    def finished(self, run: object) -> None:
        if self.hook == "finished":
            raise ValueError("the observer broke")

    def backed_up(self, backup: object) -> None:
        if self.hook == "backed_up":
            raise ValueError("the observer broke")


@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("hook", ["started", "finished", "backed_up"])
def test_an_observer_that_raises_stops_the_run_and_the_run_is_closed_out(
    project: Project, hook: str, atomic: bool
) -> None:
    """Raising in finished() after a commit skipped the schema file and the backup's rotation;
    in started() or backed_up(), before anything ran, the backup taken for the run was left."""
    for version, table in ((1, "a"), (2, "b"), (3, "c")):
        project.sql(f"00{version}_{table}.sql", f"CREATE TABLE {table} (x);", f"DROP TABLE {table};")
    project.manager().migrate(1)
    with pytest.raises(ValueError, match="the observer broke"):
        project.manager(observer=_Raising(hook)).migrate(atomic=atomic)
    applied = {"started": [1], "backed_up": [1], "finished": [1, 2, 3] if atomic else [1, 2]}[hook]
    assert project.history() == applied
    assert f"-- version: {applied[-1]}" in (project.dir / "schema.sql").read_text()
    backups = [backup.version for backup in project.manager().backups()]
    assert backups == ([] if applied == [1] else [1])  # kept only when something was committed
    assert (project.root / "test.db.backups").exists() == (applied != [1])  # and the folder made for it


def test_a_migration_that_moves_to_its_own_folder_as_it_loads_runs_there(project: Project) -> None:
    """os.chdir(os.path.dirname(__file__)) at the top, then a relative open() in up(): the folder
    its load moved to is the one its functions run in; the run's own paths stay where they were."""
    (project.dir / "seed.txt").write_text("AAPL\nMSFT\n")
    project.write(
        "001_seeded.py",
        """
        import os
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        def up(connection):
            connection.execute("CREATE TABLE symbols (name TEXT)")
            with open("seed.txt") as seed:
                connection.executemany("INSERT INTO symbols VALUES (?)", [(line.strip(),) for line in seed])
        def down(connection):
            connection.execute("DROP TABLE symbols")
        """,
    )
    manager = vcp_migrate.MigrationManager("test.db", "migrations")
    assert [run.version for run in manager.migrate()] == [1]
    assert project.query("SELECT name FROM symbols") == [("AAPL",), ("MSFT",)]
    assert Path.cwd() == project.root and "-- version: 1" in (project.dir / "schema.sql").read_text()
    assert [run.version for run in manager.rollback()] == [1] and project.tables() == set()


def test_with_json_what_a_subprocess_of_a_migration_prints_goes_aside_too(project: Project) -> None:
    """Only sys.stdout was redirected: a subprocess, or os.write(1, ...), printed into the JSON."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write(
        "002_b.py",
        "import os\ndef up(c):\n    os.system('echo from a subprocess')\n    os.write(1, b'written to 1\\n')\n"
        "def down(c):\n    pass\n",
    )
    command = [str(console_script()), "up", "--json", "--db", str(project.db), "--dir", str(project.dir)]
    result = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout)["version_after"] == 2, result.stdout
    assert "from a subprocess" in result.stderr and "written to 1" in result.stderr
    plain = subprocess.run(command[:2] + command[3:], cwd=project.root, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "Nothing to apply" in plain.stdout  # without --json, standard output as ever


def test_with_json_a_migration_printing_to_a_standard_error_nobody_reads_fails_nothing(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write("002_b.py", "print('loading b')\n" + PRINTING)
    command = [str(console_script()), "up", "--json", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stderr is not None
    process.stderr.close()  # its reader gone before anything is printed there
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and json.loads(out)["version_after"] == 2
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}


def test_ctrl_c_just_after_an_atomic_batch_commits_reports_the_batch_as_done(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")
    project.manager().migrate(1)

    interrupt_after_commit(monkeypatch)
    result = project.cli("up", "--atomic", "--json")
    assert result.exit_code == 130
    report = json.loads(result.stdout)
    assert [(r["version"], r["direction"]) for r in report["ran"]] == [(2, "up"), (3, "up")]
    assert report["version_after"] == 3 and report["error"] == "interrupted" and "Warning" not in result.stderr
    assert project.history() == [1, 2, 3] and "-- version: 3" in (project.dir / "schema.sql").read_text()


JOURNAL_OFF_SAID = (
    "tried to turn the rollback journal off inside its transaction (PRAGMA {pragma}), so a failed statement"
    " or a crash would corrupt the database instead of leaving it as it was; if truly needed, put it in a"
    " migration of its own that runs outside a transaction ('-- migrate:up transaction:false' in SQL,"
    " transactional = False in Python), which is not atomic"
)
# The writes after it spill pages to the file (a cache of 5 pages), then a statement fails: with no
# journal on disk, the rollback left rows out of order and lost (the backup deleted as unchanged).
SPILL_THEN_FAIL = "PRAGMA cache_size = 5;\nUPDATE t SET v = printf('%.500c', 'z');\nSELECT * FROM no_such_table;"


@pytest.mark.parametrize(
    ("pragma", "said"),
    [
        ("journal_mode=OFF", "journal_mode = OFF"),
        ("main.journal_mode = 'off'", "main.journal_mode = off"),
        ('"JOURNAL_MODE" = [Of]', "JOURNAL_MODE = Of"),
        ("journal_mode('o')", "journal_mode = o"),  # SQLite reads a prefix of a mode's name as that mode
    ],
)
def test_a_sql_migration_cannot_turn_the_rollback_journal_off(project: Project, pragma: str, said: str) -> None:
    five_thousand_rows(project)
    project.sql("002_bad.sql", f"PRAGMA {pragma};\n{SPILL_THEN_FAIL}")
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir / '002_bad.sql'}: statement 1 {JOURNAL_OFF_SAID.format(pragma=said)}"
        " (nothing was applied)\n"
    )
    still_five_thousand_rows(project)
    assert not any(project.root.glob("test.db.backups/*.db")) and "Deleted that backup again" in result.stdout


def test_a_migration_cannot_keep_the_rollback_journal_in_memory_or_take_an_attached_ones(project: Project) -> None:
    """MEMORY: a killed process left most rows changed and no history row. An attached database's
    journal counts too (the migration writes it in the same transaction)."""
    five_thousand_rows(project)
    project.sql("002_memory.sql", "PRAGMA journal_mode = MEMORY;\nUPDATE t SET v = 'y';")
    result = project.cli("migrate")
    assert result.exit_code == 1 and "statement 1 tried to keep the rollback journal in memory" in result.stderr
    assert "(PRAGMA journal_mode = MEMORY), so a crash would corrupt the database" in result.stderr
    still_five_thousand_rows(project)
    project.sql(
        "002_memory.sql",
        "ATTACH 'side.db' AS side;\nCREATE TABLE side.s (x);\nPRAGMA side.journal_mode = off;\nUPDATE t SET v = 'y';",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "statement 3 tried to turn the rollback journal off" in result.stderr
    assert "(PRAGMA side.journal_mode = off)" in result.stderr
    still_five_thousand_rows(project)
    with closing(sqlite3.connect(project.root / "side.db")) as side:
        assert side.execute("SELECT name FROM sqlite_master").fetchall() == []


@pytest.mark.parametrize("catches", [False, True], ids=["raises", "catches the refusal"])
def test_a_python_migration_cannot_turn_the_rollback_journal_off(project: Project, catches: bool) -> None:
    five_thousand_rows(project)
    off = "connection.execute('PRAGMA journal_mode=OFF')"
    project.write(
        "002_bad.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        + (f"    try:\n        {off}\n    except sqlite3.DatabaseError:\n        pass\n" if catches else f"    {off}\n")
        + "    connection.execute('PRAGMA cache_size = 5')\n"
        "    connection.execute(\"UPDATE t SET v = printf('%.500c', 'z')\")\n"
        + ("" if catches else "    raise RuntimeError('boom')\n"),
    )
    result = project.cli("migrate")
    assert result.exit_code == 1
    said = JOURNAL_OFF_SAID.format(pragma="journal_mode = OFF")
    assert result.stderr == f"Error: {project.dir / '002_bad.py'}: up() {said} (nothing was applied)\n"
    still_five_thousand_rows(project)
    assert not any(project.root.glob("test.db.backups/*.db"))  # the run changed nothing


def test_an_atomic_batch_cannot_turn_the_rollback_journal_off(project: Project) -> None:
    five_thousand_rows(project)
    project.sql("002_u.sql", "CREATE TABLE u (x);\nUPDATE t SET v = 'y';", "DROP TABLE u;")
    project.sql("003_bad.sql", f"PRAGMA journal_mode = off;\n{SPILL_THEN_FAIL}")
    result = project.cli("migrate", "--atomic")
    assert result.exit_code == 1
    assert f"{project.dir / '003_bad.sql'}: statement 1 {JOURNAL_OFF_SAID.format(pragma='journal_mode = off')}" in (
        result.stderr
    )
    still_five_thousand_rows(project)
    assert project.tables() == {"t"} and not any(project.root.glob("test.db.backups/*.db"))


def test_the_rollback_journal_turned_off_outside_a_transaction_stays_in_that_migration(project: Project) -> None:
    """Outside a transaction it is the migration's own choice; its connection is replaced after
    it, so the next migration's failure still rolls back from a journal on disk."""
    five_thousand_rows(project)
    project.write(
        "002_off.sql",
        "-- migrate:up transaction:false\nPRAGMA journal_mode = OFF;\nPRAGMA cache_size = 5;\nUPDATE t SET v = 'y';\n"
        "-- migrate:down transaction:false\nUPDATE t SET v = 'x';\n",
    )
    project.sql("003_fails.sql", SPILL_THEN_FAIL.split("\n", 1)[1])
    result = project.cli("migrate")
    assert result.exit_code == 1 and "003_fails.sql: statement 2 failed: no such table: no_such_table" in result.stderr
    still_five_thousand_rows(project, (1, 2), "y")
    assert len(list(project.root.glob("test.db.backups/*.db"))) == 1  # 002 was committed


def test_a_failed_python_migration_that_wrote_past_the_transaction_keeps_the_backup(project: Project) -> None:
    """Python code can reach past the guards (here a second connection that takes no lock): after
    it fails, the database is compared with the backup, which is kept when they differ."""
    five_thousand_rows(project)
    project.write(
        "002_past.py",
        "import sqlite3\n\n"
        "def up(connection):\n"
        "    side = sqlite3.connect('file:test.db?nolock=1', uri=True, isolation_level=None)\n"
        "    side.execute(\"UPDATE t SET v = 'past'\")\n"
        "    side.close()\n"
        "    raise RuntimeError('boom')\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and "up() failed at line 7: RuntimeError: boom (nothing was applied)" in result.stderr
    still_five_thousand_rows(project, (1,), "past")
    (backup,) = project.root.glob("test.db.backups/*.db")
    assert (
        f"{backup.relative_to(project.root)}: kept: a migration changed the database" in result.stderr + result.stdout
    )
    with closing(sqlite3.connect(backup)) as copy:
        assert copy.execute("SELECT count(*), max(v) FROM t").fetchone() == (5000, "x")


def test_a_file_renumbered_after_it_ran_is_refused_not_applied_again(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE IF NOT EXISTS trades (id INTEGER PRIMARY KEY, symbol TEXT);")
    project.sql("002_seed.sql", "INSERT INTO trades (symbol) VALUES ('AAPL');", "DELETE FROM trades;")
    project.manager().migrate()
    # renumbered on a rebase: its up runs on the database as it is, and would seed a second row
    (project.dir / "002_seed.sql").rename(project.dir / "003_seed.sql")
    before = project.digest()
    for args in (("migrate",), ("migrate", "--dry-run"), ("migrate", "--atomic")):
        result = project.cli(*args)
        assert result.exit_code == 1, result.output
        assert (
            f"Error: {project.dir / '003_seed.sql'}: holds exactly what version 2 (seed) applied, whose file"
            " (002_seed.sql) is missing: it was renumbered from 2, and would be applied a second time (give it"
            " back its applied name; to apply the same content again as a new migration, change the file (a"
            " comment will do); nothing was applied)"
        ) in result.output
        assert "Traceback" not in result.output
    assert project.digest() == before
    assert project.history() == [1, 2] and project.query("SELECT symbol FROM trades") == [("AAPL",)]
    assert not (project.root / "test.db.backups").exists()
    # named back, it is applied as it was; changed, it is a new migration
    (project.dir / "003_seed.sql").rename(project.dir / "002_seed.sql")
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]
    (project.dir / "002_seed.sql").rename(project.dir / "003_seed.sql")
    with (project.dir / "003_seed.sql").open("a") as file:
        file.write("-- seeded again on purpose\n")
    assert project.cli("migrate").exit_code == 0, project.cli("status").output
    assert project.history() == [1, 2, 3] and project.query("SELECT count(*) FROM trades") == [(2,)]


def test_migrate_to_a_version_below_the_database_says_it_stays_above(project: Project) -> None:
    """--to names where to stop: a deploy pinned to 1 on a database at 3 was told 'up to date' alone."""
    three(project)
    project.manager().migrate()
    before = project.digest()
    result = project.cli("migrate", "--to", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f"Warning: {project.db} is at version 3, above --to 1: migrate only applies, and leaves it there;"
        " to go down to 1, run 'vcp-migrate rollback --to 1'"
    )
    assert project.digest() == before and project.history() == [1, 2, 3]
    assert project.cli("migrate", "--to", "3").stderr == ""  # at it: nothing to say
