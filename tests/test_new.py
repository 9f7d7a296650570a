"""new: the next number, a snake_case name, never overwriting, a file that validates at once."""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vcp_migrate import MigrationFileError, MigrationManager, UsageError, discovery, loading, scaffold
from vcp_migrate.scaffold import normalise_name

from .conftest import Project, console_script, file_size_limit, run_cli

if TYPE_CHECKING:
    from multiprocessing.synchronize import Barrier


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


def _new_at_once(database: str, folder: str, name: str, barrier: Barrier) -> None:
    barrier.wait(timeout=60)
    MigrationManager(database, folder).new(name)


def test_news_started_together_get_distinct_versions(project: Project) -> None:
    # Each reads the directory, takes the highest version plus one and creates its file: without a
    # lock, two that read before either created got one version (001_a_0.py and 001_a_1.py).
    context = multiprocessing.get_context("forkserver")  # fork() from a process with threads may deadlock
    for round in range(4):
        barrier = context.Barrier(8)
        processes = [
            context.Process(target=_new_at_once, args=(str(project.db), str(project.dir), f"n_{round}_{i}", barrier))
            for i in range(8)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=120)
        assert [process.exitcode for process in processes] == [0] * 8
    names = sorted(path.name for path in project.dir.iterdir())  # no lock file left beside them
    assert [name.partition("_")[0] for name in names] == [f"{version:03d}" for version in range(1, 33)]
    assert project.manager().validate() == []
    assert not project.db.exists()


def test_waits_for_another_new_a_bounded_time(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    held = os.open(project.dir, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another new holds it, from reading the folder to creating its file
        started = time.monotonic()
        with pytest.raises(MigrationFileError) as raised:
            project.manager(lock_timeout=0.3).new("b")
        assert time.monotonic() - started >= 0.3
        assert str(raised.value) == (
            f"{project.dir}: another vcp-migrate new held this folder for 0.3s"
            " (nothing was created; run it again once the other has finished)"
        )
        result = project.cli("new", "b", env={"VCP_MIGRATE_LOCK_TIMEOUT": "0"})
        assert result.exit_code == 1 and result.stderr == f"Error: {raised.value}".replace("0.3s", "0s") + "\n"
        assert sorted(path.name for path in project.dir.iterdir()) == ["001_a.sql"]
    finally:
        os.close(held)
    assert project.manager(lock_timeout=0).new("b").name == "002_b.py"


@pytest.mark.parametrize("sql", [False, True])
def test_a_failed_write_leaves_no_file(project: Project, sql: bool) -> None:
    # The file is created before anything is written: on a full disk (here: a file size limit of
    # 0) it was left empty, and the next new took the version after it.
    kept = project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;").read_bytes()
    extension = "sql" if sql else "py"
    result = run_cli(project, "new", "b", *(["--sql"] if sql else []), preexec_fn=file_size_limit(0))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"Error: {project.dir / f'002_b.{extension}'}: cannot be written: File too large"
        " (nothing was created; check the space left on its device)\n"
    )
    assert sorted(path.name for path in project.dir.iterdir()) == ["001_a.sql"]
    assert (project.dir / "001_a.sql").read_bytes() == kept and not project.db.exists()
    assert project.manager().new("b", sql=sql).name == f"002_b.{extension}"


def test_a_file_system_without_locks_still_gets_its_file_whole(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where nothing can be locked (flock: ENOLCK, some network file systems), new goes on
    unlocked, as it did before it wrote through a partial file, whose lock then failed it."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    before = set(os.listdir("/proc/self/fd"))
    created = project.manager().new("b")
    assert sorted(path.name for path in project.dir.iterdir()) == ["001_a.sql", "002_b.py"]
    assert created.read_text() == scaffold.template("b", sql=False)
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_partial_file_a_killed_new_left_is_removed_by_the_next_and_nothing_else(project: Project) -> None:
    """A new killed (or a power loss) between writing its partial file and naming it left the
    hidden partial file in the migrations folder for good."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    left = project.dir / ".vcp-migrate-new.20261208T010203.456Z.partial"
    fresh = project.dir / ".vcp-migrate-new.20261208T010203.457Z-2.partial"  # another new's, being written
    others = [
        project.dir / ".vcp-migrate-new.notes.partial",
        project.dir / "vcp-migrate-new.20261208T010203.456Z.partial",
    ]
    for path in (left, fresh, *others):
        path.write_text("-- migrate:up\n")
    os.utime(left, (time.time() - 3600, time.time() - 3600))
    for other in others:
        os.utime(other, (time.time() - 3600, time.time() - 3600))
    planted = project.dir / ".vcp-migrate-new.20261208T010203.458Z.partial"
    planted.mkdir()  # not a file: never ours
    os.utime(planted, (0, 0))
    project.manager().new("b")
    assert sorted(path.name for path in project.dir.iterdir()) == sorted(
        ["001_a.sql", "002_b.py", fresh.name, planted.name, *(other.name for other in others)]
    )


def test_the_file_is_synced_before_it_has_its_name_and_its_folder_after(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file was created under its name and written without a sync: a power loss right after
    new could leave an empty or cut-short migration under that name."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    created = project.dir / "002_b.py"
    synced: list[tuple[tuple[int, int], bool]] = []  # what was synced, and whether the file had its name then
    real = os.fsync

    def recording(fd: int) -> None:
        found = os.fstat(fd)
        synced.append(((found.st_dev, found.st_ino), created.exists()))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    assert project.manager().new("b") == created
    file, folder = ((found.st_dev, found.st_ino) for found in (created.stat(), project.dir.stat()))
    assert synced == [(file, False), (folder, True)]
    assert created.read_text(encoding="utf-8") == scaffold.template("b", sql=False)
    assert sorted(os.listdir(project.dir)) == ["001_a.sql", "002_b.py"]  # no partial file left
    assert not project.db.exists()


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        (errno.EPERM, None),  # FAT: no hard links; the file is created in place, as before
        (errno.ENAMETOOLONG, "cannot be created: File name too long (check the directory and the name)"),
    ],
    ids=["no hard links", "a name too long"],
)
def test_a_file_system_that_cannot_link_the_file(
    project: Project, monkeypatch: pytest.MonkeyPatch, refusal: int, error: str | None
) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", refused)
    created = project.dir / "002_b.sql"
    if error is None:
        assert project.manager().new("b", sql=True) == created
        assert created.read_text(encoding="utf-8") == scaffold.template("b", sql=True)
        assert sorted(os.listdir(project.dir)) == ["001_a.sql", "002_b.sql"]
    else:
        with pytest.raises(MigrationFileError) as raised:
            project.manager().new("b", sql=True)
        assert str(raised.value) == f"{created}: {error}"
        assert sorted(os.listdir(project.dir)) == ["001_a.sql"]  # no partial file left
    assert not project.db.exists()


def test_a_failed_write_leaves_no_folder_it_created(project: Project) -> None:
    fresh = project.root / "fresh"
    result = run_cli(project, "new", "b", "--dir", str(fresh), preexec_fn=file_size_limit(0))
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {fresh / '001_b.py'}: cannot be written: File too large"
        " (nothing was created; check the space left on its device)\n"
    )
    assert not fresh.exists() and sorted(path.name for path in project.root.iterdir()) == ["migrations"]


def test_a_link_to_nothing_is_not_an_existing_file(project: Project) -> None:
    project.dir.rmdir()
    project.dir.symlink_to(project.root / "gone")
    result = project.cli("new", "x")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {project.dir}: is a symbolic link to '{project.root / 'gone'}', which does not exist"
        " (point it to the migrations folder, or remove it; nothing was created)\n"
    )
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations"] and project.dir.is_symlink()
    (project.root / "real").mkdir()
    project.dir.unlink()
    project.dir.symlink_to("real")  # a link to a folder is the folder
    assert project.manager().new("x").name == "001_x.py" and (project.root / "real" / "001_x.py").exists()


def test_the_version_of_a_file_that_cannot_be_used_is_taken_too(project: Project) -> None:
    """A link to nothing named 002_... and a folder named 003_...: new made 002 beside them, a
    version used twice once the link is mended."""
    project.sql("001_t.sql", "CREATE TABLE t(a);", "DROP TABLE t;")
    (project.dir / "002_linked.py").symlink_to("nowhere")
    (project.dir / "003_x.sql").mkdir()
    created = project.manager().new("second")
    assert created.name == "004_second.py"


def test_a_name_given_as_bytes_that_are_not_utf8_makes_a_file_name_that_is(project: Project) -> None:
    """Discovery refuses a file name that is not UTF-8; new never makes one: a byte that is not
    UTF-8 reaches it as a lone surrogate, which is no letter, so it becomes an underscore."""
    import subprocess

    done = subprocess.run(
        [console_script(), "new", b"caf\xe9 au lait", "--dir", "migrations"], cwd=project.root, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert os.listdir(os.fsencode(project.dir)) == [b"001_caf_au_lait.py"]
    assert not project.db.exists()


@pytest.mark.parametrize("in_history", [False, True], ids=["a file", "the history"])
def test_no_version_above_the_highest_a_migration_can_have(project: Project, in_history: bool) -> None:
    """After a file or a history row of version 2**63 - 1, new created 9223372036854775808_x.py,
    which status then listed as invalid; it refuses now, and creates nothing."""
    highest = 2**63 - 1
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    if in_history:
        project.manager().migrate()
        with closing(sqlite3.connect(project.db)) as connection, connection:
            connection.execute("UPDATE vcp_migrations SET version = ?", (highest,))
    else:
        project.sql(f"{highest}_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    before = sorted(path.name for path in project.dir.iterdir())
    result = project.cli("new", "x")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: {project.dir}: the next version, {highest + 1}, is above the highest a migration can have"
        f" ({highest}) (renumber the migration of the highest version; nothing was created)\n"
    )
    assert sorted(path.name for path in project.dir.iterdir()) == before
