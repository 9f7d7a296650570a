"""new: the next number, a snake_case name, never overwriting, a file that validates at once."""

from __future__ import annotations

import pytest

from vcp_migrate import MigrationFileError, UsageError
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
