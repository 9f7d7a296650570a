"""Finding migration files: names, order, duplicates, ignored and reported files, checksums."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vcp_migrate import MigrationFileError
from vcp_migrate.discovery import _read_opened, checksum, scan, usable, without_duplicates

from .conftest import Project, run_cli


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
    with pytest.raises(MigrationFileError, match="does not exist.*check migrations_dir"):
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


@pytest.mark.parametrize("hashed_before", [0, 10**9], ids=["interpreter's sha256", "OpenSSL's sha256"])
def test_checksum_is_sha256_of_the_lf_text_whichever_implementation(hashed_before: int) -> None:
    for data in (b"", b"-- migrate:up\r\nCREATE TABLE t (x);\r\n", bytes(range(256)) * 1000):
        normalised = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        assert checksum(data, hashed_before=hashed_before) == hashlib.sha256(normalised).hexdigest()


def test_a_large_directory_is_read_whole_and_checksummed_as_sha256(project: Project) -> None:
    """Files larger than one read, and more bytes in all than the interpreter's SHA-256 hashes
    before OpenSSL's takes over: each file's bytes and checksum are exactly its content's."""
    texts = {f"{i:03d}_m{i}.sql": f"-- migrate:up\nSELECT '{str(i) * 120_000}';\n" for i in range(1, 5)}
    for name, text in texts.items():
        project.write(name, text)
    found = scan(project.dir)
    assert found.problems == ()
    for migration in found.migrations:
        data = texts[migration.path.name].encode()
        assert migration.source == data
        assert migration.checksum == hashlib.sha256(data).hexdigest()


@contextmanager
def within(seconds: int) -> Iterator[None]:
    """Turn a hang (open() of a named pipe waits for a writer) into a failure."""

    def expire(signum: int, frame: object) -> None:
        # pytest.fail, not TimeoutError: code that catches OSError would swallow that and block again.
        pytest.fail(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def reasons(directory: Path) -> dict[str, str]:
    with within(5):
        found = scan(directory)
    assert [m.path.name for m in found.migrations] == ["001_a.sql"]
    assert {p.kind for p in found.problems} == {"unreadable"}
    return {p.path.name: p.reason for p in found.problems}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_socket_and_directory_are_reported_never_opened(project: Project) -> None:
    project.write("001_a.sql", "-- migrate:up\n")
    os.mkfifo(project.dir / "003_pipe.sql")
    (project.dir / "004_folder.sql").mkdir()
    # A socket's path must stay short (108 bytes), so bind it where it is short and move it in.
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("005_socket.py")
        os.rename("005_socket.py", project.dir / "005_socket.py")
        os.symlink("003_pipe.sql", project.dir / "006_to_pipe.sql")
        found = reasons(project.dir)
    finally:
        server.close()
    assert found == {
        "003_pipe.sql": "is a named pipe (FIFO), not a regular file, so it was not read;"
        " remove it, or start its name with a dot to ignore it",
        "004_folder.sql": "is a directory, not a regular file, so it was not read;"
        " remove it, or start its name with a dot to ignore it",
        "005_socket.py": "is a socket, not a regular file, so it was not read;"
        " remove it, or start its name with a dot to ignore it",
        "006_to_pipe.sql": "is a link to a named pipe (FIFO), not a regular file, so it was not read;"
        " remove it, or start its name with a dot to ignore it",
    }
    with pytest.raises(MigrationFileError, match="003_pipe.sql: is a named pipe.*and 3 more"):
        usable(scan(project.dir))


def test_looping_and_dangling_links_are_reported(project: Project) -> None:
    project.write("001_a.sql", "-- migrate:up\n")
    os.symlink("003_self.sql", project.dir / "003_self.sql")
    os.symlink("005_b.sql", project.dir / "004_a.sql")
    os.symlink("004_a.sql", project.dir / "005_b.sql")
    os.symlink("gone.sql", project.dir / "006_dangling.sql")
    loop = "is a link that loops back on itself; remove it, or point it at a migration file in this directory"
    assert reasons(project.dir) == {
        "003_self.sql": loop,
        "004_a.sql": loop,
        "005_b.sql": loop,
        "006_dangling.sql": "is a link to gone.sql, which does not exist; remove the link or restore its file",
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_file_replaced_after_its_stat_is_not_read(project: Project) -> None:
    first = project.write("001_a.sql", "-- migrate:up\n")
    second = project.write("002_b.sql", "-- migrate:up\n")
    assert _read_opened(first, os.stat(first)) == b"-- migrate:up\n"
    assert _read_opened(first, os.stat(second)) is None
    os.mkfifo(project.dir / "003_pipe.sql")
    with within(5):  # a pipe that took a regular file's place: opened without waiting, then refused
        assert _read_opened(project.dir / "003_pipe.sql", os.stat(first)) is None


def test_versions_are_ascii_digits_only(project: Project) -> None:
    project.write("\u0662_arabic_two.sql", "-- migrate:up\nCREATE TABLE a(x);\n")
    project.write("\uff11_fullwidth_one.sql", "-- migrate:up\nCREATE TABLE b(x);\n")
    found = scan(project.dir)
    assert found.migrations == ()
    assert {(p.path.name, p.kind) for p in found.problems} == {
        ("\u0662_arabic_two.sql", "name"),
        ("\uff11_fullwidth_one.sql", "name"),
    }
    result = project.cli("migrate")
    assert result.exit_code == 1 and "name does not match NNN_name.py or NNN_name.sql" in result.stderr
    assert not project.db.exists() or project.history() == []


def _not_utf8(project: Project, name: bytes, text: str) -> None:
    """Write ``name`` (bytes that are not UTF-8) in the migrations directory, or skip where the
    file system refuses such a name."""
    try:
        with open(os.fsencode(project.dir) + b"/" + name, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        pytest.skip(f"this file system refuses names that are not UTF-8: {exc}")


def test_a_name_that_is_not_utf8_is_invalid_and_every_command_refuses_it_before_changing_anything(
    project: Project,
) -> None:
    """The history stores a migration's file name as text; the name 002_caf\\xe9.sql has none. It
    was applied up to the INSERT of its history row, then 'unexpected UnicodeEncodeError', after
    001 had committed, and up --json said "error": null."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    assert project.cli("up").exit_code == 0
    _not_utf8(project, b"002_caf\xe9.sql", "-- migrate:up\nCREATE TABLE b (x);\n-- migrate:down\nDROP TABLE b;\n")
    project.sql("003_c.sql", "CREATE TABLE c (x);", "DROP TABLE c;")
    (problem,) = scan(project.dir, ignore={"schema.sql"}).problems
    said = (
        "name is not valid UTF-8, so the history could not record it;"
        " rename it (letters, digits and underscores), then run the command again"
    )
    assert (problem.kind, problem.path.name, problem.reason, problem.version) == ("name", "002_caf\udce9.sql", said, 2)
    before = project.digest()
    line = f"Error: migrations/002_caf\\udce9.sql: {said}\n"
    for args in (("up",), ("up", "--to", "1"), ("redo",), ("baseline", "3"), ("rollback",)):
        done = run_cli(project, *args, "--dir", "migrations")
        assert (done.returncode, done.stdout, done.stderr) == (1, "", line), args
    refused = run_cli(project, "up", "--json", "--dir", "migrations")
    assert refused.returncode == 1 and refused.stderr == line
    assert json.loads(refused.stdout)["error"] == line.removeprefix("Error: ").rstrip("\n")
    checked = run_cli(project, "validate", "--dir", "migrations")
    assert checked.returncode == 1 and f"migrations/002_caf\\udce9.sql: {said}\n" in checked.stdout
    assert "Traceback" not in checked.stdout + checked.stderr
    status = run_cli(project, "status", "--dir", "migrations")
    rows = [row.split() for row in status.stdout.splitlines()]
    assert status.returncode == 0 and ["-", "invalid", "002_caf\\udce9"] in rows
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}
    created = project.cli("new", "d")  # its version stays taken: renamed, it is no duplicate
    assert created.exit_code == 0 and (project.dir / "004_d.py").exists(), created.output
    assert project.digest() == before and project.history() == [1]
