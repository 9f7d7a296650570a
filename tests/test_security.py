"""Security: new stays in its directory, discovery stays in its tree, names reach SQL only as
parameters, backups are no more readable than the database, and code kept in a database runs
only with rollback --from-history."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from vcp_migrate import UsageError

from .conftest import Project

PLANTED = b"import pathlib\npathlib.Path('PWNED').write_text('ran')\ndef up(c): pass\ndef down(c): pass\n"


def plant_code_in_history(project: Project) -> None:
    """Version 2's file is gone; its history row holds code that leaves a mark if it ever runs."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.write(
        "002_b.py", "def up(c):\n    c.execute('CREATE TABLE b(x)')\ndef down(c):\n    c.execute('DROP TABLE b')\n"
    )
    project.manager().migrate()
    (project.dir / "002_b.py").unlink()
    connection = sqlite3.connect(project.db)
    connection.execute("UPDATE vcp_migrations SET source = ? WHERE version = 2", (PLANTED,))
    connection.commit()
    connection.close()


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("validate",),
        ("validate", "--roundtrip"),
        ("migrate",),
        ("migrate", "--dry-run"),
        ("rollback",),
        ("rollback", "--dry-run"),
        ("redo",),
        ("repair", "--yes"),
        ("schema",),
        ("backups",),
    ],
)
def test_code_kept_in_the_database_never_runs_without_from_history(project: Project, args: tuple[str, ...]) -> None:
    plant_code_in_history(project)
    project.cli(*args)
    assert not (project.root / "PWNED").exists()


def test_from_history_is_the_way_it_runs(project: Project) -> None:
    plant_code_in_history(project)
    result = project.cli("rollback", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert (project.root / "PWNED").exists()  # what the option is for: it trusts the database
    # what ran was shown whole first, top-level code included, not only def down
    assert "pathlib.Path('PWNED').write_text('ran')" in result.stdout


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["rollback", "dry run"])
def test_from_history_without_a_terminal_or_yes_refuses_and_runs_nothing(
    project: Project, dry_run: tuple[str, ...]
) -> None:
    plant_code_in_history(project)
    before = project.digest()
    result = project.cli("rollback", "--from-history", *dry_run)
    assert result.exit_code == 1
    assert "pathlib.Path('PWNED').write_text('ran')" in result.stdout  # shown, so it can be reviewed
    assert "there is no terminal to confirm it (review the source shown above and pass --yes;" in result.stderr
    assert not (project.root / "PWNED").exists()
    assert project.digest() == before and project.history() == [1, 2]
    assert not (project.root / "test.db.backups").exists()


@pytest.mark.parametrize(("answer", "ran"), [("n\n", False), ("y\n", True)])
def test_from_history_on_a_terminal_asks_first(
    project: Project, monkeypatch: pytest.MonkeyPatch, answer: str, ran: bool
) -> None:
    plant_code_in_history(project)
    monkeypatch.setattr("vcp_migrate.cli.asking.interactive", lambda: True)
    result = project.cli("rollback", "--from-history", input=answer)
    assert "Run it? [y/N]" in result.stdout
    assert (project.root / "PWNED").exists() is ran
    if ran:
        assert result.exit_code == 0 and project.history() == [1]
    else:
        assert result.exit_code == 1 and "was not confirmed (nothing was rolled back)" in result.stderr
        assert project.history() == [1, 2]


def test_from_history_through_the_api_shows_the_whole_source_to_confirm(project: Project) -> None:
    plant_code_in_history(project)
    seen: list[tuple[str, str]] = []
    from vcp_migrate import PlanError

    with pytest.raises(PlanError, match="was not confirmed"):
        project.manager().rollback(from_history=True, confirm=lambda title, code: bool(seen.append((title, code))))
    assert seen == [(f"source of 002_b.py, as kept in the history of {project.db} (all of it runs)", PLANTED.decode())]
    assert not (project.root / "PWNED").exists() and project.history() == [1, 2]


def test_names_and_versions_reach_sql_only_as_parameters(project: Project) -> None:
    hostile = "x'); DROP TABLE a; --"
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql(f"002_{hostile}.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate()
    assert project.tables() == {"a", "b"}
    assert project.query("SELECT name FROM vcp_migrations WHERE version = 2") == [(hostile,)]
    project.manager().rollback()
    assert project.tables() == {"a"}


@pytest.mark.parametrize("name", ["../outside", "sub/dir", "..", "/etc/cron.d/x", "a\\b"])
def test_new_cannot_write_outside_the_directory(project: Project, name: str) -> None:
    with pytest.raises(UsageError):
        project.manager().new(name)
    assert list(project.root.rglob("*")) == [project.dir]


def test_new_does_not_follow_a_link_planted_where_its_file_goes(project: Project) -> None:
    target = project.root / "victim.txt"
    target.write_text("precious")
    (project.dir / "001_x.py").symlink_to(target)  # a link named like the next file: its version is taken
    assert project.manager().new("x").name == "002_x.py"
    assert target.read_text() == "precious" and (project.dir / "001_x.py").is_symlink()


def test_from_history_never_runs_code_a_coding_declaration_hides(project: Project) -> None:
    # Read as UTF-8 the last line is a comment; read as UTF-7, as compile() would from the bytes,
    # +AAo- is a line break and open() runs.
    hidden = b"# coding: utf-7\ndef up(c): pass\ndef down(c): pass\n# note+AAo-open('PWNED', 'w').write('ran')\n"
    plant_code_in_history(project)
    connection = sqlite3.connect(project.db)
    connection.execute("UPDATE vcp_migrations SET source = ? WHERE version = 2", (hidden,))
    connection.commit()
    connection.close()
    before = project.digest()
    result = project.cli("rollback", "--from-history", "--yes")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.db}:history/002_b.py: declares its encoding as utf-7, but migrations are read as UTF-8"
        " (save it as UTF-8 and drop the declaration; nothing was rolled back)\n"
    )
    assert not (project.root / "PWNED").exists()
    assert project.digest() == before and project.history() == [1, 2]


def test_from_history_shows_escape_sequences_instead_of_obeying_them(project: Project) -> None:
    # \x1b[1A\x1b[2K moves up a line and erases it: printed raw, the open() above would vanish.
    hiding = b"open('PWNED', 'w').write('ran')\n# \x1b[1A\x1b[2K\ndef up(c): pass\r\ndef down(c):\r\tpass\n"
    plant_code_in_history(project)
    connection = sqlite3.connect(project.db)
    connection.execute("UPDATE vcp_migrations SET source = ? WHERE version = 2", (hiding,))
    connection.commit()
    connection.close()
    result = project.cli("rollback", "--from-history", "--yes")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\\t" not in result.stdout and "\\r" not in result.stdout
    assert "open('PWNED', 'w').write('ran')\n# \\x1b[1A\\x1b[2K\ndef up(c): pass\ndef down(c):\n" in result.stdout
    assert (project.root / "PWNED").exists() and project.history() == [1]


def test_from_history_gives_the_api_the_source_as_it_is(project: Project) -> None:
    hiding = "# \x1b[2K\ndef up(c): pass\ndef down(c):\n\tpass\n"
    plant_code_in_history(project)
    connection = sqlite3.connect(project.db)
    connection.execute("UPDATE vcp_migrations SET source = ? WHERE version = 2", (b"\xef\xbb\xbf" + hiding.encode(),))
    connection.commit()
    connection.close()
    seen: list[str] = []
    project.manager().rollback(from_history=True, confirm=lambda title, code: bool(seen.append(code)) or True)
    assert seen == [hiding] and project.history() == [1]


@pytest.mark.parametrize("end", ["-journal", "-wal", "-shm"])
def test_a_link_planted_beside_the_database_is_named_and_its_target_left_alone(project: Project, end: str) -> None:
    """SQLite refuses to open a database whose journal, WAL or shared-memory file is a link; the
    error said to check the path and its permissions, both fine. It names the link now."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    if end != "-journal":
        with closing(sqlite3.connect(project.db)) as connection:
            connection.execute("PRAGMA journal_mode = WAL")
    victim = project.root / "victim.txt"
    victim.write_text("not SQLite's")
    link = project.root / f"test.db{end}"
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    before = project.digest()
    for command in ("status", "current", "validate --json", "migrate", "rollback"):
        result = project.cli(*command.split())
        assert (result.exit_code, result.stdout) == (1, ""), (command, result.output)
        assert result.stderr == (
            f"Error: {project.db}: cannot be opened: {link} beside it is a symbolic link, which SQLite refuses to"
            " open or write through (remove the link: SQLite never makes its journal, WAL or shared-memory file"
            " one; nothing was changed)\n"
        )
    assert victim.read_text() == "not SQLite's" and link.is_symlink()
    assert project.digest() == before and not (project.root / "test.db.backups").exists()
    link.unlink()
    assert project.cli("migrate").exit_code == 0 and project.history() == [1, 2]
