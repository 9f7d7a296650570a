"""new: the next number, a snake_case name, never overwriting, a file that validates at once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vcp_migrate import MigrationFileError, MigrationManager, UsageError, discovery, loading, scaffold
from vcp_migrate.scaffold import normalise_name

from .conftest import Project


def test_first_file_and_next_number(project: Project) -> None:
    path = project.manager().new("add_pnl_column")
    assert path == project.dir / "001_add_pnl_column.py"
    assert project.manager().new("second", sql=True) == project.dir / "002_second.sql"
    assert project.manager().validate() == []
    project.manager().migrate()
    assert project.history() == [1, 2]
    project.manager().rollback(to=0)


def test_width_already_in_use_and_history_versions_count(project: Project) -> None:
    project.sql("0007_a.sql", "SELECT 1;", "SELECT 1;")
    assert project.manager().new("b").name == "0008_b.py"
    project.manager().migrate()
    for path in project.dir.iterdir():
        path.unlink()
    assert project.manager().new("c").name == "009_c.py"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("AddPnlColumn", "add_pnl_column"),
        ("add pnl-column!", "add_pnl_column"),
        ("  x  ", "x"),
        ("v2Index", "v2_index"),
        ("ÉTÉ données", "été_données"),
        ("E\u0301te\u0301", "été"),  # decomposed accents, composed (NFC)
        ("名前", "名前"),
        ("ÉtéDonnées", "été_données"),
        ("नमस्ते दुनिया", "नमस्ते_दुनिया"),  # vowel signs are combining marks, not letters
    ],
)
def test_names_become_snake_case(given: str, expected: str) -> None:
    assert normalise_name(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "!!!", "../escape", "a/b", "a\\b", ".."])
def test_bad_names_are_usage_errors(project: Project, bad: str) -> None:
    with pytest.raises(UsageError):
        project.manager().new(bad)
    assert list(project.dir.iterdir()) == []


def test_never_overwrites(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcp_migrate import scaffold

    existing = project.write("001_a.py", "keep me")
    monkeypatch.setattr(scaffold, "next_version", lambda versions: 1)
    monkeypatch.setattr(scaffold, "normalise_name", lambda name: "a")
    with pytest.raises(MigrationFileError, match="001_a.py: already exists.*nothing was overwritten"):
        project.manager().new("a")
    assert existing.read_text() == "keep me"


def test_creates_the_directory_but_not_its_parents(project: Project) -> None:
    from vcp_migrate import MigrationManager

    assert MigrationManager(project.db, project.root / "fresh").new("x").exists()
    with pytest.raises(MigrationFileError, match="does not exist"):
        MigrationManager(project.db, project.root / "no" / "such").new("x")


def test_a_unicode_name_is_discovered_and_migrates(project: Project) -> None:
    path = project.manager().new("ÉTÉ données", sql=True)
    assert path.name == "001_été_données.sql"
    path.write_text("-- migrate:up\nCREATE TABLE été(x);\n-- migrate:down\nDROP TABLE été;\n", encoding="utf-8")
    assert [(row["version"], row["name"]) for row in project.manager().status()] == [(1, "été_données")]
    project.manager().migrate()
    assert project.tables() == {"été"} and project.history() == [1]
    result = project.cli("status", "--json")
    assert json.loads(result.stdout)[0]["name"] == "été_données"


def test_a_name_too_long_for_a_file_name_is_a_usage_error(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    result = project.cli("new", "x" * 300)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "Error: migration name is too long: 300 bytes in UTF-8, at most 248 fit"
        " (a file name holds 255 bytes, '002_' and '.py' included; shorten it)\n"
    )
    # 2 bytes a letter: 124 fit beside '002_' and '.py', 125 do not
    assert "250 bytes in UTF-8, at most 248 fit" in project.cli("new", "é" * 125).stderr
    assert "at most 247 fit" in project.cli("new", "é" * 124, "--sql").stderr
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "schema.sql"]
    assert project.digest() == before and project.history() == [1]
    assert len(project.manager().new("é" * 124).name.encode()) == 255


@pytest.mark.parametrize("name", ["Migrate down old rows", "migrate up", "VCP allowed IPs", "vcp allow", "vcp-allow"])
@pytest.mark.parametrize("sql", [False, True])
def test_a_name_like_a_marker_still_makes_a_valid_file(project: Project, name: str, sql: bool) -> None:
    # The SQL file's first line is a comment made from the name: '-- Migrate down old rows.'
    # looked like a section marker, and '-- Vcp allowed ips.' like a hazard acknowledgement.
    project.manager().new(name, sql=sql)
    result = project.cli("validate")
    assert result.exit_code == 0, result.output
    project.manager().migrate()
    assert project.history() == [1] and project.tables() == set()


# A name that begins like a section marker or an acknowledgement ('migrate down', 'VCP allowed'),
# or like neither, and what may follow; and any text.
_NAMES = st.one_of(
    st.builds(
        "{}{}{}{}".format,
        st.sampled_from(["migrate", "Migrate", "MIGRATE", "vcp", "VCP", "+goose", "a"]),
        st.sampled_from(["", " ", "_", "-", ": ", "+"]),
        st.sampled_from(["up", "Down", "allow", "allowed", "é"]),
        st.text(max_size=10),
    ),
    st.text(max_size=30),
)


@settings(max_examples=150, deadline=None)
@given(_NAMES)
def test_any_accepted_name_makes_files_that_load_and_validate(name: str) -> None:
    try:
        snake = normalise_name(name)
        scaffold.file_name(1, snake, width=3, sql=True)
    except UsageError:
        assume(False)
    for sql in (True, False):
        with tempfile.TemporaryDirectory() as root:
            manager = MigrationManager(Path(root, "test.db"), Path(root, "migrations"), dump_schema=False)
            path = manager.new(name, sql=sql)
            directory = discovery.scan(path.parent)
            assert directory.problems == () and [file.path for file in directory.migrations] == [path]
            loaded = loading.load(directory.migrations[0])  # as up loads it
            assert loaded.down is not None and loaded.allowed_hazards == frozenset()
            assert manager.validate() == []
