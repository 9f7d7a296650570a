"""Backups taken before changes: when one is taken, kept or cleaned up, how they are listed and
pruned, and that taking one never follows a link or leaves half a copy. Restoring: test_restore.py."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from vcp_migrate import Backup, DatabaseError, MigrationFailed, Observer
from vcp_migrate.backups import folder

from .conftest import (
    ENV_VARS,
    Project,
    add_ballast,
    as_unprivileged,
    blobs,
    console_script,
    file_size_limit,
    interrupt_once_copied,
    on_a_terminal,
    run_cli,
)
from .conftest import three_trades as three


def test_backup_before_changing_an_existing_database_only(project: Project) -> None:
    three(project)
    project.manager().migrate(1)  # created the database: nothing to back up
    assert project.manager().backups() == []
    project.manager().migrate()
    (backup,) = project.manager().backups()
    assert backup.version == 1 and backup.path.parent == folder(project.db)
    assert backup.size == backup.path.stat().st_size > 0
    copy = sqlite3.connect(backup.path)
    assert copy.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    assert project.manager().migrate() == [] and len(project.manager().backups()) == 1  # nothing to do: no backup
    project.manager().rollback()
    assert [b.version for b in project.manager().backups()] == [3, 1]
    project.manager().redo()
    assert [b.version for b in project.manager().backups()] == [2, 3, 1]


def test_cli_reports_path_and_size_and_lists_backups(project: Project) -> None:
    three(project)
    project.cli("migrate", "--to", "1")
    result = project.cli("migrate")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Backed up to {folder(project.db)}/") and "at version 1)" in result.stdout
    listing = project.cli("backups")
    assert listing.exit_code == 0 and "1 backup(s)" in listing.stdout
    data = json.loads(project.cli("backups", "--json").stdout)
    assert [(d["version"], d["size"] > 0) for d in data] == [(1, True)]
    # Piped: a line each, the file's whole name (a table 80 columns wide cut it), which restore takes.
    (backup,) = project.manager().backups()
    lines = listing.stdout.splitlines()
    assert lines[0] == f"Backups of {project.db} in {folder(project.db)}, newest first:"
    assert lines[1].startswith(backup.taken_at + "  v1  ") and lines[1].endswith("  " + backup.path.name)
    name = lines[1].split()[-1]
    # On a terminal 60 columns wide: the table, the file's name folded but whole.
    command = [str(console_script()), "backups", "--db", str(project.db), "--dir", str(project.dir)]
    code, drawn = on_a_terminal(command, project.root, columns=60)
    rows = [line for line in drawn.replace("\r\n", "\n").splitlines() if line.startswith("│")]
    assert code == 0 and "".join(line.split("│")[4].strip() for line in rows) == name
    assert project.cli("restore", name, "--yes").exit_code == 0


def test_keep_newest_n_and_no_backup(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    three(project)
    project.manager().migrate(1)
    for _ in range(4):
        project.manager(keep_backups=2).migrate()
        project.manager(keep_backups=2).rollback(to=1)
    assert len(project.manager().backups()) == 2
    project.manager(backup=False).migrate()
    assert len(project.manager().backups()) == 2
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\nbackup = false\n")
    project.cli("rollback")
    assert len(project.manager().backups()) == 2
    project.cli("rollback", "--backup")
    assert len(project.manager().backups()) == 3
    with pytest.raises(Exception, match="keep_backups must be 1 or more"):
        project.manager(keep_backups=0)


def test_backup_is_no_more_readable_than_the_database(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.db.chmod(0o600)
    project.manager().migrate()
    (backup,) = project.manager().backups()
    assert stat.S_IMODE(backup.path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(folder(project.db).stat().st_mode) == 0o700


def test_failed_backup_leaves_nothing_and_changes_nothing(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    folder(project.db).write_text("a file where the backups folder should be")
    before = project.digest()
    with pytest.raises(DatabaseError, match="backup into .* failed.*pass backup=False; nothing was changed"):
        project.manager().migrate()
    assert project.digest() == before and project.history() == [1]


def test_backup_names_sort_by_time(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)
    time.sleep(0.01)
    project.manager().migrate(3)
    names = [b.path.name for b in project.manager().backups()]
    assert names == sorted(names, reverse=True)
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-v2\.[0-9a-f]{12}\.db", names[0])


def tree(project: Project) -> dict[str, bytes]:
    return {str(p.relative_to(project.root)): p.read_bytes() for p in sorted(project.root.rglob("*")) if p.is_file()}


def test_a_run_that_changes_nothing_leaves_no_backup_and_no_schema_file(project: Project) -> None:
    three(project)
    project.manager(dump_schema=False).migrate(1)
    project.sql("002_pnl.sql", "ALTER TABLE trades ADD COLUMN pnl REAL;\nSELECT * FROM nowhere;")
    before = tree(project)
    result = project.cli("migrate")
    assert result.exit_code == 1 and "Backed up to" in result.stdout
    said = result.stdout.splitlines()[-1]  # the line naming it is not left standing alone
    assert said.startswith("Deleted that backup again: the run changed nothing (") and "-v1." in said
    assert tree(project) == before
    assert not folder(project.db).exists()


def test_a_run_that_changed_something_before_failing_keeps_its_backup(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.sql("003_idx.sql", "SELECT * FROM nowhere;")
    with pytest.raises(Exception, match="statement 1 failed"):
        project.manager().migrate()
    assert project.history() == [1, 2]
    assert [b.version for b in project.manager().backups()] == [1]
    assert "-- version: 2" in (project.dir / "schema.sql").read_text()


def test_a_backup_killed_mid_copy_is_never_listed_and_is_cleaned_up(project: Project) -> None:
    """Found by the crash campaign: a backup is copied under a .partial name first."""
    three(project)
    project.manager().migrate(1)
    folder(project.db).mkdir(mode=0o700)
    leftover = folder(project.db) / "20260101T000000.000Z-v1.db.partial"
    leftover.write_bytes(b"half a copy")
    assert project.manager().backups() == []
    project.manager().migrate()
    assert not leftover.exists()
    assert [b.version for b in project.manager().backups()] == [1]


def test_a_partial_backup_another_run_is_still_writing_is_left_alone(project: Project) -> None:
    """Starting a backup removed every partial file, taking each for one a killed run left: two
    overlapping runs (one stalled past a server's lease) deleted each other's copy under way."""
    three(project)
    project.manager().migrate(1)
    folder(project.db).mkdir(mode=0o700)
    abandoned = folder(project.db) / "20260101T000000.000Z-v1.db.partial"
    abandoned.write_bytes(b"half a copy")
    Path(f"{abandoned}-journal").write_bytes(b"its journal")
    writing = folder(project.db) / "20260101T000001.000Z-v1.db.partial"
    writing.write_bytes(b"a copy under way")
    Path(f"{writing}-journal").write_bytes(b"its journal")
    held = os.open(writing, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the run writing it holds it, until it ends or dies
        project.manager().migrate(2)
        assert writing.read_bytes() == b"a copy under way" and Path(f"{writing}-journal").exists()
        assert not abandoned.exists() and not Path(f"{abandoned}-journal").exists()
    finally:
        os.close(held)  # that run is gone: its file is abandoned now
    project.manager().migrate()
    assert not writing.exists() and not Path(f"{writing}-journal").exists()
    assert project.history() == [1, 2, 3]
    assert [b.version for b in project.manager().backups()] == [2, 1]


def test_ctrl_c_during_the_backup_stops_its_copy_within_a_step_and_leaves_nothing(project: Project) -> None:
    """The backup's copy ran as one C call: Ctrl-C waited for the whole database to be copied
    (about 2 s a GB here), then left the backups folder it had made."""
    three(project)
    project.manager().migrate(1)
    blobs(project.db, 256)
    before = hashlib.sha256(project.db.read_bytes()).digest()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "migrate", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen(command, cwd=project.root, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stderr = interrupt_once_copied(process, folder(project.db), 64_000_000)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr == f"Error: interrupted while backing up {project.db}: nothing was changed, no backup kept\n"
    assert not folder(project.db).exists()
    assert hashlib.sha256(project.db.read_bytes()).digest() == before and project.history() == [1]


def test_ctrl_c_once_the_backup_is_named_leaves_none_to_be_restored_by_mistake(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the folder was synced, after the backup got its name: 'no backup kept' was
    said and one was kept, the newest, which a restore then picked."""
    three(project)
    project.manager().migrate(1)
    synced = os.fsync

    def then_ctrl_c(fd: int) -> None:
        synced(fd)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", then_ctrl_c)
    with pytest.raises(KeyboardInterrupt, match="nothing was changed, no backup kept"):
        project.manager().migrate()
    assert not folder(project.db).exists() and project.history() == [1]


NON_TRANSACTIONAL = {
    "004_fill.sql": (
        "-- migrate:up transaction:false\nINSERT INTO trades (symbol) VALUES ('MSFT');\nSELECT * FROM nowhere;\n"
        "-- migrate:down\n"
    ),
    "004_fill.py": (
        "transactional = False\n"
        "def up(c):\n    c.execute(\"INSERT INTO trades (symbol) VALUES ('MSFT')\")\n    raise RuntimeError('boom')\n"
        "def down(c):\n    pass\n"
    ),
}


NOTHING_CHANGED = {
    "004_first_fails.sql": "-- migrate:up transaction:false\nINSERT INTO nowhere VALUES (1);\n-- migrate:down\n",
    "004_python.py": (
        "def up(c):\n    c.execute(\"INSERT INTO trades (symbol) VALUES ('MSFT')\")\n    raise RuntimeError('boom')\n"
    ),
    "004_pragma.sql": "-- migrate:up\nPRAGMA foreign_keys = ON;\nINSERT INTO nowhere VALUES (1);\n-- migrate:down\n",
}


@pytest.mark.parametrize("name", sorted(NON_TRANSACTIONAL))
def test_a_failed_non_transactional_migration_keeps_its_backup_and_says_so(project: Project, name: str) -> None:
    three(project)
    project.manager().migrate()
    project.write(name, NON_TRANSACTIONAL[name])
    result = project.cli("migrate")
    assert result.exit_code == 1
    # what it did before failing stays, without a history row: the backup is the way back
    assert project.query("SELECT symbol FROM trades ORDER BY id") == [("AAPL",), ("MSFT",)]
    assert project.history() == [1, 2, 3]
    (backup,) = project.manager().backups()
    assert backup.version == 3
    assert f"Warning: {backup.path}: kept" in result.stderr
    copy = sqlite3.connect(backup.path)
    assert copy.execute("SELECT symbol FROM trades").fetchall() == [("AAPL",)]
    copy.close()


@pytest.mark.parametrize("name", sorted(NOTHING_CHANGED))
def test_a_failed_run_that_changed_nothing_leaves_no_backup(project: Project, name: str) -> None:
    """A step run outside our transaction, or Python code, that failed before changing anything."""
    three(project)
    project.manager(dump_schema=False).migrate()
    project.write(name, NOTHING_CHANGED[name])
    before = tree(project)
    result = project.cli("migrate", "--no-dump")
    assert result.exit_code == 1 and "Backed up to" in result.stdout and "Warning" not in result.stderr
    assert "Deleted that backup again" in result.stdout
    assert tree(project) == before and not folder(project.db).exists()


def test_a_failed_run_that_changed_only_a_setting_keeps_its_backup(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.write(
        "004_wal.sql", "-- migrate:up transaction:false\nPRAGMA journal_mode = WAL;\nSELECT * FROM nowhere;\n"
    )
    result = project.cli("migrate")
    assert result.exit_code == 1 and project.query("PRAGMA journal_mode") == [("wal",)]
    (backup,) = project.manager().backups()
    assert f"Warning: {backup.path}: kept" in result.stderr


def _undeletable(backup: Path) -> None:
    """Put a folder that is not empty where ``backup`` was: no one, root included, can unlink it."""
    backup.unlink()
    backup.mkdir()
    (backup / "kept").write_text("a file in the way")


class _Undeletable(Observer):
    """Makes the backup the run took undeletable as soon as it is taken; with ``raising``, then stops the run."""

    def __init__(self, *, raising: bool) -> None:
        self.raising = raising
        self.taken: list[Path] = []
        self.warnings: list[str] = []
        self.discards: list[Path] = []

    def backed_up(self, backup: Backup) -> None:
        self.taken.append(backup.path)
        _undeletable(backup.path)
        if self.raising:
            raise ValueError("the observer broke")

    def discarded(self, backup: Backup) -> None:
        self.discards.append(backup.path)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize("raising", [False, True], ids=["the migration failed", "the observer raised"])
def test_a_backup_that_cannot_be_deleted_again_is_a_warning_after_the_run_s_own_error(
    project: Project, raising: bool
) -> None:
    """A failed run deletes the backup it took; when that failed too, its error (IsADirectoryError,
    PermissionError) was raised in place of the run's own, which was lost."""
    three(project)
    project.manager().migrate()
    project.sql("004_bad.sql", "INSERT INTO nowhere VALUES (1);", "SELECT 1;")
    before = project.digest()
    observer = _Undeletable(raising=raising)
    said = "the observer broke" if raising else "004_bad.sql: statement 1 failed: no such table: nowhere"
    with pytest.raises(ValueError if raising else MigrationFailed, match=said):
        project.manager(observer=observer).migrate()
    (taken,) = observer.taken
    assert observer.warnings == [
        f"{taken}: the backup this run took was left, not deleted: Is a directory"
        " (the run changed nothing: delete it by hand)"
    ]
    assert observer.discards == []  # not said to be deleted
    assert project.digest() == before and project.history() == [1, 2, 3] and project.tables() == {"trades"}
    assert list(folder(project.db).iterdir()) == [taken] and taken.is_dir()


def test_on_the_command_line_the_run_s_error_is_reported_and_the_backup_left_is_named(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vcp_migrate.cli.progress import Progress

    three(project)
    project.manager().migrate()
    project.sql("004_bad.sql", "INSERT INTO nowhere VALUES (1);", "SELECT 1;")
    before = project.digest()
    taken: list[Path] = []
    shown = Progress.backed_up

    def undeletable(self: Progress, backup: Backup) -> None:
        shown(self, backup)
        taken.append(backup.path)
        _undeletable(backup.path)

    monkeypatch.setattr(Progress, "backed_up", undeletable)
    result = project.cli("migrate")
    assert result.exit_code == 1, result.output
    (backup,) = taken
    assert result.stderr == (
        f"Warning: {backup}: the backup this run took was left, not deleted: Is a directory"
        " (the run changed nothing: delete it by hand)\n"
        f"Error: {project.dir / '004_bad.sql'}: statement 1 failed: no such table: nowhere (nothing was applied)\n"
    )
    assert "Deleted that backup again" not in result.stdout
    assert project.digest() == before and project.history() == [1, 2, 3]
    assert list(folder(project.db).iterdir()) == [backup] and backup.is_dir()


def test_backups_folder_that_is_a_link_is_refused_and_not_followed(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "20260101T000000.000Z-v1.db.partial"
    precious.write_bytes(b"not ours")
    folder(project.db).symlink_to(elsewhere)
    before = project.digest()
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {project.db}: backup into {folder(project.db)} failed: it is a symbolic link, which is never"
        " followed (remove it, or pass --no-backup; nothing was changed)"
    )
    assert precious.read_bytes() == b"not ours" and os.listdir(elsewhere) == [precious.name]
    assert project.digest() == before and project.history() == [1]
    with pytest.raises(DatabaseError, match="is a symbolic link"):
        project.manager().backups()


def test_only_partial_backups_we_named_are_cleaned_up_and_links_are_left(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    folder(project.db).mkdir(mode=0o700)
    outside = project.root / "outside.db"
    outside.write_bytes(b"not ours")
    link = folder(project.db) / "20260101T000000.000Z-v1.db.partial"
    link.symlink_to(outside)
    theirs = folder(project.db) / "notes.partial"
    theirs.write_text("someone's notes")
    project.manager().migrate()
    assert link.is_symlink() and outside.read_bytes() == b"not ours"
    assert theirs.read_text() == "someone's notes"
    assert [b.version for b in project.manager().backups()] == [1] and project.history() == [1, 2, 3]


def test_a_backup_that_fills_the_disk_leaves_no_folder_and_changes_nothing(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    add_ballast(project.db)
    before = project.digest()
    result = run_cli(project, "migrate", preexec_fn=file_size_limit(200_000))
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {project.db}: backup into {folder(project.db)} failed: ")
    assert result.stderr.rstrip().endswith("(free space, fix permissions, or pass --no-backup; nothing was changed)")
    assert not os.path.lexists(folder(project.db))
    assert project.digest() == before and project.history() == [1]


def test_a_folder_without_locks_leaves_no_empty_file_named_as_a_backup(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup's file is made under its final name and locked before it takes a partial one: a
    file system that cannot lock (flock: ENOLCK) left an empty file named as a backup, which
    'backups' listed and 'restore' chose as the newest."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)
    (kept,) = project.manager().backups()
    real = fcntl.flock

    def no_locks(fd: int, operation: int) -> None:
        if os.path.dirname(os.readlink(f"/proc/self/fd/{fd}")) == str(folder(project.db)):
            raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks)
    before = project.digest()
    with pytest.raises(DatabaseError, match="backup into .* failed"):
        project.manager().migrate()
    monkeypatch.undo()
    assert project.digest() == before and project.history() == [1, 2]
    assert sorted(folder(project.db).iterdir()) == [kept.path]
    assert project.manager().backups() == [kept]


def test_a_file_named_like_a_backup_in_other_digits_is_neither_listed_nor_pruned(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.manager(keep_backups=1).migrate()
    arabic = "".join(chr(0x660 + int(digit)) for digit in "20200101")  # Arabic-Indic digits
    foreign = folder(project.db) / f"{arabic}T000000.000Z-v1.db"  # not a name vcp-migrate gives
    foreign.write_bytes(b"someone else's file")
    project.manager(keep_backups=1).rollback(to=1)
    assert [backup.path.name for backup in project.manager().backups()] == sorted(
        p.name for p in folder(project.db).iterdir() if p != foreign
    )
    assert foreign.read_bytes() == b"someone else's file"


def test_backup_dir_from_the_command_line_and_the_configuration(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    shared = project.root / "shared"
    assert project.cli("up", "--to", "2", "--backup-dir", str(shared)).exit_code == 0
    listed = project.cli("backups", "--backup-dir", str(shared), "--json")
    (backup,) = json.loads(listed.stdout)
    assert backup["version"] == 1 and Path(backup["file"]).parent == shared
    assert Path(backup["file"]).name.startswith(f"{project.db.name}.") and not folder(project.db).exists()
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nbackup_dir = "shared"\n')
    assert project.cli("up").exit_code == 0
    assert len(json.loads(project.cli("backups", "--json").stdout)) == 2
    restored = project.cli("restore", "--yes")
    assert restored.exit_code == 0 and project.history() == [1, 2]


def test_every_name_of_a_database_keeps_its_backups_in_one_folder(project: Project) -> None:
    """Backups live beside the database file itself, links resolved, as its run lock does: a run
    through a link of a link and one through the real name see the same backups, and
    --keep-backups counts them together."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate(1)
    (project.root / "links").mkdir()
    first, second = project.root / "links" / "one.db", project.root / "links" / "two.db"
    first.symlink_to(project.db)
    second.symlink_to(first)
    through = run_cli(project, "migrate", "--db", str(second))  # a later --db wins
    assert through.returncode == 0, through.stderr
    assert f"Backed up to {folder(project.db)}/" in through.stdout
    assert not (project.root / "links" / "two.db.backups").exists()
    assert folder(second) == folder(first) == folder(project.db)
    back = run_cli(project, "rollback", "--keep-backups", "1")
    assert back.returncode == 0, back.stderr
    listed = run_cli(project, "backups", "--db", str(first), "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 1


def test_in_a_shared_folder_every_name_of_a_database_has_one_set_of_backups(project: Project) -> None:
    """Named after the name they were taken through, backups via a link and via the real name were
    two sets: each listing, restore and rotation saw one."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    link, shared = project.root / "link.db", project.root / "shared"
    link.symlink_to(project.db)
    assert run_cli(project, "rollback", "--db", str(link), "--backup-dir", str(shared)).returncode == 0
    assert run_cli(project, "migrate", "--backup-dir", str(shared)).returncode == 0
    names = sorted(os.listdir(shared))
    assert len(names) == 2 and all(name.startswith(f"{project.db.name}.") for name in names)  # the file's own name
    for name in (project.db, link):
        listed = run_cli(project, "backups", "--db", str(name), "--backup-dir", str(shared), "--json")
        assert [backup["version"] for backup in json.loads(listed.stdout)] == [1, 2]
    kept = run_cli(project, "rollback", "--db", str(link), "--backup-dir", str(shared), "--keep-backups", "1")
    assert kept.returncode == 0 and len(os.listdir(shared)) == 1  # rotated as one set


def test_a_partial_backup_a_killed_run_left_in_a_shared_folder_is_removed_by_the_next(project: Project) -> None:
    """In a database's own folder, the next backup removed them; in a shared one they stayed for
    ever. Only the partial files of the database whose lock the run holds are removed."""
    from vcp_migrate.backups import tag

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate(1)
    shared = project.root / "shared"
    shared.mkdir()
    ours = f"{project.db.name}.20261207T010203.456Z-v1.{tag(project.db)}.db.partial"
    theirs = f"other.db.20261207T010203.456Z-v1.{tag(project.root / 'other.db')}.db.partial"
    for name in (ours, ours + "-journal", theirs, theirs + "-journal"):
        (shared / name).write_bytes(b"left by a run killed mid-copy")
    assert run_cli(project, "migrate", "--backup-dir", str(shared)).returncode == 0
    left = sorted(os.listdir(shared))
    assert [name for name in left if name.endswith(("partial", "journal"))] == [theirs, theirs + "-journal"]
    assert project.history() == [1, 2]


def test_rotation_takes_what_sqlite_left_beside_a_backup_with_it(project: Project) -> None:
    """A restore killed while it read a backup of a WAL database leaves its -wal and -shm beside
    it; once rotation deleted the backup, they stayed for ever."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)  # backs up version 1
    (oldest,) = project.manager().backups()
    for sidecar in ("-wal", "-shm"):
        Path(f"{oldest.path}{sidecar}").write_bytes(b"left by a killed run")
    elsewhere = project.root / "not-ours"
    elsewhere.write_bytes(b"keep me")
    os.remove(f"{oldest.path}-shm")
    os.symlink(elsewhere, f"{oldest.path}-shm")  # a link there is never followed, nor deleted
    assert project.cli("up", "--keep-backups", "1").exit_code == 0  # backs up version 2, rotates out version 1
    assert [backup.version for backup in project.manager().backups()] == [2]
    assert not os.path.exists(f"{oldest.path}-wal") and os.path.islink(f"{oldest.path}-shm")
    assert elsewhere.read_bytes() == b"keep me"


def test_in_a_shared_folder_a_database_whose_name_holds_a_line_break_has_its_backups(project: Project) -> None:
    """A backup in a shared folder is named after the database file: one named 'nl\\nx.db' failed
    every run that took a backup with an unexpected AssertionError, after the copy (left behind,
    never listed, so never pruned nor restored), and 'backups' listed none. A partial copy a
    killed run left under such a name is removed by the next backup, as any other."""
    from contextlib import closing

    from vcp_migrate.backups import tag
    from vcp_migrate.printable import printable

    database = project.root / "nl\nx.db"
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    shared = project.root / "shared"
    shared.mkdir()
    leftover = shared / f"{database.name}.20261207T010203.456Z-v1.{tag(database)}.db.partial"
    run = ["--db", str(database), "--backup-dir", str(shared)]
    assert run_cli(project, "migrate", "--to", "1", *run).returncode == 0
    leftover.write_bytes(b"left by a run killed mid-copy")
    done = run_cli(project, "migrate", *run)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert f"Backed up to {shared}/nl\\nx.db.2" in done.stdout
    [backup] = os.listdir(shared)  # the partial copy removed
    assert backup.startswith("nl\nx.db.2") and backup.endswith(f"-v1.{tag(database)}.db")
    listed = run_cli(project, "backups", *run).stdout.splitlines()
    assert " v1 " in listed[1] and listed[1].endswith(f"  {printable(backup)}") and "nl\\nx.db.2" in listed[1]
    assert listed[2:] == ["1 backup(s)"]
    as_json = json.loads(run_cli(project, "backups", "--json", *run).stdout)
    assert [(item["file"], item["version"]) for item in as_json] == [(str(shared / backup), 1)]
    restored = run_cli(project, "restore", "--yes", *run)
    assert restored.returncode == 0, restored.stderr
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]


def test_an_old_backup_rotation_cannot_delete_is_a_warning_not_a_failure(project: Project) -> None:
    """Rotation runs once the change is committed: an old backup it could not delete (another
    user's in a shared folder, an immutable file) made a migrate that had applied its migration exit 1
    with 'unexpected PermissionError'."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr to make a file that cannot be deleted")
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)  # backs up version 1
    project.manager().rollback()  # backs up version 2
    older, old = sorted(backup.path for backup in project.manager().backups())
    if subprocess.run(["chattr", "+i", str(older)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i needs root and the right to make a file immutable")
    try:
        result = project.cli("migrate", "--keep-backups", "1")
    finally:
        subprocess.run(["chattr", "-i", str(older)], check=True)
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (
        f"Warning: {older}: this old backup was kept, not deleted in rotation: Operation not permitted"
        " (delete it by hand, or check the folder's permissions)\n"
    )
    assert result.stdout.splitlines()[-1].startswith("Applied 2 migration(s) in ")
    assert project.history() == [1, 2, 3]
    newest = [backup.path for backup in project.manager().backups()]
    assert len(newest) == 2 and older in newest and old not in newest


def test_a_database_name_too_long_for_its_backups_names_says_to_shorten_it(project: Project) -> None:
    """In a shared folder a backup's name is the database's file name lengthened by its time,
    version and tag: past the file system's limit the error said 'free space, fix permissions'."""
    three(project)
    project.db = project.root / ("d" * 215 + ".db")
    project.manager().migrate(1)
    before = project.digest()
    (project.root / "shared").mkdir()
    result = project.cli("migrate", "--backup-dir", str(project.root / "shared"))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {project.db}: backup into {project.root / 'shared'} failed: ")
    assert "File name too long" in result.stderr and result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith(
        "(the database's file name is too long to name its backups after it: shorten it, or pass --no-backup;"
        " nothing was changed)"
    )
    assert project.digest() == before and project.history() == [1]
    assert os.listdir(project.root / "shared") == []


def test_a_backups_folder_swapped_for_a_link_during_the_backup_writes_through_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is checked, and its partial file created through its descriptor; SQLite then
    opened the partial file by its path. Anyone who can write the database's directory could swap
    the folder for a link to a folder of theirs between the two, where a hard link to someone's
    database bore the partial file's name: the backup was copied over that database."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)  # the backups folder exists, with a backup of version 1
    victim = project.root / "other.db"
    with closing(sqlite3.connect(victim)) as connection:
        connection.execute("CREATE TABLE precious (x)")
        connection.execute("INSERT INTO precious VALUES ('keep me')")
        connection.commit()
    kept = victim.read_bytes()
    theirs, moved = project.root / "theirs", project.root / "moved"
    theirs.mkdir()
    real_connect = sqlite3.connect

    def swapping(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        path = Path(str(database))
        if path.name.endswith(".partial") and not moved.exists():  # between the check and SQLite's open
            os.link(victim, theirs / path.name)
            folder(project.db).rename(moved)
            folder(project.db).symlink_to(theirs)
        return real_connect(database, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", swapping)
    before, earlier = project.digest(), sorted(os.listdir(folder(project.db)))
    result = project.cli("migrate")
    monkeypatch.undo()
    assert victim.read_bytes() == kept
    assert result.exit_code == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (
        f"Error: {project.db}: backup into {folder(project.db)} failed: it was swapped for a symbolic link while"
        " the backup was taken (remove it, or pass --no-backup; nothing was changed)\n"
    )
    assert [name for name in os.listdir(theirs) if not name.endswith(".partial")] == []
    assert project.digest() == before and project.history() == [1, 2]
    assert sorted(os.listdir(moved)) == earlier  # its partial file removed, through the folder's descriptor


def test_a_backups_folder_swapped_for_a_link_during_the_run_is_a_warning_once_committed(project: Project) -> None:
    """Moved to a bigger disk while a migration ran, a link left in its place: rotation, after the
    commit, found the link and raised, so a migrate that had applied its migration exited 1."""
    three(project)
    project.manager().migrate(1)
    moved = project.root / "bigger" / folder(project.db).name
    moved.parent.mkdir()
    project.write(
        "002_b.py",
        f"""
        import os

        def up(connection):
            os.rename({str(folder(project.db))!r}, {str(moved)!r})
            os.symlink({str(moved)!r}, {str(folder(project.db))!r})
            connection.execute("CREATE TABLE b (x)")

        def down(connection):
            connection.execute("DROP TABLE b")
        """,
    )
    (project.dir / "002_pnl.sql").unlink()
    result = project.cli("migrate", "--to", "2")
    assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (
        f"Warning: {folder(project.db)}: old backups were not rotated: it is a symbolic link, which is never"
        " followed (replace it by a folder, or remove it)\n"
    )
    assert result.stdout.splitlines()[-1].startswith("Applied 1 migration(s) in ")
    assert project.history() == [1, 2] and "b" in project.tables()
    (backup,) = os.listdir(moved)  # the backup taken before, where the folder went
    assert backup.endswith(".db") and "-v1." in backup


def test_a_backups_folder_that_cannot_be_read_is_an_error_that_says_so(project: Project) -> None:
    """An unreadable folder was "unexpected PermissionError ... report it", a database path under
    a file "unexpected NotADirectoryError"; the listing changes nothing either way."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    backups = project.root / "test.db.backups"
    before = sorted(path.name for path in backups.iterdir())
    backups.chmod(0)
    try:
        command = [str(console_script()), "backups", "--db", str(project.db), "--dir", str(project.dir)]
        result = subprocess.run(as_unprivileged(command), cwd=project.root, capture_output=True, text=True, timeout=60)
    finally:
        backups.chmod(0o700)
    assert result.returncode == 1 and result.stdout == ""
    assert (
        result.stderr
        == f"Error: {backups}: cannot be read: Permission denied (check its permissions and its folder's)\n"
    )
    under_a_file = project.cli("backups", "--db", str(project.db / "x.db"))
    assert under_a_file.exit_code == 0 and under_a_file.stdout.endswith("\n0 backup(s)\n")
    assert sorted(path.name for path in backups.iterdir()) == before
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations", "test.db", "test.db.backups"]
