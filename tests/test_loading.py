"""Loading migration files: SQL sections, Python modules, and every way a file can be wrong."""

from __future__ import annotations

import os
import time

import pytest

from vcp_migrate import MigrationFileError
from vcp_migrate.discovery import scan
from vcp_migrate.loading import LoadedMigration, PythonStep, SqlStep, load

from .conftest import Project


def load_one(project: Project, name: str, text: str = "", raw: bytes | None = None) -> LoadedMigration:
    project.write(name, text, raw=raw)
    (migration,) = [m for m in scan(project.dir).migrations if m.path.name == name]
    return load(migration)


def test_sql_sections_and_options(project: Project) -> None:
    loaded = load_one(
        project,
        "001_x.sql",
        """
        -- a leading comment is fine
        -- migrate:up transaction:false
        VACUUM;
        -- migrate:down
        SELECT 1; SELECT 2;
        """,
    )
    assert isinstance(loaded.up, SqlStep) and loaded.up == SqlStep(("VACUUM;",), transactional=False)
    assert isinstance(loaded.down, SqlStep) and loaded.down.statements == ("SELECT 1;", "SELECT 2;")
    assert loaded.down.transactional


def test_sql_without_down_loads_with_down_none(project: Project) -> None:
    assert load_one(project, "001_x.sql", "-- migrate:up\nSELECT 1;\n").down is None


def test_sql_bom_is_accepted(project: Project) -> None:
    loaded = load_one(project, "001_x.sql", raw="\ufeff-- migrate:up\nSELECT 1;\n".encode())
    assert isinstance(loaded.up, SqlStep) and loaded.up.statements == ("SELECT 1;",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CREATE TABLE t(x);\n", "has no '-- migrate:up' section"),
        ("SELECT 1;\n-- migrate:up\n", "line 1: SQL before the first"),
        ("-- migrate:up\n-- migrate:up\n", "line 2: a second '-- migrate:up'"),
        ("-- migrate:up transaction:maybe\n", "unknown option 'transaction:maybe'"),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate: down\nDROP TABLE t;\n",
            "line 3: '-- migrate: down' looks like a section marker",
        ),
        ("-- Migrate:Up\n", "looks like a section marker"),
    ],
)
def test_bad_sql_files_name_the_line(project: Project, text: str, message: str) -> None:
    with pytest.raises(MigrationFileError, match=message) as error:
        load_one(project, "001_x.sql", text)
    assert "001_x.sql" in str(error.value)


def test_non_utf8_sql_is_refused(project: Project) -> None:
    with pytest.raises(MigrationFileError, match="is not UTF-8 text"):
        load_one(project, "001_x.sql", raw=b"-- migrate:up\nSELECT '\xff\xfe';\n")


def test_python_module(project: Project) -> None:
    loaded = load_one(project, "001_x.py", "transactional = False\ndef up(connection): pass\ndef down(c): pass\n")
    assert isinstance(loaded.up, PythonStep) and not loaded.up.transactional
    assert loaded.down is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def up(connection)\n    pass\n", r"line 1: (invalid syntax|expected ':')"),
        ("import no_such_module_anywhere\ndef up(c): pass\n", "loading failed at line 1: ModuleNotFoundError"),
        ("x = 1\nraise SystemExit(3)\n", "loading failed at line 2: SystemExit: 3"),
        ("def down(connection): pass\n", "has no up\\(connection\\) function"),
        ("up = 42\n", "up is not a function"),
        ("def up(): pass\n", r"up\(\) must take exactly one argument"),
        ("def up(a, b): pass\n", r"up\(\) must take exactly one argument"),
        ("def up(c): pass\ndef down(a, b): pass\n", r"down\(\) must take exactly one argument"),
        ("transactional = 'no'\ndef up(c): pass\n", "transactional must be True or False"),
    ],
)
def test_bad_python_files_say_what_is_wrong(project: Project, text: str, message: str) -> None:
    with pytest.raises(MigrationFileError, match=message) as error:
        load_one(project, "001_x.py", text)
    assert str(error.value).startswith(str(project.dir / "001_x.py"))


UPS = [
    "def up(connection): pass",
    "def up(): pass",
    "def up(a, b): pass",
    "def up(a=1): pass",
    "def up(a, b=2): pass",
    "def up(*args): pass",
    "def up(a, *args): pass",
    "def up(*, k): pass",
    "def up(*, k=1): pass",
    "def up(a, *, k): pass",
    "def up(a, *, k=1): pass",
    "def up(a, /): pass",
    "def up(a, b, /): pass",
    "def up(a, /, b=1): pass",
    "def up(**kw): pass",
    "def up(a, **kw): pass",
    "def up(a, b, *args, k=3, **kw): pass",
    "def up(a=1, *args, k): pass",
    "up = lambda connection: None",
    "up = lambda: None",
    "import functools\ndef two(a, b): pass\n@functools.wraps(two)\ndef up(*args): pass",
    "import functools\ndef two(a, b): pass\nup = functools.partial(two, 1)",
    "class K:\n    def __call__(self, connection): pass\nup = K()",
    "class K:\n    def __call__(self): pass\nup = K()",
    "class K:\n    def m(self, a, b): pass\nup = K().m",
    "up = print",
]


@pytest.mark.parametrize("text", UPS)
def test_an_up_is_refused_exactly_when_one_argument_cannot_be_bound_to_it(project: Project, text: str) -> None:
    """Plain functions are read from their code object, not through inspect.signature (a tenth of
    the cost): both must give the same answer."""
    import inspect

    namespace: dict[str, object] = {}
    exec(text, namespace)
    try:
        inspect.signature(namespace["up"]).bind(None)  # type: ignore[arg-type]
        refused = False
    except TypeError:
        refused = True
    except ValueError:  # a builtin without a signature: the call decides
        refused = False
    if refused:
        with pytest.raises(MigrationFileError, match=r"up\(\) must take exactly one argument"):
            load_one(project, "001_x.py", text + "\n")
    else:
        assert isinstance(load_one(project, "001_x.py", text + "\n").up, PythonStep)


@pytest.mark.parametrize(
    ("code", "kind", "use", "drop"),
    [
        ("async def up(c):\n    c.execute('CREATE TABLE b (x)')\n", "an async function", "await", "async"),
        ("def up(c):\n    c.execute('CREATE TABLE b (x)')\n    yield\n", "a generator function", "iterate", "yield"),
        (
            "async def up(c):\n    c.execute('CREATE TABLE b (x)')\n    yield\n",
            "an async generator function",
            "iterate",
            "async and yield",
        ),
        (
            "import functools\nasync def _up(c, n): pass\nup = functools.partial(_up, n=1)\n",
            "an async function",
            "await",
            "async",
        ),
        (
            "class Up:\n    def __call__(self, c):\n        yield\nup = Up()\n",
            "a generator function",
            "iterate",
            "yield",
        ),
    ],
)
def test_an_up_whose_call_would_not_run_its_body_is_refused(
    project: Project, code: str, kind: str, use: str, drop: str
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    before = project.digest()
    project.write("002_b.py", code + "def down(c):\n    pass\n")
    for args in (["migrate"], ["migrate", "--dry-run"]):
        result = project.cli(*args)
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: {project.dir / '002_b.py'}: up is {kind}: vcp-migrate calls it and does not {use} it,"
            f" so its body would never run (make it a plain function, without {drop}; nothing was applied)\n"
        )
        assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}


def test_loading_runs_the_current_source_not_stale_bytecode(project: Project) -> None:
    """Same size, same mtime, different code: the new code must be what loads."""
    path = project.write("001_x.py", "VALUE = 1\ndef up(c): return VALUE\n")
    first = load(scan(project.dir).migrations[0])
    stat = path.stat()
    path.write_text("VALUE = 2\ndef up(c): return VALUE\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load(scan(project.dir).migrations[0])
    assert isinstance(first.up, PythonStep) and isinstance(second.up, PythonStep)
    assert (first.up.function(None), second.up.function(None)) == (1, 2)  # type: ignore[arg-type]
    assert not (project.dir / "__pycache__").exists()


def test_same_file_name_in_two_directories_does_not_clash(project: Project) -> None:
    other = project.root / "other"
    other.mkdir()
    project.write("001_x.py", "def up(c): return 'first'\n")
    (other / "001_x.py").write_text("def up(c): return 'second'\n")
    time.sleep(0)
    a, b = load(scan(project.dir).migrations[0]), load(scan(other).migrations[0])
    assert isinstance(a.up, PythonStep) and isinstance(b.up, PythonStep)
    assert (a.up.function(None), b.up.function(None)) == ("first", "second")  # type: ignore[arg-type]


DATACLASS_MIGRATION = """
from __future__ import annotations

import dataclasses
import sys
from typing import ClassVar


@dataclasses.dataclass(frozen=True)
class Symbol:
    TABLE: ClassVar[str] = "symbols"
    name: str
    lot: int = 100


SEEN = __name__ in sys.modules


def up(connection):
    connection.execute(f"CREATE TABLE {Symbol.TABLE} (name TEXT, lot INTEGER)")
    for symbol in (Symbol("AAPL"), Symbol("BRK.A", lot=1)):
        connection.execute(f"INSERT INTO {Symbol.TABLE} VALUES (?, ?)", dataclasses.astuple(symbol))


def down(connection):
    connection.execute(f"DROP TABLE {Symbol.TABLE}")
"""


def test_a_python_migration_may_define_a_dataclass_and_leaves_no_module_behind(project: Project) -> None:
    """@dataclass looks its class's module up in sys.modules for every field annotated with a
    string (all of them under ``from __future__ import annotations``): a migration that defined one
    failed to load with "'NoneType' object has no attribute '__dict__'". Its module is in
    sys.modules while its top level runs, and taken out again, also when loading fails."""
    import sys

    from vcp_migrate import MigrationManager

    project.write("001_symbols.py", DATACLASS_MIGRATION)
    project.write("002_broken.py", "import sys\nNAME = __name__\nraise RuntimeError(NAME in sys.modules)\n")
    manager = MigrationManager(project.db, project.dir)
    with pytest.raises(MigrationFileError, match="loading failed at line 3: RuntimeError: True"):
        manager.migrate()
    assert project.history() == [] and project.tables() == set()
    (project.dir / "002_broken.py").unlink()
    assert [run.version for run in manager.migrate()] == [1]
    assert project.query("SELECT name, lot FROM symbols") == [("AAPL", 100), ("BRK.A", 1)]
    assert project.history() == [1] and not [name for name in sys.modules if name.startswith("vcp_migration_")]
    loaded = load(scan(project.dir).migrations[0])
    assert isinstance(loaded.up, PythonStep) and loaded.up.function.__globals__["SEEN"] is True
    assert "vcp_migration_1_symbols" not in sys.modules
    assert manager.validate(roundtrip=True) == [] and [run.version for run in manager.rollback()] == [1]
    assert project.history() == [] and project.tables() == set()


# -- the SQL file format: markers, literals and line ends as SQLite reads them -----------------

ODD_SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


@pytest.mark.parametrize("separator", ODD_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in ODD_SEPARATORS])
def test_odd_line_separators_in_a_literal_arrive_byte_identical(project: Project, separator: str) -> None:
    """str.splitlines() breaks at these; a literal holding one must still store it, not '\\n'."""
    value = f"first{separator}second{separator}-- migrate:down{separator}"
    project.write(
        "001_notes.sql",
        raw=f"-- migrate:up\nCREATE TABLE notes (body TEXT);\nINSERT INTO notes VALUES ('{value}');\n"
        "-- migrate:down\nDROP TABLE notes;\n".encode(),
    )
    project.manager().migrate()
    assert project.query("SELECT CAST(body AS BLOB) FROM notes") == [(value.encode(),)]


def test_a_marker_inside_a_block_comment_does_not_split_the_file(project: Project) -> None:
    project.write(
        "001_kept.sql",
        """
        -- migrate:up
        /* The down, kept here for reference:
        -- migrate:down
        DROP TABLE kept;
        */
        CREATE TABLE kept (x);
        INSERT INTO kept VALUES ('up ran');
        """,
    )
    loaded = load(scan(project.dir).migrations[0])
    assert loaded.down is None
    project.manager().migrate()
    assert project.query("SELECT x FROM kept") == [("up ran",)]


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_marker_inside_a_literal_or_quoted_name_does_not_split_the_file(project: Project, quote: str) -> None:
    body = "first line\n-- migrate:down\nthird line"
    project.write(
        "001_notes.sql",
        raw=f"-- migrate:up\nCREATE TABLE notes ({quote}{body}{quote} TEXT);\n"
        f"INSERT INTO notes VALUES ('{body}');\n-- migrate:down\nDROP TABLE notes;\n".encode(),
    )
    project.manager().migrate()
    assert project.query("SELECT * FROM notes") == [(body,)]
    assert project.columns("notes") == [body]


NEAR_MISSES = [
    "-- migrate:dwon",
    "-- migrate:",
    "-- migrate:downgrade",
    "-- +migrate Down",
    "-- +goose Down",
    "-- +goose Up",
    "-- +migrate Up",
    "--migrate:down",
    "-- MIGRATE:DOWN",
    "  --  migrate : down",
]


@pytest.mark.parametrize("marker", NEAR_MISSES)
def test_a_near_miss_marker_is_an_error_and_nothing_is_applied(project: Project, marker: str) -> None:
    """Taken as a comment, it would run the down as part of up (here: dropping the table)."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write(
        "002_kept.sql",
        f"-- migrate:up\nCREATE TABLE kept (x);\nINSERT INTO kept VALUES (1);\n{marker}\nDROP TABLE kept;\n",
    )
    with pytest.raises(MigrationFileError) as error:
        project.manager().migrate()
    assert str(error.value).startswith(
        f"{project.dir / '002_kept.sql'}: line 4: {marker.strip()!r} looks like a section marker but is not one"
        " (write '-- migrate:up' or '-- migrate:down' at the start of a line;"
        " other tools' markers such as '-- +goose Down' are not read"
    )
    assert project.tables() == set() and project.history() == []


@pytest.mark.parametrize("between", [" ", "\u2028", "\x85", "\x0c"])
def test_a_marker_that_does_not_begin_its_line_is_an_error(project: Project, between: str) -> None:
    """Some editors show U+2028 or \\x85 as a line break; SQLite and this file format do not."""
    project.write("001_x.sql", raw=f"-- migrate:up\nCREATE TABLE t (x);{between}-- migrate:down\n".encode())
    with pytest.raises(MigrationFileError, match="line 2: '-- migrate:down' looks like a section marker but does not"):
        project.manager().migrate()
    assert project.tables() == set()


def test_line_numbers_count_only_lf_crlf_and_cr(project: Project) -> None:
    raw = "-- migrate:up\r\nINSERT INTO t VALUES ('a\u2028b\x85c');\rSELECT 1;\n-- migrate:dwon\n"
    with pytest.raises(MigrationFileError, match="001_x.sql: line 4: '-- migrate:dwon'"):
        load_one(project, "001_x.sql", raw=raw.encode())


@pytest.mark.parametrize(
    ("name", "raw", "said"),
    [
        (
            "002_nul.sql",
            b"-- migrate:up\nCREATE TABLE b (x);\nINSERT INTO b VALUES ('a\x00b');\n",
            "which SQLite cannot run (remove it; write X'00' for a zero byte in a blob;",
        ),
        (
            "002_nul.py",
            b"def up(c):\r\n    c.execute('CREATE TABLE b (x)')\r\n    pass\x00\n",
            "which Python source cannot contain (remove it;",
        ),
    ],
)
def test_nul_character_is_an_error_naming_file_and_line(project: Project, name: str, raw: bytes, said: str) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    before = project.digest()
    project.write(name, raw=raw)
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {project.dir / name}: line 3: holds a NUL character, {said} nothing was applied)\n"
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}


def test_cr_only_line_ends_load(project: Project) -> None:
    loaded = load_one(
        project,
        "001_x.sql",
        raw=b"-- the table\r-- migrate:up\rCREATE TABLE t (x); -- made\r\r-- migrate:down\rDROP TABLE t;\r",
    )
    assert isinstance(loaded.up, SqlStep) and loaded.up.statements == ("CREATE TABLE t (x);",)
    assert isinstance(loaded.down, SqlStep) and loaded.down.statements == ("DROP TABLE t;",)


def test_sql_that_sqlite_would_read_as_part_of_a_comment_is_an_error(project: Project) -> None:
    """SQLite ends a -- comment at \\n only: after '-- make it\\r', it would skip CREATE TABLE."""
    with pytest.raises(MigrationFileError, match="001_x.sql: line 3: SQLite would read this line as part of"):
        load_one(project, "001_x.sql", raw=b"-- migrate:up\n-- make it\rCREATE TABLE t (x);\n")


@pytest.mark.parametrize(
    "declaration",
    ["# coding: utf-7", "# -*- coding: latin-1 -*-", "#!/usr/bin/env python\n# vim: set fileencoding=cp1252 :"],
)
def test_python_declaring_another_encoding_is_refused(project: Project, declaration: str) -> None:
    # compile() of the bytes would obey the declaration, so what runs would not be what is shown
    project.write("001_a.py", f"{declaration}\ndef up(c): pass\n# +AAo-open('PWNED', 'w').write('ran')\n")
    encoding = declaration.split("=" if "=" in declaration else ": ")[-1].split()[0]
    with pytest.raises(MigrationFileError) as raised:
        load(scan(project.dir).migrations[0])
    assert str(raised.value) == (
        f"{project.dir / '001_a.py'}: declares its encoding as {encoding}, but migrations are read as UTF-8"
        " (save it as UTF-8 and drop the declaration)"
    )
    assert not (project.root / "PWNED").exists()


@pytest.mark.parametrize("declaration", ["# coding: utf-8", "# -*- coding: UTF8 -*-", "# coding=utf_8"])
def test_python_declaring_utf8_or_with_a_bom_loads(project: Project, declaration: str) -> None:
    project.write("001_a.py", raw=f"\ufeff{declaration}\ndef up(c):\n    return 'é'\n".encode())
    loaded = load(scan(project.dir).migrations[0])
    assert isinstance(loaded.up, PythonStep) and loaded.up.function(None) == "é"  # type: ignore[arg-type]


def test_non_utf8_python_is_refused(project: Project) -> None:
    project.write("001_a.py", raw=b"def up(c):\n    return '\xe9'\n")
    with pytest.raises(MigrationFileError) as raised:
        load(scan(project.dir).migrations[0])
    assert str(raised.value) == f"{project.dir / '001_a.py'}: is not UTF-8 text (byte 23) (save it as UTF-8)"


# -- hazard acknowledgements: '-- vcp:allow NAME' in SQL, allow_hazards in Python ---------------

KNOWN = (
    "pragma-in-transaction, vacuum-in-transaction, not-null-without-default, drop-column, drop-table,"
    " rename-referenced, rebuild-parent, empty-down"
)


def test_sql_acknowledgements_are_read_from_any_line_comment_outside_literals(project: Project) -> None:
    loaded = load_one(
        project,
        "001_x.sql",
        """
        -- vcp:allow rebuild-parent
        -- migrate:up
          -- vcp:allow drop-table, drop-column
        CREATE TABLE t (x); -- vcp:allow rename-referenced
        -- migrate:down
        -- vcp:allow	not-null-without-default,vacuum-in-transaction
        DROP TABLE t;
        """,
    )
    assert loaded.allowed_hazards == {
        "rebuild-parent",
        "drop-table",
        "drop-column",
        "rename-referenced",
        "not-null-without-default",
        "vacuum-in-transaction",
    }
    assert isinstance(loaded.up, SqlStep) and len(loaded.up.statements) == 1


@pytest.mark.parametrize(
    "body",
    [
        "SELECT '\n-- vcp:allow drop-table\n';",
        'CREATE TABLE "\n-- vcp:allow drop-table\n" (x);',
        "/*\n-- vcp:allow drop-table\n*/ SELECT 1;",
        "SELECT 1; -- see below -- vcp:allow drop-table",
    ],
    ids=["string literal", "quoted name", "block comment", "inside another comment"],
)
def test_an_acknowledgement_inside_a_literal_or_a_block_comment_does_not_count(project: Project, body: str) -> None:
    loaded = load_one(project, "001_x.sql", f"-- migrate:up\n{body}\n")
    assert loaded.allowed_hazards == frozenset()


def test_no_acknowledgement_is_an_empty_set(project: Project) -> None:
    assert load_one(project, "001_x.sql", "-- migrate:up\nSELECT 1;\n").allowed_hazards == frozenset()
    assert load_one(project, "002_x.py", "def up(c): pass\n").allowed_hazards == frozenset()


ALLOW_NEAR_MISSES = [
    "-- vcp: allow drop-table",
    "--vcp:allow drop-table",
    "--  vcp:allow drop-table",
    "-- VCP:ALLOW drop-table",
    "-- vcp:alow drop-table",
    "-- vcp:allowed drop-table",
    "-- vcp-allow drop-table",
    "-- vcp allow drop-table",
    "-- vcp:allow,drop-table",
    "-- vcp:ignore drop-table",
]


@pytest.mark.parametrize("comment", ALLOW_NEAR_MISSES)
def test_a_near_miss_acknowledgement_is_an_error_naming_the_line(project: Project, comment: str) -> None:
    """Taken as a comment, it would silently not acknowledge anything."""
    with pytest.raises(MigrationFileError) as error:
        load_one(project, "001_x.sql", f"-- migrate:up\nCREATE TABLE t (x);\n{comment}\nDROP TABLE t;\n")
    assert str(error.value) == (
        f"{project.dir / '001_x.sql'}: line 3: {comment!r} looks like a hazard acknowledgement but is not one"
        " (write '-- vcp:allow NAME', naming the hazards separated by commas or spaces)"
    )


def test_comments_that_only_mention_the_tool_are_fine(project: Project) -> None:
    loaded = load_one(project, "001_x.sql", "-- migrate:up\n-- vcp-migrate runs this with foreign keys off\n")
    assert loaded.allowed_hazards == frozenset()


def test_an_acknowledgement_naming_nothing_is_an_error(project: Project) -> None:
    with pytest.raises(MigrationFileError, match=r"001_x.sql: line 2: '-- vcp:allow' names no hazard"):
        load_one(project, "001_x.sql", "-- migrate:up\n-- vcp:allow  \nSELECT 1;\n")


def test_an_unknown_hazard_name_is_an_error_naming_it_and_the_known_ones(project: Project) -> None:
    with pytest.raises(MigrationFileError) as error:
        load_one(project, "001_x.sql", "-- migrate:up\n-- vcp:allow drop-table rebuild-parnet\nSELECT 1;\n")
    assert str(error.value) == (
        f"{project.dir / '001_x.sql'}: line 2: '-- vcp:allow' names an unknown hazard 'rebuild-parnet';"
        f" the known hazards are {KNOWN} (fix the name)"
    )


@pytest.mark.parametrize(
    "value",
    ['{"rebuild-parent"}', '["rebuild-parent", "drop-table"]', '("rebuild-parent",)', 'frozenset({"drop-table"})'],
)
def test_python_allow_hazards_as_a_set_list_tuple_or_frozenset(project: Project, value: str) -> None:
    loaded = load_one(project, "001_x.py", f"allow_hazards = {value}\ndef up(c): pass\n")
    assert loaded.allowed_hazards == frozenset(eval(value))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "allow_hazards = {'rebuild-parent', 'drop-tables'}\n",
            f"allow_hazards names an unknown hazard 'drop-tables'; the known hazards are {KNOWN} (fix the name)",
        ),
        (
            "allow_hazards = 'rebuild-parent'\n",
            "allow_hazards must be a set, list or tuple of hazard names, not a str"
            " (write allow_hazards = {'rebuild-parent'})",
        ),
        (
            "allow_hazards = {1}\n",
            "allow_hazards must hold hazard names (strings) only (write allow_hazards = {'rebuild-parent'})",
        ),
        (
            "allowed_hazards = {'rebuild-parent'}\n",
            "defines allowed_hazards, which is not read; hazards are acknowledged with allow_hazards"
            " (write allow_hazards = {'rebuild-parent'})",
        ),
        (
            "ALLOW_HAZARD = {'rebuild-parent'}\n",
            "defines ALLOW_HAZARD, which is not read; hazards are acknowledged with allow_hazards"
            " (write allow_hazards = {'rebuild-parent'})",
        ),
    ],
    ids=["unknown name", "a string", "not strings", "allowed_hazards", "ALLOW_HAZARD"],
)
def test_bad_python_allow_hazards_say_what_is_wrong(project: Project, text: str, message: str) -> None:
    with pytest.raises(MigrationFileError) as error:
        load_one(project, "001_x.py", f"{text}def up(c): pass\n")
    assert str(error.value) == f"{project.dir / '001_x.py'}: {message}"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("002_rebuild.sql", "-- vcp:allow rebuild-parnet\n-- migrate:up\nCREATE TABLE b (x);\n"),
        ("002_rebuild.py", "allow_hazards = {'rebuild-parnet'}\ndef up(c):\n    c.execute('CREATE TABLE b (x)')\n"),
    ],
)
def test_migrate_refuses_a_file_with_an_unknown_hazard_name_and_changes_nothing(
    project: Project, name: str, text: str
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("migrate").exit_code == 0
    before = project.digest()
    project.write(name, text)
    result = project.cli("migrate")
    assert result.exit_code == 1
    source = "line 1: '-- vcp:allow'" if name.endswith(".sql") else "allow_hazards"
    assert result.stderr == (
        f"Error: {project.dir / name}: {source} names an unknown hazard 'rebuild-parnet';"
        f" the known hazards are {KNOWN} (fix the name; nothing was applied)\n"
    )
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}
