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


def test_null_bytes_in_python_are_refused(project: Project) -> None:
    with pytest.raises(MigrationFileError, match="001_x.py"):
        load_one(project, "001_x.py", raw=b"def up(c): pass\n\x00\n")


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
