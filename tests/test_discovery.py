"""Finding migration files: names, order, duplicates, ignored and reported files, checksums."""

from __future__ import annotations

import os

import pytest

from vcp_migrate import MigrationFileError
from vcp_migrate.discovery import checksum, scan, usable, without_duplicates

from .conftest import Project


def test_versions_are_ordered_numerically(project: Project) -> None:
    for name in ("10_c.sql", "9_b.sql", "2_a.py", "0011_d.sql"):
        project.write(name, "-- migrate:up\n")
    found = scan(project.dir)
    assert [(m.version, m.name) for m in found.migrations] == [(2, "a"), (9, "b"), (10, "c"), (11, "d")]
    assert found.problems == ()


def test_same_version_with_different_padding_is_a_duplicate_naming_both_files(project: Project) -> None:
    project.write("001_x.sql", "-- migrate:up\n")
    project.write("1_y.py", "def up(c): pass\n")
    found = scan(project.dir)
    with pytest.raises(MigrationFileError) as error:
        without_duplicates(found)
    assert "001_x.sql" in str(error.value) and "1_y.py" in str(error.value)


def test_ignored_files_are_not_reported(project: Project) -> None:
    project.write("001_x.sql", "-- migrate:up\n")
    for name in (
        "__init__.py",
        ".hidden.py",
        ".001_x.sql.swp",
        "001_x.sql~",
        "001_x.py.orig",
        "README.md",
        "notes.txt",
    ):
        project.write(name, "junk")
    (project.dir / "__pycache__").mkdir()
    (project.dir / "__pycache__" / "001_x.cpython-311.pyc").write_bytes(b"\0")
    (project.dir / "archive").mkdir()
    found = scan(project.dir)
    assert [m.path.name for m in found.migrations] == ["001_x.sql"]
    assert found.problems == ()


def test_unmatched_names_are_reported_not_skipped(project: Project) -> None:
    project.write("add_index.sql", "-- migrate:up\n")
    project.write("helpers.py", "")
    project.write("000_zero.sql", "-- migrate:up\n")
    problems = {p.path.name: p.reason for p in scan(project.dir).problems}
    assert set(problems) == {"add_index.sql", "helpers.py", "000_zero.sql"}
    assert "rename it" in problems["add_index.sql"]
    assert "between 1 and" in problems["000_zero.sql"]
    with pytest.raises(MigrationFileError, match="000_zero.sql.*and 2 more; .vcp-migrate validate. lists them"):
        usable(scan(project.dir))


def test_missing_directory_and_file_instead_of_directory(project: Project) -> None:
    with pytest.raises(MigrationFileError, match="does not exist.*check --dir"):
        scan(project.root / "migrtions")
    (project.root / "afile").write_text("")
    with pytest.raises(MigrationFileError, match="is not a directory"):
        scan(project.root / "afile")


def test_link_leaving_the_directory_is_reported_link_inside_is_used(project: Project) -> None:
    outside = project.root / "elsewhere.sql"
    outside.write_text("-- migrate:up\nCREATE TABLE stolen(x);\n")
    os.symlink(outside, project.dir / "001_outside.sql")
    project.write("real.txt", "-- migrate:up\n")
    os.symlink(project.dir / "real.txt", project.dir / "002_inside.sql")
    found = scan(project.dir)
    assert [m.path.name for m in found.migrations] == ["002_inside.sql"]
    assert [(p.path.name, p.kind) for p in found.problems] == [("001_outside.sql", "unreadable")]
    assert "outside the migrations directory" in found.problems[0].reason


def test_checksum_ignores_line_endings_only() -> None:
    assert checksum(b"a\r\nb\r\n") == checksum(b"a\nb\n") == checksum(b"a\rb\r")
    assert checksum(b"a\nb\n") != checksum(b"a\nb \n")
