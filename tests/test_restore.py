"""restore: it really restores (data, schema, page size, journal mode), asks first, refuses what
is not a backup of this database, and never overwrites anything without a copy."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing, nullcontext
from pathlib import Path

import pytest
from click.testing import CliRunner

from vcp_migrate import Backup, DatabaseError, MigrationManager
from vcp_migrate.backups import folder
from vcp_migrate.cli import main
from vcp_migrate.lock import RunLock
from vcp_migrate.observer import Observer

from .conftest import (
    ENV_VARS,
    Project,
    add_ballast,
    blobs,
    console_script,
    file_size_limit,
    interrupt_once_copied,
    run_cli,
    with_output_closed,
)
from .conftest import three_trades as three


def test_restore_brings_back_data_and_schema_and_keeps_a_safety_copy(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    connection = sqlite3.connect(project.db)
    connection.execute("DELETE FROM trades")  # the incident
    connection.commit()
    connection.close()
    restored, safety = project.manager().restore()
    assert restored.version == 1 and safety is not None and safety.version == 3
    assert project.history() == [1]
    assert project.columns("trades") == ["id", "symbol"]
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)]
    assert project.query("PRAGMA user_version") == [(1,)]
    # and the restore itself can be undone
    project.manager().restore(safety.path.name)
    assert project.history() == [1, 2, 3] and project.query("SELECT count(*) FROM trades") == [(0,)]


def test_a_safety_copy_that_cannot_be_made_names_no_option_restore_lacks(project: Project) -> None:
    """Its hint said 'or pass --no-backup', which restore does not take: the copy is what undoes it."""
    three(project)
    project.manager().migrate(1)
    add_ballast(project.db)
    project.manager().migrate()  # backs up version 1
    before = project.digest()
    result = run_cli(project, "restore", "--yes", preexec_fn=file_size_limit(200_000))
    assert result.returncode == 1 and project.digest() == before and project.history() == [1, 2, 3]
    assert result.stderr.rstrip().endswith("(free space, fix permissions; nothing was changed)"), result.stderr
    assert [backup.version for backup in project.manager().backups()] == [1]


def test_restore_cli_in_wal_mode_while_a_reader_is_open(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    connection = sqlite3.connect(project.db)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()
    project.manager().migrate()
    reader = sqlite3.connect(project.db)
    assert reader.execute("SELECT count(*) FROM vcp_migrations").fetchone() == (3,)
    result = project.cli("restore", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith(f"Restored {project.db} from ")
    assert reader.execute("SELECT count(*) FROM vcp_migrations").fetchone() == (1,)
    reader.close()
    assert project.query("PRAGMA integrity_check") == [("ok",)]
    # reading a backup of a database in WAL mode leaves none of SQLite's files beside it
    assert all(name.endswith(".db") for name in os.listdir(folder(project.db)))


def test_restore_refuses_what_is_not_a_backup_of_this_database(project: Project) -> None:
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    other = MigrationManager(project.root / "other.db", project.dir)
    other.migrate(1)
    other.migrate()
    before = project.digest()
    (other_backup,) = other.backups()
    with pytest.raises(DatabaseError, match="is a backup of another database"):
        project.manager().restore(other_backup.path)
    stray = project.root / "stray.db"
    sqlite3.connect(stray).execute("CREATE TABLE x(y)").connection.commit()
    with pytest.raises(DatabaseError, match="is not a backup of .*carries no matching database id"):
        project.manager().restore(stray)
    junk = folder(project.db) / "20990101T000000.000Z-v9.db"
    junk.write_text("not a database at all" * 100)
    with pytest.raises(DatabaseError, match="is not a SQLite database"):
        project.manager().restore(junk)
    with pytest.raises(DatabaseError, match="is not a file"):
        project.manager().restore(project.root / "nope.db")
    assert project.digest() == before


def test_restore_without_backups(project: Project) -> None:
    three(project)
    project.manager().migrate()
    result = project.cli("restore")
    assert result.exit_code == 1 and "has no backups in" in result.stderr


def incident(project: Project) -> None:
    """Version 1 is backed up, then version 2 adds a row: restoring the backup loses that row."""
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);\nINSERT INTO trades (symbol) VALUES ('AAPL');",
        "DROP TABLE trades;",
    )
    project.sql("002_msft.sql", "INSERT INTO trades (symbol) VALUES ('MSFT');", "DELETE FROM trades WHERE id = 2;")
    project.manager().migrate(1)
    project.manager().migrate()


def storage(project: Project) -> tuple[object, object]:
    page_size, journal_mode = project.query("PRAGMA page_size")[0][0], project.query("PRAGMA journal_mode")[0][0]
    return page_size, journal_mode


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_restore_across_a_page_size_change_in_wal_mode_both_ways(project: Project, journal_mode: str) -> None:
    project.sql(
        "001_trades.sql",
        "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT);\nINSERT INTO trades (symbol) VALUES ('AAPL');",
    )
    project.write(
        "002_pages.sql",
        "-- migrate:up transaction:false\nPRAGMA journal_mode = DELETE;\nPRAGMA page_size = 8192;\nVACUUM;\n"
        "PRAGMA journal_mode = WAL;\nINSERT INTO trades (symbol) VALUES ('MSFT');\n-- migrate:down\n",
    )
    project.manager().migrate(1)
    project.query(f"PRAGMA journal_mode = {journal_mode}")
    project.manager().migrate()
    assert storage(project) == (8192, "wal")
    restored, safety = project.manager().restore()
    assert restored.version == 1 and safety is not None
    assert storage(project) == (4096, journal_mode)
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]
    restored, _ = project.manager().restore(safety.path)  # and back: a 4096-byte database to an 8192 WAL one
    assert storage(project) == (8192, "wal")
    assert project.query("SELECT symbol FROM trades ORDER BY id") == [("AAPL",), ("MSFT",)]
    assert project.history() == [1, 2] and project.query("PRAGMA integrity_check") == [("ok",)]
    assert len(project.manager().backups()) == 3


class Warnings(Observer):
    def __init__(self) -> None:
        self.said: list[str] = []

    def warning(self, message: str) -> None:
        self.said.append(message)


def test_restore_across_a_page_size_change_while_others_keep_the_wal_database_open(project: Project) -> None:
    project.sql("001_trades.sql", "CREATE TABLE trades (symbol TEXT);\nINSERT INTO trades VALUES ('AAPL');")
    project.write(
        "002_pages.sql",
        "-- migrate:up transaction:false\nPRAGMA page_size = 8192;\nVACUUM;\nPRAGMA journal_mode = WAL;\n"
        "INSERT INTO trades VALUES ('MSFT');\n-- migrate:down\n",
    )
    project.manager().migrate(1)
    project.manager().migrate()
    reader = sqlite3.connect(project.db)  # an application: it keeps the database open, in WAL mode
    assert reader.execute("SELECT count(*) FROM trades").fetchall() == [(2,)]
    observer = Warnings()
    project.manager(observer=observer).restore()
    assert reader.execute("SELECT symbol FROM trades").fetchall() == [("AAPL",)]
    reader.close()
    assert project.history() == [1] and project.query("PRAGMA integrity_check") == [("ok",)]
    assert storage(project) == (8192, "wal")  # only the last connection can take it out of WAL mode
    assert observer.said == [
        f"{project.db}: restored with its own page size (8192 bytes, not the backup's 4096) and journal mode"
        " (wal, not the backup's delete), since other connections have it open in WAL mode; restore again once"
        " they are closed to get the backup's"
    ]


def test_a_conversion_killed_in_a_shared_backups_folder_is_removed_by_the_next_run(project: Project) -> None:
    """The page-size conversion's partial file carried no tag of the database: in a shared folder,
    where each run removes only its own database's leftovers, one a SIGKILL left stayed for good."""
    shared = project.root / "shared"
    project.sql("001_trades.sql", "CREATE TABLE trades (symbol TEXT);")
    project.write(
        "002_pages.sql",
        "-- migrate:up transaction:false\nPRAGMA page_size = 8192;\nVACUUM;\nPRAGMA journal_mode = WAL;\n"
        "-- migrate:down\n",
    )
    project.manager(backup_dir=shared).migrate(1)
    blobs(project.db, 100)  # the conversion of its backup takes long enough to be killed in
    project.manager(backup_dir=shared).migrate()
    reader = sqlite3.connect(project.db)  # it keeps the database open in WAL mode: restore converts
    reader.execute("SELECT count(*) FROM trades").fetchall()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "restore", "--yes", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen([*command, "--backup-dir", str(shared)], cwd=project.root, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (converting := [p for p in shared.glob("*-v0*.partial") if p.stat().st_size > 0]):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
        process.kill()
    finally:
        process.kill()
        process.wait()
    reader.close()
    assert converting[0].exists()
    assert project.history() == [1, 2]  # killed before its copy over the database
    assert run_cli(project, "restore", "--yes", "--backup-dir", str(shared)).returncode == 0
    assert sorted(shared.glob("*.partial*")) == [] and project.query("PRAGMA integrity_check") == [("ok",)]


def test_a_failed_restore_leaves_no_safety_copy(project: Project) -> None:
    incident(project)
    before, backups = project.digest(), project.manager().backups()
    reader = sqlite3.connect(project.db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM trades").fetchall()  # a read transaction: nobody may write
    for _ in range(2):  # sqlite3 retries a busy copy forever: the run must give up at its lock timeout
        result = run_cli(project, "restore", "--yes", "--lock-timeout", "0.2", timeout=30)
        assert result.returncode == 1 and ": is locked by another connection" in result.stderr
        assert project.manager().backups() == backups
    # Read the file only now: closing any descriptor of it would drop the reader's lock.
    reader.execute("COMMIT")
    reader.close()
    assert project.digest() == before and project.manager().backups() == backups
    assert project.query("SELECT symbol FROM trades ORDER BY rowid") == [("AAPL",), ("MSFT",)]


def test_restore_asks_first_and_refuses_without_a_terminal(project: Project) -> None:
    incident(project)
    before, (backup,) = project.digest(), project.manager().backups()
    refused = run_cli(project, "restore", stdin=subprocess.DEVNULL)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: {project.db}: restoring {backup.path} (taken {backup.taken_at}, at version 1) would lose every"
        " change made since then, and there is no terminal to ask (pass --yes to restore; nothing was changed)\n"
    )
    assert project.digest() == before and project.manager().backups() == [backup]
    piped = project.cli("restore", input="y\n")  # input that is not a terminal is no answer
    assert piped.exit_code == 1 and "pass --yes to restore" in piped.stderr
    assert project.digest() == before and project.manager().backups() == [backup]
    result = run_cli(project, "restore", "--yes", stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"Restored {project.db} from {backup.path} (taken {backup.taken_at}, at version 1)" in result.stdout
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]


def test_restore_asks_on_a_terminal(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    incident(project)
    before, (backup,) = project.digest(), project.manager().backups()
    monkeypatch.setattr("vcp_migrate.cli.asking.interactive", lambda: True)
    declined = project.cli("restore", input="n\n")
    warning = (
        f"Restoring {backup.path} (taken {backup.taken_at}, at version 1) replaces {project.db}:"
        " every change made since then will be lost."
    )
    assert declined.exit_code == 1 and warning in declined.stdout
    assert declined.stderr == f"Error: {project.db}: the restore was not confirmed (nothing was changed)\n"
    assert project.digest() == before and project.manager().backups() == [backup]
    accepted = project.cli("restore", input="y\n")
    assert accepted.exit_code == 0 and warning in accepted.stdout
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)] and project.history() == [1]


def test_restore_chooses_and_confirms_under_the_run_lock(project: Project) -> None:
    incident(project)
    project.manager().rollback()  # a second backup, at version 2
    newest, oldest = project.manager().backups()
    seen: list[Backup] = []
    done: list[tuple[Backup, Backup | None]] = []

    def confirm(backup: Backup) -> bool:
        seen.append(backup)
        return True

    with RunLock(project.db, 5):
        worker = threading.Thread(target=lambda: done.append(project.manager().restore(confirm=confirm)))
        worker.start()
        time.sleep(0.5)
        newest.path.unlink()  # pruned by the run that holds the lock
    worker.join(10)
    assert done and done[0][0].path == oldest.path and [b.path for b in seen] == [oldest.path]
    assert seen[0].version == 1 and seen[0].taken_at == oldest.taken_at
    assert project.history() == [1] and project.query("SELECT symbol FROM trades") == [("AAPL",)]


@pytest.mark.parametrize("through", ["itself", "a link"])
def test_restore_refuses_the_database_as_its_own_backup_at_once(project: Project, through: str) -> None:
    three(project)
    project.manager().migrate()
    named = project.db
    if through == "a link":
        named = project.root / "link.db"
        os.symlink(project.db.name, named)
    kept = folder(project.db)
    before, backups_before = project.digest(), sorted(kept.iterdir()) if kept.exists() else []
    started = time.monotonic()
    result = run_cli(project, "restore", str(named), "--yes", "--lock-timeout", "5")
    assert time.monotonic() - started < 4  # no waiting out the lock timeout
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {named}: is the database itself, not a backup of it"
        " (pick one from 'vcp-migrate backups'; nothing was changed)\n"
    )
    assert project.digest() == before and (sorted(kept.iterdir()) if kept.exists() else []) == backups_before


def _tenants_cloned_from_one_template(project: Project) -> tuple[Path, Path]:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b(x);\n-- migrate:down\nDROP TABLE b;\n")
    template = project.root / "template.db"
    MigrationManager(template, project.dir).migrate(1)
    tenants = project.root / "tenants"
    tenants.mkdir()
    first, second = tenants / "first.db", tenants / "second.db"
    shutil.copyfile(template, first)
    shutil.copyfile(template, second)
    return first, second


@pytest.mark.parametrize("shared", [False, True])
def test_a_backup_of_one_tenant_is_never_restored_into_another(project: Project, shared: bool) -> None:
    first, second = _tenants_cloned_from_one_template(project)
    backup_dir = project.root / "backups" if shared else None
    for tenant in (first, second):
        MigrationManager(tenant, project.dir, backup_dir=backup_dir).migrate()
        sqlite3.connect(tenant).execute("INSERT INTO b VALUES ('own data')").connection.commit()
    with closing(sqlite3.connect(first)) as one, closing(sqlite3.connect(second)) as two:
        shared_id = "SELECT value FROM vcp_migrations_meta WHERE key = 'database_id'"
        assert one.execute(shared_id).fetchone() == two.execute(shared_id).fetchone()  # the clones share an id
    (taken_of_first,) = MigrationManager(first, project.dir, backup_dir=backup_dir).backups()
    before = _digest(second)
    with pytest.raises(DatabaseError, match="is a backup of another database file, not of .*second.db"):
        MigrationManager(second, project.dir, backup_dir=backup_dir).restore(taken_of_first.path)
    assert _digest(second) == before
    result = CliRunner().invoke(
        main,
        ["restore", str(taken_of_first.path), "--db", str(second), "--dir", str(project.dir), "--yes"]
        + (["--backup-dir", str(backup_dir)] if backup_dir else []),
    )
    assert result.exit_code == 1 and "is a backup of another database file" in result.stderr
    assert _digest(second) == before
    # Each tenant's own backup restores into it.
    (own,) = MigrationManager(second, project.dir, backup_dir=backup_dir).backups()
    MigrationManager(second, project.dir, backup_dir=backup_dir).restore(own.path)
    assert MigrationManager(second, project.dir).current() == 1


def test_a_shared_backup_folder_keeps_each_databases_backups_apart_and_rotates_each(project: Project) -> None:
    first, second = _tenants_cloned_from_one_template(project)
    shared = project.root / "backups"
    for _ in range(3):
        for tenant in (first, second):
            manager = MigrationManager(tenant, project.dir, backup_dir=shared, keep_backups=2)
            manager.migrate()
            manager.rollback()
    names = sorted(path.name for path in shared.iterdir())
    assert len(names) == 4 and sum(name.startswith("first.db.") for name in names) == 2  # 2 kept of each
    for tenant in (first, second):
        listed = MigrationManager(tenant, project.dir, backup_dir=shared).backups()
        assert len(listed) == 2 and all(b.path.name.startswith(tenant.name + ".") for b in listed)
        assert [b.version for b in listed] == [2, 1]  # newest first
    assert not (project.root / "tenants" / "first.db.backups").exists()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_where_there_is_no_migrations_folder_warns_of_nothing(project: Project) -> None:
    """On the server in an incident there may be the database and its backups, and no project:
    restore needs no migrations folder, so it writes no schema file there and says nothing of it."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    elsewhere = project.root / "ops"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VCP_MIGRATE_")}
    result = subprocess.run(
        [str(console_script()), "restore", "--db", str(project.db), "--yes"],
        cwd=elsewhere, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "schema" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert project.history() == [1] and not (elsewhere / "migrations").exists()


def test_a_backup_copied_out_of_its_folder_says_when_it_was_taken_by_its_name(project: Project) -> None:
    """Copied elsewhere (under its name, or without the tag, as the README says for a moved
    database), the time in its name is when it was taken, not the copy's."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate(1)
    project.manager().migrate()
    (taken,) = project.manager().backups()
    untagged = taken.path.name.split(".")[0] + "." + taken.path.name.split(".")[1] + ".db"  # <time>-v<N>.db
    for name in (taken.path.name, untagged):
        copy = project.root / name
        shutil.copyfile(taken.path, copy)
        os.utime(copy, (0, 0))  # a copy made long after: its time is not the backup's
        restored, _ = project.manager().restore(copy)
        assert (restored.taken_at, restored.version) == (taken.taken_at, 1)
        project.manager().migrate()


def test_restore_says_the_version_the_backup_holds_not_the_one_its_name_says(project: Project) -> None:
    """Two backups whose names were swapped: the question and the result give the version each
    file's history holds, which is what the database is at afterwards."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate(2)
    project.manager().migrate()
    first, second = sorted(project.manager().backups(), key=lambda backup: backup.version)
    assert (first.version, second.version) == (1, 2)
    swap = first.path.with_name("swap")
    first.path.rename(swap)
    second.path.rename(first.path)
    swap.rename(second.path)  # the file named as at version 2 holds version 1
    asked: list[int] = []
    restored, _ = project.manager().restore(second.path.name, confirm=lambda backup: not asked.append(backup.version))
    assert asked == [1] and restored.version == 1
    assert project.history() == [1] and project.query("PRAGMA user_version") == [(1,)]
    result = run_cli(project, "restore", first.path.name, "--yes")  # named v1, holds version 2
    assert result.returncode == 0, result.stderr
    assert "at version 2)" in result.stdout and project.history() == [1, 2]


def test_restore_with_standard_output_closed_restores_and_leaves_one_safety_copy(project: Project) -> None:
    """Its lines went nowhere: it restored all the same (no leftover copy that a second restore
    would then pick), and says that its output was lost."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate(1)
    project.manager().migrate()
    command = [str(console_script()), "restore", "--yes", "--db", str(project.db), "--dir", str(project.dir)]
    code, err = with_output_closed(command, project.root)
    assert code == 1 and err.startswith("Error: standard output was closed before all was printed")
    assert project.history() == [1]
    assert sorted(backup.version for backup in project.manager().backups()) == [1, 2]  # the one taken, the safety copy


def _big_backup_then_small(project: Project) -> None:
    """A backup at version 1 holding a 1 MB table, then the database small again at version 3."""
    three(project)
    project.manager().migrate(1)
    add_ballast(project.db)
    project.manager().migrate()  # backs up version 1, ballast and all
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("DROP TABLE ballast")
        connection.commit()
        connection.execute("VACUUM")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 8 MB of its own (tmpfs), where one can be mounted (root, Linux)."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("no tmpfs can be mounted here: a full disk cannot be made")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_restore_that_fills_the_disk_leaves_the_file_as_it_was_and_no_journal(
    project: Project, small_disk: Path
) -> None:
    """The copy failed half-written: SQLite rolled its journal back only at the next read, so the
    file stayed changed (1.3 MB), with a hot journal beside it, until someone opened it to write."""
    project.sql("001_a.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY, x BLOB);", "DROP TABLE a;")
    database, shared = small_disk / "app.db", project.root / "kept"
    MigrationManager(database, project.dir, dump_schema=False).migrate()
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("INSERT INTO a (x) SELECT randomblob(1000) FROM (WITH RECURSIVE n(i) AS"
                           " (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) SELECT i FROM n)")  # fmt: skip
        connection.commit()
    MigrationManager(database, project.dir, dump_schema=False, backup_dir=shared).rollback()  # the backup: 3 MB
    MigrationManager(database, project.dir, dump_schema=False, backup=False).migrate()
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("VACUUM")
    (small_disk / "filler").write_bytes(bytes(6900 * 1024))  # about 1 MB left
    before, listed = database.read_bytes(), sorted(os.listdir(small_disk))
    (backup,) = MigrationManager(database, project.dir, backup_dir=shared).backups()
    with pytest.raises(DatabaseError, match="database or disk is full"):
        MigrationManager(database, project.dir, dump_schema=False, backup_dir=shared).restore(backup.path)
    assert database.read_bytes() == before and sorted(os.listdir(small_disk)) == listed  # no -journal
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as reader:
        assert reader.execute("SELECT max(version) FROM vcp_migrations").fetchone() == (1,)


@pytest.mark.parametrize("when", ["before the copy", "once the copy was made"])
def test_ctrl_c_during_a_restore_keeps_the_state_before_whenever_the_copy_was_made(
    project: Project, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Ctrl-C reached Python after SQLite's backup step had copied every page: the database was
    restored, yet the safety copy (its only state before) was deleted and 'rolled back' said."""
    from vcp_migrate import backups
    from vcp_migrate.errors import Interrupted

    _big_backup_then_small(project)
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("INSERT INTO trades (symbol) VALUES ('only here')")
        connection.commit()
    real_copy_into = backups.copy_into

    def interrupted(backup: Path, target: sqlite3.Connection, database: Path) -> str | None:
        if when != "before the copy":
            real_copy_into(backup, target, database)
        raise KeyboardInterrupt

    monkeypatch.setattr(backups, "copy_into", interrupted)
    chosen = project.manager().backups()[0].path
    with pytest.raises(Interrupted) as raised:
        project.manager().restore(chosen.name)
    kept = [backup for backup in project.manager().backups() if backup.version == 3]
    if when == "before the copy":
        assert str(raised.value) == (
            f"interrupted before the restore of {project.db} from {chosen} was made; nothing was changed (the"
            " database is as it was, the backup untouched)"
        )
        assert project.history() == [1, 2, 3] and kept == []
        assert project.query("SELECT count(*) FROM trades WHERE symbol = 'only here'") == [(1,)]
    else:
        assert f"interrupted once {project.db} was restored from " in str(raised.value)
        assert project.history() == [1] and len(kept) == 1 and str(kept[0].path) in str(raised.value)
        monkeypatch.undo()
        project.manager().restore(kept[0].path.name)  # the state before, back
        assert project.query("SELECT count(*) FROM trades WHERE symbol = 'only here'") == [(1,)]


def test_a_backup_on_read_only_media_says_to_copy_it_first(project: Project, small_disk: Path) -> None:
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    (backup,) = project.manager().backups()
    on_media = small_disk / backup.path.name
    shutil.copyfile(backup.path, on_media)
    with closing(sqlite3.connect(on_media)) as connection:  # a backup of a database in WAL mode
        connection.execute("PRAGMA journal_mode = WAL")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = project.digest()
    result = project.cli("restore", str(on_media), "--yes")
    assert result.exit_code == 1 and project.digest() == before and project.history() == [1, 2, 3]
    assert "copy it to a writable folder and restore that copy; nothing was changed" in " ".join(result.stderr.split())
    assert sorted(os.listdir(small_disk)) == [on_media.name]


def test_a_database_made_again_at_the_same_path_never_takes_the_old_one_s_backups(project: Project) -> None:
    """The tag names the path only: a database deleted and made again there has another id, and
    the backups of the one before (its data) are refused."""
    three(project)
    project.manager().migrate(1)
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("INSERT INTO trades (symbol) VALUES ('the old database')")
        connection.commit()
    project.manager().migrate()  # backs up version 1, with the old database's row
    (old,) = project.manager().backups()
    project.db.unlink()
    project.manager().migrate()  # a new database, a new id, at the same path
    before = project.digest()
    with pytest.raises(DatabaseError, match="is a backup of another database"):
        project.manager().restore(old.path.name)
    assert project.digest() == before
    assert project.query("SELECT count(*) FROM trades WHERE symbol = 'the old database'") == [(0,)]


def test_ctrl_c_stops_the_copy_over_a_database_within_a_step_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """The copy (a restore's, over a live database) ran as one C call: Ctrl-C came only once the
    whole backup was copied over the database. In steps, it stops the copy, rolled back."""
    from vcp_migrate.copying import Stopped, copy

    blobs(tmp_path / "backup.db", 256)
    live = tmp_path / "live.db"
    with closing(sqlite3.connect(live)) as connection:
        connection.execute("CREATE TABLE mine (x)")
        connection.execute("INSERT INTO mine VALUES ('kept')")
        connection.commit()
    before = live.read_bytes()
    journal = tmp_path / "live.db-journal"

    def interrupt_once_well_into_it() -> None:  # SQLite journals the live pages, then writes the new ones
        while not (live.stat().st_size > 64_000_000):  # 2 steps of the copy
            time.sleep(0.001)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    source, target = sqlite3.connect(tmp_path / "backup.db"), sqlite3.connect(live)
    threading.Thread(target=interrupt_once_well_into_it, daemon=True).start()
    with pytest.raises(Stopped):  # certainly before its last step: nothing to compare
        copy(source, target)
    assert not source.in_transaction  # its read transaction ended with the copy
    source.close()
    target.close()
    with closing(sqlite3.connect(live)) as connection:  # rolled back from the journal, if one is left
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
        assert connection.execute("SELECT x FROM mine").fetchall() == [("kept",)]
    assert live.read_bytes() == before and not journal.exists()


@pytest.mark.parametrize("begun", [False, True], ids=["own read transaction", "the source's, begun not read"])
def test_a_copy_in_steps_is_one_snapshot_while_another_connection_writes(tmp_path: Path, begun: bool) -> None:
    """Each step of a copy made while others commit would restart it (SQLite's rule): the copy
    holds one read transaction, so it ends, consistent, however often they write. A source in a
    transaction that has read nothing yet holds no lock (Python 3.12's autocommit=False, a BEGIN):
    the copy took none either, and restarted at every commit."""
    from vcp_migrate.copying import copy

    blobs(tmp_path / "busy.db", 128, mode="wal")  # in WAL mode the writer is not kept waiting
    done = threading.Event()
    commits = []

    def write_all_along() -> None:  # for 20 s at most: a copy that restarts at each commit ends then
        with closing(sqlite3.connect(tmp_path / "busy.db", isolation_level=None, timeout=30)) as connection:
            deadline = time.monotonic() + 20
            while not done.is_set() and time.monotonic() < deadline:
                connection.execute("INSERT INTO blobs VALUES (x'01')")
                commits.append(1)

    writer = threading.Thread(target=write_all_along)
    source, target = sqlite3.connect(tmp_path / "busy.db"), sqlite3.connect(tmp_path / "copy.db")
    rows = int(source.execute("SELECT count(*) FROM blobs").fetchone()[0])
    writer.start()
    try:
        while not commits:
            time.sleep(0.001)
        if begun:
            source.execute("BEGIN")
        copy(source, target)
        during = len(commits)
    finally:
        done.set()
        writer.join()
    assert source.in_transaction == begun  # the source's own is left as it was
    assert target.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    copied = int(target.execute("SELECT count(*) FROM blobs").fetchone()[0])
    assert rows < copied < rows + during  # what one moment of the source held, while it went on
    source.close()
    target.close()


def test_ctrl_c_during_a_restore_s_copy_ends_at_once_with_the_database_as_it_was(project: Project) -> None:
    """To say what a stopped restore left, it compared the database with its safety copy, both
    read whole: on 300 MB, 6-7 s after the Ctrl-C, longer than the restore itself. A copy stopped
    before its last step left the database as it was: nothing to compare."""
    from vcp_migrate.copying import differs

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    blobs(project.db, 128)
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()  # its backup, at version 1, holds the 128 MB too
    kept = project.manager().backups()
    before = hashlib.sha256(project.db.read_bytes()).digest()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "restore", "--yes", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen(command, cwd=project.root, stderr=subprocess.PIPE, text=True, env=env)
    journal = project.root / "test.db-journal"
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.stat().st_size > 40_000_000):  # the copy a third done
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.0005)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 130
    chosen = kept[0].path
    assert stderr == (
        f"Error: interrupted before the restore of {project.db} from {chosen} was made; nothing was changed (the"
        " database is as it was, the backup untouched)\n"
    )
    assert hashlib.sha256(project.db.read_bytes()).digest() == before and not journal.exists()
    assert project.manager().backups() == kept  # its safety copy deleted again
    shutil.copy(project.db, project.root / "same.db")
    started = time.monotonic()
    assert not differs(project.db, project.root / "same.db", 5)  # the comparison it no longer makes
    assert took < (time.monotonic() - started) / 2, took


@pytest.mark.parametrize("phase", ["waiting for the run lock", "taking its safety copy"])
def test_ctrl_c_before_a_restore_s_copy_says_nothing_was_changed(project: Project, phase: str) -> None:
    """Before the copy, a restore waits for the run lock, checks the backup and copies the database
    as it is: a Ctrl-C there said what it says of a migration ('a transactional migration is rolled
    back whole'), or that a backup was not taken."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    blobs(project.db, 128)
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()
    kept = project.manager().backups()
    before = hashlib.sha256(project.db.read_bytes()).digest()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "restore", "--yes", "--db", str(project.db), "--dir", str(project.dir)]
    with RunLock(project.db, 5) if phase == "waiting for the run lock" else nullcontext():
        process = subprocess.Popen(command, cwd=project.root, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert process.stderr is not None
            if phase == "waiting for the run lock":
                assert "waiting for the run lock" in process.stderr.readline()
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=60)
            else:
                stderr = interrupt_once_copied(process, project.root / "test.db.backups", 40_000_000)
        finally:
            process.kill()
    assert process.returncode == 130
    said = {
        "waiting for the run lock": f"interrupted while waiting for the run lock held by pid {os.getpid()}",
        "taking its safety copy": f"interrupted while taking a copy of {project.db} before the restore",
    }[phase]
    tail = (
        "" if phase == "waiting for the run lock" else ", no copy kept (the database and its backups are as they were)"
    )
    assert stderr.splitlines()[-1] == f"Error: {said}; nothing was changed{tail}"
    assert hashlib.sha256(project.db.read_bytes()).digest() == before
    assert project.manager().backups() == kept


def test_restore_refuses_an_empty_file_named_as_a_backup(project: Project) -> None:
    """SQLite opens an empty file as a database holding nothing, and one in the backups folder under
    a backup's name passed as a backup taken before the first migration: restore emptied the database."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    empty = folder(project.db) / "20990101T000000.000Z-v1.db"
    empty.touch()  # a copy cut short
    before, kept = project.digest(), sorted(os.listdir(folder(project.db)))
    result = project.cli("restore", "--yes")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: {empty}: is empty, so it is no backup (every backup holds at least the database's first page:"
        " a copy cut short?) (pick another backup; nothing was changed)\n"
    )
    assert project.digest() == before and project.history() == [1, 2, 3]
    assert project.query("SELECT symbol FROM trades") == [("AAPL",)]
    assert sorted(os.listdir(folder(project.db))) == kept  # no safety copy left


def test_a_restore_killed_during_its_copy_into_a_database_in_wal_mode_leaves_it_in_wal_mode(
    project: Project,
) -> None:
    """A backup taken before the database was put in WAL mode: restore took the database out of
    WAL mode, then copied. Killed during the copy, it left the database as it was but in rollback
    mode, which neither the database before nor the backup is (readers then block its writers).
    With one page size, it now copies in WAL mode and leaves it only once the copy is committed."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    blobs(project.db, 128)
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate()  # its backup, at version 1, is in rollback mode
    (backup,) = project.manager().backups()
    with closing(sqlite3.connect(project.db)) as connection:
        assert connection.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "restore", "--yes", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen(command, cwd=project.root, stderr=subprocess.PIPE, text=True, env=env)
    written = [project.root / "test.db-wal", project.root / "test.db-journal"]  # where the copy goes, as it goes
    try:
        deadline = time.monotonic() + 60
        while not any(path.exists() and path.stat().st_size > 40_000_000 for path in written):  # a third copied
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.0005)
        process.kill()
        process.communicate(timeout=60)
    finally:
        process.kill()
    with closing(sqlite3.connect(project.db)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert project.history() == [1, 2] and project.query("SELECT count(*) FROM blobs") == [(128_000,)]
    result = run_cli(project, "restore", "--yes", backup.path.name)  # the next run works
    assert result.returncode == 0, result.stderr
    assert project.history() == [1] and project.query("PRAGMA journal_mode") == [("delete",)]


def test_a_backup_another_connection_holds_says_to_retry_not_to_pick_another(project: Project) -> None:
    """Its error said 'pick another backup' for a backup that is sound but being written: the
    remedy is to wait for it, or to wait longer."""
    three(project)
    project.manager().migrate(1)
    project.manager().migrate()
    (backup,) = project.manager().backups()
    before = project.digest()
    with closing(sqlite3.connect(backup.path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        result = project.cli("restore", "--yes", "--lock-timeout", "0.2")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: {backup.path}: is locked by another connection (retry when it is released, or raise"
        " --lock-timeout; nothing was changed)\n"
    )
    assert project.digest() == before and project.history() == [1, 2, 3]
    assert project.manager().backups() == [backup]  # no safety copy left
