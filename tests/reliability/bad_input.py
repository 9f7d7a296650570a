"""Bad-input campaign: every kind of wrong input, run as a real process.

Each case must give its documented exit code, one line on stderr that starts with 'Error:' and
names the culprit, no traceback, the database byte-identical, and no file changed on disk.
A case with ``stored`` is input that only looks wrong: it must succeed and store what was written.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .common import Figures, Timer, clean_env, console_script, sha256, tree, unprivileged

DB = "trading.db"
PY_B = "def up(c):\n    c.execute('CREATE TABLE b (x)')\n\ndef down(c):\n    c.execute('DROP TABLE b')\n"


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    args: tuple[str, ...]
    exit_code: int
    culprit: str
    setup: Callable[[Path], object] = lambda root: None
    defaults: bool = True  # add --db and --dir of the project
    unprivileged: bool = False  # run without root's power over file permissions
    env: dict[str, str] = field(default_factory=dict)
    hold_write_lock: bool = False
    stored: tuple[str, list[tuple[object, ...]]] | None = None  # a case that must succeed: a query, its rows


def _write(name: str, content: str | bytes) -> Callable[[Path], object]:
    def setup(root: Path) -> None:
        path = root / "migrations" / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)

    return setup


def _sql(name: str, up: str, down: str = "SELECT 1;") -> Callable[[Path], object]:
    return _write(name, f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n")


def _both(*steps: Callable[[Path], object]) -> Callable[[Path], object]:
    def setup(root: Path) -> None:
        for step in steps:
            step(root)

    return setup


def _socket(name: str) -> Callable[[Path], object]:
    def setup(root: Path) -> None:
        # A socket's path is limited to about 100 bytes: bind it by a short relative name.
        here = os.getcwd()
        os.chdir(root / "migrations")
        try:
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(name)
        finally:
            os.chdir(here)

    return setup


def _database(content: bytes) -> Callable[[Path], object]:
    return lambda root: (root / DB).write_bytes(content)


def _truncate(root: Path) -> None:
    connection = sqlite3.connect(root / DB)
    connection.execute("CREATE TABLE filler (x)")
    connection.executemany("INSERT INTO filler VALUES (?)", [(os.urandom(500),) for _ in range(200)])
    connection.commit()
    connection.close()
    data = (root / DB).read_bytes()
    (root / DB).write_bytes(data[: len(data) // 3])


def _corrupt(root: Path) -> None:
    data = bytearray((root / DB).read_bytes())
    data[100:400] = b"\xab" * 300
    (root / DB).write_bytes(bytes(data))


def _sql_on_db(statement: str) -> Callable[[Path], object]:
    def setup(root: Path) -> None:
        connection = sqlite3.connect(root / DB)
        connection.execute(statement)
        connection.commit()
        connection.close()

    return setup


def _large(root: Path) -> None:
    inserts = "".join(f"INSERT INTO a VALUES ({i});\n" for i in range(100_000))
    _sql("003_large.sql", inserts + "INSERT INTO nowhere VALUES (1);")(root)


CASES = [
    # -- file names -----------------------------------------------------------------------
    Case(
        "file names",
        "no version",
        ("migrate",),
        1,
        "add_index.sql: name does not match",
        _sql("add_index.sql", "SELECT 1;"),
    ),
    Case("file names", "no name", ("migrate",), 1, "003.sql: name does not match", _sql("003.sql", "SELECT 1;")),
    Case(
        "file names",
        "version 0",
        ("migrate",),
        1,
        "000_zero.sql: version must be between",
        _sql("000_zero.sql", "SELECT 1;"),
    ),
    Case(
        "file names",
        "version too large",
        ("migrate",),
        1,
        "99999999999999999999_x.sql: version must be",
        _sql("99999999999999999999_x.sql", "SELECT 1;"),
    ),
    Case(
        "file names",
        "duplicate version",
        ("migrate",),
        1,
        "version 3 is also used by 003_x.sql",
        _both(_sql("003_x.sql", "SELECT 1;"), _sql("3_y.sql", "SELECT 1;")),
    ),
    Case(  # status shows both files as invalid instead (exit 0, or 4 with --exit-code)
        "file names",
        "duplicate, rollback",
        ("rollback",),
        1,
        "version 3 is also used by",
        _both(_sql("003_x.sql", "SELECT 1;"), _sql("3_y.sql", "SELECT 1;")),
    ),
    Case(
        "file names",
        "helper module",
        ("migrate",),
        1,
        "helpers.py: name does not match",
        _write("helpers.py", "X = 1\n"),
    ),
    # -- file contents --------------------------------------------------------------------
    Case(
        "file contents",
        "python syntax error",
        ("migrate",),
        1,
        "003_x.py: line 1",
        _write("003_x.py", "def up(c)\n    pass\n"),
    ),
    Case(
        "file contents",
        "no up",
        ("migrate",),
        1,
        "003_x.py: has no up(connection) function",
        _write("003_x.py", "def down(c): pass\n"),
    ),
    Case(
        "file contents",
        "up not a function",
        ("migrate",),
        1,
        "003_x.py: up is not a function",
        _write("003_x.py", "up = 5\n"),
    ),
    Case(
        "file contents",
        "up without argument",
        ("migrate",),
        1,
        "003_x.py: up() must take exactly one argument",
        _write("003_x.py", "def up(): pass\n"),
    ),
    Case(
        "file contents",
        "up with two arguments",
        ("migrate",),
        1,
        "003_x.py: up() must take exactly one",
        _write("003_x.py", "def up(a, b): pass\n"),
    ),
    Case(
        "file contents",
        "down with wrong signature",
        ("migrate",),
        1,
        "003_x.py: down() must take exactly one",
        _write("003_x.py", "def up(c): pass\ndef down(): pass\n"),
    ),
    Case(
        "file contents",
        "import error",
        ("migrate",),
        1,
        "003_x.py: loading failed at line 1: ModuleNotFoundError",
        _write("003_x.py", "import no_such_thing\n"),
    ),
    Case(
        "file contents",
        "error at import",
        ("migrate",),
        1,
        "003_x.py: loading failed at line 2: ZeroDivisionError",
        _write("003_x.py", "def up(c): pass\nx = 1 / 0\n"),
    ),
    Case(
        "file contents",
        "transactional not a bool",
        ("migrate",),
        1,
        "003_x.py: transactional must be True or False",
        _write("003_x.py", "transactional = 'no'\ndef up(c): pass\n"),
    ),
    Case(
        "file contents",
        "up raises",
        ("migrate",),
        1,
        "003_x.py: up() failed at line 2: ValueError: bad",
        _write("003_x.py", "def up(c):\n    raise ValueError('bad')\ndef down(c): pass\n"),
    ),
    Case(
        "file contents",
        "SQL error",
        ("migrate",),
        1,
        "003_x.sql: statement 2 failed: no such table: nowhere",
        _sql("003_x.sql", "CREATE TABLE c(x);\nINSERT INTO nowhere VALUES (1);"),
    ),
    Case(
        "file contents",
        "SQL syntax error",
        ("migrate",),
        1,
        "003_x.sql: statement 1 failed: near",
        _sql("003_x.sql", "CREATE TABEL c(x);"),
    ),
    Case(
        "file contents",
        "empty SQL file",
        ("migrate",),
        1,
        "003_x.sql: has no '-- migrate:up' section",
        _write("003_x.sql", ""),
    ),
    Case(
        "file contents",
        "empty Python file",
        ("migrate",),
        1,
        "003_x.py: has no up(connection) function",
        _write("003_x.py", ""),
    ),
    Case(
        "file contents",
        "binary junk SQL",
        ("migrate",),
        1,
        "003_x.sql: is not UTF-8 text",
        _write("003_x.sql", bytes(range(256)) * 4),
    ),
    Case(
        "file contents", "binary junk Python", ("migrate",), 1, "003_x.py: ", _write("003_x.py", b"\x00\xff\xfe" * 100)
    ),
    Case(
        "file contents",
        "non-UTF-8 SQL",
        ("migrate",),
        1,
        "003_x.sql: is not UTF-8 text",
        _write("003_x.sql", "-- migrate:up\nSELECT 'caf\xe9';\n".encode("latin-1")),
    ),
    Case(
        "file contents",
        "very large file failing at the end",
        ("migrate",),
        1,
        "003_large.sql: statement 100001 failed: no such table: nowhere",
        _large,
    ),
    Case(
        "file contents",
        "near-miss marker",
        ("migrate",),
        1,
        "003_x.sql: line 3: '-- migrate: down' looks like a section marker",
        _write("003_x.sql", "-- migrate:up\nSELECT 1;\n-- migrate: down\nDROP TABLE a;\n"),
    ),
    Case(
        "file contents",
        "SQL before the up marker",
        ("migrate",),
        1,
        "003_x.sql: line 1: SQL before the first",
        _write("003_x.sql", "DROP TABLE a;\n-- migrate:up\nSELECT 1;\n"),
    ),
    Case(
        "file contents",
        "unknown marker option",
        ("migrate",),
        1,
        "003_x.sql: line 1: unknown option 'transaction:maybe'",
        _write("003_x.sql", "-- migrate:up transaction:maybe\nSELECT 1;\n"),
    ),
    Case(
        "file contents",
        "COMMIT in SQL",
        ("migrate",),
        1,
        "003_x.sql: statement 2 tried to run COMMIT",
        _sql("003_x.sql", "CREATE TABLE c(x);\nCOMMIT;"),
    ),
    Case(
        "file contents",
        "commit() in Python",
        ("migrate",),
        1,
        "003_x.py: up() tried to call commit()",
        _write("003_x.py", "def up(c):\n    c.execute('CREATE TABLE c(x)')\n    c.commit()\ndef down(c): pass\n"),
    ),
    Case(
        "file contents",
        "foreign key violation",
        ("migrate",),
        1,
        "003_x.sql: foreign key check failed: table c row 1",
        _sql(
            "003_x.sql",
            "CREATE TABLE p(id INTEGER PRIMARY KEY);\n"
            "CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id));\nINSERT INTO c VALUES (1, 9);",
        ),
    ),
    Case(
        "file contents",
        "rollback without down",
        ("rollback",),
        1,
        "002_b.py: has no down",
        _write("002_b.py", "def up(c):\n    c.execute('CREATE TABLE b (x)')\n"),
    ),
    # -- directories ------------------------------------------------------------------------
    Case(
        "directories", "missing", ("status", "--dir", "migrtions"), 1, "migrtions: migrations directory does not exist"
    ),
    Case("directories", "a file instead of a directory", ("migrate", "--dir", DB), 1, f"{DB}: is not a directory"),
    Case(
        "directories",
        "unreadable",
        ("migrate",),
        1,
        "migrations: cannot be read: Permission denied",
        lambda root: (root / "migrations").chmod(0),
        unprivileged=True,
    ),
    Case(
        "directories",
        "unreadable file",
        ("migrate",),
        1,
        "003_x.sql: cannot be read: Permission denied",
        _both(_sql("003_x.sql", "SELECT 1;"), lambda root: (root / "migrations" / "003_x.sql").chmod(0)),
        unprivileged=True,
    ),
    Case(
        "directories",
        "symlink leaving the tree",
        ("migrate",),
        1,
        "003_x.sql: is a link to a file outside the migrations directory",
        lambda root: (root / "migrations" / "003_x.sql").symlink_to("/etc/hostname"),
    ),
    Case(
        "directories",
        "named pipe",
        ("migrate",),
        1,
        "003_x.sql: is a named pipe (FIFO), not a regular file",
        lambda root: os.mkfifo(root / "migrations" / "003_x.sql"),
    ),
    Case(
        "directories",
        "link to itself",
        ("migrate",),
        1,
        "003_x.sql: is a link that loops back on itself",
        lambda root: (root / "migrations" / "003_x.sql").symlink_to("003_x.sql"),
    ),
    Case(
        "directories",
        "links to each other, rollback",
        ("rollback",),
        1,
        "003_x.sql: is a link that loops back on itself",
        _both(
            lambda root: (root / "migrations" / "003_x.sql").symlink_to("004_y.sql"),
            lambda root: (root / "migrations" / "004_y.sql").symlink_to("003_x.sql"),
        ),
    ),
    Case(
        "directories",
        "dangling link",
        ("migrate",),
        1,
        "003_x.sql: is a link to gone.sql, which does not exist",
        lambda root: (root / "migrations" / "003_x.sql").symlink_to("gone.sql"),
    ),
    Case(
        "directories",
        "directory named like a migration",
        ("migrate",),
        1,
        "003_x.sql: is a directory, not a regular file",
        lambda root: (root / "migrations" / "003_x.sql").mkdir(),
    ),
    Case("directories", "socket", ("migrate",), 1, "003_x.py: is a socket, not a regular file", _socket("003_x.py")),
    Case("directories", "migrations dir removed, new", ("new", "x", "--dir", "no/such/dir"), 1, "does not exist"),
    # -- databases ----------------------------------------------------------------------------
    Case(
        "databases",
        "not a database, status",
        ("status",),
        1,
        f"{DB}: is not a SQLite database",
        _database(b"trading notes, not a database\n" * 100),
    ),
    Case(
        "databases",
        "not a database, migrate",
        ("migrate",),
        1,
        f"{DB}: is not a SQLite database",
        _database(b"trading notes, not a database\n" * 100),
    ),
    Case(
        "databases",
        "not a database, validate",
        ("validate",),
        1,
        f"{DB}: is not a SQLite database",
        _database(b"\x00" * 4096),
    ),
    Case("databases", "corrupt, status", ("status",), 1, f"{DB}: is corrupt", _corrupt),
    Case("databases", "corrupt, rollback", ("rollback",), 1, f"{DB}: is corrupt", _corrupt),
    Case("databases", "truncated", ("migrate",), 1, f"{DB}: is corrupt", _truncate),
    Case(
        "databases",
        "zero bytes, rollback",
        ("rollback",),
        1,
        "trading.db: nothing to roll back: no migration is applied",
        _database(b""),
    ),
    Case(
        "databases",
        "read-only",
        ("migrate",),
        1,
        f"{DB}: is read-only",
        _both(_sql("003_x.sql", "CREATE TABLE c(x);"), lambda root: (root / DB).chmod(0o444)),
        unprivileged=True,
    ),
    Case(
        "databases",
        "locked by an application",
        ("migrate", "--lock-timeout", "0.3"),
        1,
        f"{DB}: is locked by another connection",
        _sql("003_x.sql", "CREATE TABLE c(x);"),
        hold_write_lock=True,
    ),
    Case(
        "databases",
        "a directory",
        ("status", "--db", "migrations"),
        1,
        "migrations: is a directory, not a database file",
    ),
    Case(
        "databases",
        "in a missing directory",
        ("migrate", "--db", "nowhere/trading.db"),
        1,
        "nowhere/trading.db: directory nowhere does not exist",
    ),
    Case("databases", "missing, rollback", ("rollback", "--db", "tradng.db"), 1, "tradng.db: does not exist"),
    Case("databases", "missing, restore", ("restore", "--db", "tradng.db"), 1, "tradng.db: has no backups"),
    Case(
        "databases",
        "foreign history table",
        ("status",),
        1,
        "has a vcp_migrations table that vcp-migrate did not create",
        _sql_on_db("DROP TABLE vcp_migrations_meta"),
    ),
    Case(
        "databases",
        "history from a newer release",
        ("status",),
        1,
        "written by a newer vcp-migrate",
        _sql_on_db("UPDATE vcp_migrations_meta SET value = '99' WHERE key = 'layout'"),
    ),
    # -- arguments ------------------------------------------------------------------------------
    Case("arguments", "steps 0", ("rollback", "--steps", "0"), 2, "Invalid value for '--steps': 0 is not in the range"),
    Case("arguments", "negative steps", ("rollback", "--steps", "-1"), 2, "Invalid value for '--steps'"),
    Case("arguments", "steps not a number", ("rollback", "--steps", "two"), 2, "Invalid value for '--steps'"),
    Case(
        "arguments",
        "steps and to together",
        ("rollback", "--steps", "1", "--to", "0"),
        2,
        "--steps and --to cannot be used together",
    ),
    Case("arguments", "negative to", ("rollback", "--to", "-2"), 2, "Invalid value for '--to'"),
    Case("arguments", "unknown version, migrate", ("migrate", "--to", "99"), 1, "--to 99 is not a migration"),
    Case("arguments", "unknown version, rollback", ("rollback", "--to", "99"), 1, "--to 99 is not a migration"),
    Case(
        "arguments",
        "more steps than applied",
        ("rollback", "--steps", "5"),
        1,
        "cannot roll back 5: 2 migration(s) applied",
    ),
    Case("arguments", "unknown version, baseline", ("baseline", "99"), 1, "version 99 is not a migration"),
    Case(
        "arguments",
        "negative lock timeout",
        ("migrate", "--lock-timeout", "-1"),
        2,
        "Invalid value for '--lock-timeout'",
    ),
    Case("arguments", "unknown command", ("frobnicate",), 2, "No such command 'frobnicate'", defaults=False),
    Case("arguments", "unknown option", ("migrate", "--frobnicate"), 2, "--frobnicate"),
    Case("arguments", "name with a path", ("new", "../outside"), 2, "migration name '../outside' contains a path"),
    Case("arguments", "empty name", ("new", " "), 2, "migration name ' ' is empty"),
    Case("arguments", "name too long", ("new", "x" * 300), 2, "migration name is too long: 300 bytes"),
    Case("arguments", "lock timeout nan", ("migrate", "--lock-timeout", "nan"), 2, "nan is not a number of seconds"),
    Case(
        "arguments",
        "restore a file that is not a backup",
        ("restore", "notes.db"),
        1,
        "notes.db: is not a backup of",
        lambda root: sqlite3.connect(root / "notes.db").execute("CREATE TABLE n(x)").connection.commit(),
    ),
    Case(
        "arguments",
        "repair an unmodified migration",
        ("repair", "1", "--yes"),
        1,
        "version 1 is applied and its file has not changed since",
    ),
    Case(
        "arguments",
        "migrate with a modified applied file",
        ("migrate",),
        1,
        "001_a.sql: changed since it was applied",
        _sql("001_a.sql", "CREATE TABLE a (x, y);", "DROP TABLE a;"),
    ),
    Case(
        "arguments",
        "out-of-order pending",
        ("migrate",),
        1,
        "version 1 is pending but version 2 is already applied",
        lambda root: _both(_sql_on_db("DELETE FROM vcp_migrations WHERE version = 1"))(root),
    ),
    Case(
        "arguments",
        "rollback with its file missing",
        ("rollback",),
        1,
        "version 2 (b) is applied but its file is missing",
        lambda root: (root / "migrations" / "002_b.py").unlink(),
    ),
    # -- configuration --------------------------------------------------------------------------
    Case(
        "configuration",
        "broken pyproject.toml",
        ("status",),
        2,
        "pyproject.toml: ",
        lambda root: (root / "pyproject.toml").write_text("[tool.vcp-migrate\ndb = 1\n"),
        defaults=False,
    ),
    Case(
        "configuration",
        "unknown key",
        ("status",),
        2,
        "pyproject.toml: [tool.vcp-migrate] has an unknown key 'databse'",
        lambda root: (root / "pyproject.toml").write_text("[tool.vcp-migrate]\ndatabse = 'x.db'\n"),
        defaults=False,
    ),
    Case(
        "configuration",
        "wrong type",
        ("status",),
        2,
        "pyproject.toml: [tool.vcp-migrate] keep_backups must be a whole number",
        lambda root: (root / "pyproject.toml").write_text("[tool.vcp-migrate]\nkeep_backups = 'five'\n"),
        defaults=False,
    ),
    Case(
        "configuration",
        "bad lock timeout variable",
        ("migrate",),
        2,
        "VCP_MIGRATE_LOCK_TIMEOUT='soon' is not a finite number of seconds",
        env={"VCP_MIGRATE_LOCK_TIMEOUT": "soon"},
    ),
    Case(
        "configuration",
        "database variable names a directory",
        ("status",),
        1,
        "migrations: is a directory, not a database file",
        env={"VCP_MIGRATE_DB": "migrations", "VCP_MIGRATE_DIR": "migrations"},
        defaults=False,
    ),
]

# -- SQL text: what is a marker, and literals kept as written ---------------------------------
_APPLY = ("migrate", "--no-backup", "--no-dump")
_NEAR_MISSES = ("-- migrate:dwon", "-- migrate:", "-- migrate:downgrade", "-- +migrate Down", "-- +goose Down")
_NEAR_MISSES += ("-- +goose Up", "-- +migrate Up", "--migrate:down")
_ODD_SEPARATORS = ("\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_A_STILL_THERE = "(SELECT count(*) FROM sqlite_master WHERE name = 'a')"
CASES += [
    Case(
        "SQL text",
        "marker in a block comment",
        _APPLY,
        0,
        "",
        _write(
            "003_x.sql",
            "-- migrate:up\n/*\n-- migrate:down\nDROP TABLE a;\n*/\nCREATE TABLE c AS SELECT 'up ran' AS x;\n",
        ),
        stored=(f"SELECT x, {_A_STILL_THERE} FROM c", [("up ran", 1)]),
    ),
    Case(
        "SQL text",
        "marker in a literal",
        _APPLY,
        0,
        "",
        _sql("003_x.sql", "CREATE TABLE c (x);\nINSERT INTO c VALUES ('one\n-- migrate:down\nDROP TABLE a;');"),
        stored=(f"SELECT x, {_A_STILL_THERE} FROM c", [("one\n-- migrate:down\nDROP TABLE a;", 1)]),
    ),
    *(
        Case(
            "SQL text",
            f"near-miss marker {marker}",
            ("migrate",),
            1,
            f"003_x.sql: line 3: {marker!r} looks like a section marker but is not one",
            _write("003_x.sql", f"-- migrate:up\nCREATE TABLE c (x);\n{marker}\nDROP TABLE a;\n"),
        )
        for marker in _NEAR_MISSES
    ),
    *(
        Case(
            "SQL text",
            f"U+{ord(separator):04X} in a literal",
            _APPLY,
            0,
            "",
            _write(
                "003_x.sql",
                f"-- migrate:up\nCREATE TABLE c AS SELECT 'one{separator}two{separator}' AS x;\n".encode(),
            ),
            stored=("SELECT CAST(x AS BLOB) FROM c", [(f"one{separator}two{separator}".encode(),)]),
        )
        for separator in _ODD_SEPARATORS
    ),
    Case(
        "SQL text",
        "NUL character",
        ("migrate",),
        1,
        "003_x.sql: line 3: holds a NUL character",
        _write("003_x.sql", b"-- migrate:up\nCREATE TABLE c (x);\nINSERT INTO c VALUES ('a\x00b');\n"),
    ),
]


def _base(root: Path) -> None:
    """A project at version 2 of two migrations."""
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "001_a.sql").write_text(
        "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n"
    )
    (root / "migrations" / "002_b.py").write_text(PY_B)
    result = subprocess.run(
        [str(console_script()), "migrate", "--db", DB, "--dir", "migrations", "--no-backup", "--no-dump"],
        cwd=root,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr


def check(case: Case, root: Path) -> list[str]:
    """Run one case; the kinds of failure it shows (none when it behaves as documented)."""
    _base(root)
    case.setup(root)
    database, files = sha256(root / DB), tree(root)
    args = list(case.args) + (["--db", DB] if case.defaults and "--db" not in case.args else [])
    args += ["--dir", "migrations"] if case.defaults and "--dir" not in case.args and args[0] != "frobnicate" else []
    command = [str(console_script()), *args]
    holder = None
    if case.hold_write_lock:
        holder = sqlite3.connect(root / DB, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    try:
        result = subprocess.run(
            unprivileged(command) if case.unprivileged else command,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            env={**clean_env(), **case.env},
        )
    finally:
        if holder:
            holder.execute("ROLLBACK")
            holder.close()
    failures = []
    lines = result.stderr.strip().splitlines()
    if result.returncode != case.exit_code:
        failures.append("wrong exit code")
    if case.stored is None and (len(lines) != 1 or not lines[0].startswith("Error: ")):
        failures.append("not one 'Error:' line")
    if "Traceback" in result.stdout + result.stderr:
        failures.append("traceback")
    if case.culprit not in result.stderr:
        failures.append("culprit not named")
    if case.stored is None and sha256(root / DB) != database:
        failures.append("database changed")
    if case.stored is None and tree(root) != files:
        failures.append("files changed on disk")
    if case.stored is not None and _rows(root / DB, case.stored[0]) != case.stored[1]:
        failures.append("stored value differs")
    if failures:
        failures.append(f"[{case.category}: {case.name}] exit {result.returncode}: {result.stderr.strip()[:300]}")
    return failures


def _rows(db: Path, query: str) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(query).fetchall()
    except sqlite3.Error as exc:  # a table the migration should have made is missing
        return [("error", str(exc))]
    finally:
        connection.close()


def run(workdir: Path) -> Figures:
    figures = Figures("bad input")
    with Timer() as timer:
        kinds: Counter[str] = Counter()
        notes = []
        for index, case in enumerate(CASES):
            root = workdir / f"case-{index}"
            try:
                found = check(case, root)
            finally:
                for path in [root, *root.rglob("*")] if root.exists() else []:
                    path.chmod(0o755) if path.is_dir() and not path.is_symlink() else None
                shutil.rmtree(root, ignore_errors=True)
            kinds.update(f for f in found if not f.startswith("["))
            notes += [f for f in found if f.startswith("[")]
    categories = Counter(case.category for case in CASES)
    figures.counts = {"cases": len(CASES), **{f"  {name}": count for name, count in categories.items()}}
    figures.failures = {
        kind: kinds[kind]
        for kind in (
            "wrong exit code",
            "not one 'Error:' line",
            "traceback",
            "culprit not named",
            "database changed",
            "files changed on disk",
            "stored value differs",
        )
    }
    figures.notes = notes
    figures.seconds = timer.seconds
    return figures
