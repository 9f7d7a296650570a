"""The Python API as the README shows it, and the example migrations of the trading database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from .conftest import Project

ROOT = Path(__file__).parent.parent


def readme_python_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    (snippet,) = [block for block in blocks if "from vcp_migrate import MigrationManager" in block]
    return str(snippet)


def test_readme_snippet_runs_as_written(project: Project) -> None:
    shutil.rmtree(project.dir)
    shutil.copytree(ROOT / "migrations", project.dir)
    namespace: dict[str, object] = {}
    exec(readme_python_snippet(), namespace)
    status = namespace["status"]
    assert isinstance(status, list)
    assert [(row["version"], row["name"], row["applied"]) for row in status] == [
        (1, "create_trades_table", True),
        (2, "add_pnl_column", False),
    ]
    assert (project.root / "vcp_trading.db").exists()


def test_example_migrations_round_trip(project: Project) -> None:
    shutil.rmtree(project.dir)
    shutil.copytree(ROOT / "migrations", project.dir)
    manager = project.manager()
    assert manager.validate() == []
    assert [run.version for run in manager.migrate()] == [1, 2]
    assert project.columns("trades") == ["id", "order_id", "symbol", "quantity", "price", "timestamp", "pnl"]
    assert [run.version for run in manager.rollback(steps=2)] == [2, 1]
    assert project.tables() == set()


def test_every_exported_name_resolves() -> None:
    import vcp_migrate

    for name in vcp_migrate.__all__:
        assert getattr(vcp_migrate, name) is not None
    try:
        vcp_migrate.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NoSuchThing" in str(error)
    else:
        raise AssertionError("a missing name must raise AttributeError")


def test_attributes_set_after_construction_are_used_by_the_next_call(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    manager = project.manager()
    manager.migrate(1)
    manager.backup = False
    manager.dump_schema = False
    manager.migrate()
    assert not (project.root / "test.db.backups").exists()
    assert "-- version: 1\n" in (project.dir / "schema.sql").read_text()  # written by the first call only
    manager.backup = True
    manager.rollback()
    assert len(list((project.root / "test.db.backups").iterdir())) == 1
    manager.lock_timeout = float("nan")
    from vcp_migrate import UsageError

    try:
        manager.status()
    except UsageError as error:
        assert "lock timeout must be a finite number of seconds" in str(error)
    else:
        raise AssertionError("a bad value set after construction must be refused at the next call")
    assert project.history() == [1]


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.rollback(steps=1.5),
        lambda m: m.rollback(steps=True),
        lambda m: m.rollback(to="1"),
        lambda m: m.migrate("2"),
        lambda m: m.migrate(2.0),
        lambda m: m.dry_run_migrate(True),
        lambda m: m.dry_run_rollback(steps="1"),
        lambda m: m.baseline(True),
        lambda m: m.baseline("2"),
        lambda m: m.baseline(None),
        lambda m: m.repair(["1"]),
        lambda m: m.repair([1.0]),
    ],
    ids=[
        "steps 1.5", "steps True", "to '1'", "target '2'", "target 2.0", "dry run target True", "dry run steps '1'",
        "baseline True", "baseline '2'", "baseline None", "repair ['1']", "repair [1.0]",
    ],
)  # fmt: skip
def test_an_argument_that_is_not_a_whole_number_is_a_usage_error(project: Project, call: Any) -> None:
    from vcp_migrate import UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    manager = project.manager()
    manager.migrate(1)
    before = project.db.read_bytes()
    with pytest.raises(UsageError, match="must be a whole number, not"):
        call(manager)
    assert project.db.read_bytes() == before and project.history() == [1]


class NotAPath:
    """A path object whose __fspath__ returns neither str nor bytes: os.fspath raised a TypeError."""

    def __fspath__(self) -> int:
        return 5


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"db_path": None}, "db_path must be a path (a str or a path object), not NoneType"),
        ({"migrations_dir": 3}, "migrations_dir must be a path"),
        ({"schema_file": 3.5}, "schema_file must be a path"),
        ({"backup_dir": ["x"]}, "backup_dir must be a path"),
        ({"db_path": "test.db\0x"}, "db_path holds a NUL character"),
        ({"db_path": "bad\ud800.db"}, "db_path holds a lone surrogate ('\\ud800'), which no file name can"),
        ({"migrations_dir": "m\udfff"}, "migrations_dir holds a lone surrogate ('\\udfff')"),
        ({"schema_file": "s\ud800.sql"}, "schema_file holds a lone surrogate"),
        ({"backup_dir": "b\ud800"}, "backup_dir holds a lone surrogate"),
        ({"lock_timeout": "5"}, "lock timeout must be a finite number of seconds, 0 or more, not '5'"),
        ({"lock_timeout": None}, "lock timeout must be a finite number"),
        ({"lock_timeout": True}, "lock timeout must be a finite number"),
        ({"lock_timeout": 10**400}, "lock timeout must be a finite number"),
        ({"lock_timeout": float("nan")}, "lock timeout must be a finite number"),
        ({"keep_backups": 2.5}, "keep_backups must be a whole number, not 2.5"),
        ({"keep_backups": True}, "keep_backups must be a whole number, not True"),
        ({"keep_backups": "3"}, "keep_backups must be a whole number"),
        ({"observer": 5}, "observer must be a vcp_migrate Observer, not int"),
        ({"db_path": NotAPath()}, "db_path must be a path: expected NotAPath.__fspath__() to return str or bytes"),
        ({"migrations_dir": NotAPath()}, "migrations_dir must be a path: expected NotAPath.__fspath__() to return"),
    ],
)
def test_a_constructor_argument_of_the_wrong_kind_is_a_usage_error(
    project: Project, arguments: dict[str, Any], said: str
) -> None:
    """Not a TypeError from deep inside, nor (keep_backups=2.5) one raised after the commit."""
    from vcp_migrate import MigrationManager, UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    given = {"db_path": project.db, "migrations_dir": project.dir} | arguments
    with pytest.raises(UsageError, match=re.escape(said)):
        MigrationManager(**given)
    manager = project.manager()
    name = next(iter(arguments))
    setattr(manager, name, arguments[name])  # set after construction: refused at the next call, before anything
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.migrate()
    assert not project.db.exists() and sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_a_bytes_path_is_decoded_and_other_methods_refuse_arguments_of_the_wrong_kind(project: Project) -> None:
    import os

    from vcp_migrate import MigrationManager, UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    manager = MigrationManager(os.fsencode(project.db), os.fsencode(project.dir))
    assert manager.db_path == project.db and [run.version for run in manager.migrate()] == [1]
    for call, said in (
        (lambda: manager.restore(5), "backup must be a path (a str or a path object), not int"),  # type: ignore[arg-type]
        (lambda: manager.new(None), "the migration name must be a str, not NoneType"),  # type: ignore[arg-type]
        (lambda: manager.repair("1"), "versions must be a list of whole numbers, not '1'"),  # type: ignore[arg-type]
    ):
        with pytest.raises(UsageError, match=re.escape(said)):
            call()
    assert project.history() == [1] and sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "schema.sql"]


def test_a_path_of_bytes_that_are_not_utf8_is_a_name_and_a_lone_surrogate_is_refused(project: Project) -> None:
    """A name that is not UTF-8 (its bytes, or the str os.fsdecode makes of them) names its file;
    a lone surrogate that stands for no byte names none: a UsageError of one line, from the
    constructor, from_config and a fleet alike, not a UnicodeEncodeError, and nothing on disk."""
    import os

    from vcp_migrate import MigrationManager, UsageError
    from vcp_migrate.fleet import Fleet

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    for name in (b"bytes\xff.db", "text\udcff.db"):
        assert [run.version for run in MigrationManager(name, project.dir).migrate()] == [1]
    assert sorted(os.listdir(os.fsencode(project.root))) == [b"bytes\xff.db", b"migrations", b"text\xff.db"]
    said = (
        "db_path holds a lone surrogate ('\\ud800'), which no file name can: 'bad\\ud800.db'"
        " (fix the path, or give it as bytes)"
    )
    for make in (
        lambda: MigrationManager("bad\ud800.db", project.dir),
        lambda: MigrationManager.from_config(db_path="bad\ud800.db", migrations_dir=project.dir),
    ):
        with pytest.raises(UsageError) as refused:
            make()
        assert str(refused.value) == said
    with pytest.raises(UsageError, match=re.escape("a database path holds a lone surrogate ('\\ud800')")):
        Fleet(["bad\ud800.db"], project.dir).migrate(jobs=1)
    assert sorted(os.listdir(os.fsencode(project.root))) == [b"bytes\xff.db", b"migrations", b"text\xff.db"]
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "schema.sql"]


FLAGS = ("backup", "user_version", "dump_schema", "create", "allow_existing")


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
@pytest.mark.parametrize("name", FLAGS)
def test_a_constructor_flag_that_is_not_a_bool_is_a_usage_error(project: Project, name: str, value: object) -> None:
    """A string such as "no" is truthy: taken as it is, it would turn a protection off (or on)."""
    from vcp_migrate import UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    said = f"{name} must be True or False, not {value!r}"
    with pytest.raises(UsageError, match=re.escape(said)):
        project.manager(**{name: value})
    manager = project.manager()
    setattr(manager, name, value)  # set after construction: refused at the next call, before anything
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.migrate()
    assert not project.db.exists() and sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_a_truthy_string_never_turns_a_protection_off(project: Project) -> None:
    import sqlite3

    from vcp_migrate import MigrationManager, UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    with sqlite3.connect(project.db) as application:
        application.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    application.close()
    before = project.digest()
    with pytest.raises(UsageError, match=re.escape("allow_existing must be True or False, not 'no'")):
        MigrationManager(db_path=project.db, migrations_dir=project.dir, allow_existing="no").migrate()  # type: ignore[arg-type]
    assert project.digest() == before and project.history() == [] and project.tables() == {"orders"}
    new = project.root / "new.db"
    with pytest.raises(UsageError, match=re.escape("create must be True or False, not 'false'")):
        MigrationManager(db_path=new, migrations_dir=project.dir, create="false").migrate()  # type: ignore[arg-type]
    assert not new.exists() and sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda m: m.migrate(allow_out_of_order="no"), "allow_out_of_order must be True or False, not 'no'"),
        (lambda m: m.migrate(atomic="no"), "atomic must be True or False, not 'no'"),
        (lambda m: m.rollback(from_history="no"), "from_history must be True or False, not 'no'"),
        (lambda m: m.dry_run_migrate(allow_out_of_order=1), "allow_out_of_order must be True or False, not 1"),
        (lambda m: m.dry_run_rollback(from_history="no"), "from_history must be True or False, not 'no'"),
        (lambda m: m.validate(roundtrip="no"), "roundtrip must be True or False, not 'no'"),
        (lambda m: m.new("c", sql="no"), "sql must be True or False, not 'no'"),
    ],
    ids=["migrate allow_out_of_order", "migrate atomic", "rollback from_history", "dry run migrate",
         "dry run rollback", "validate roundtrip", "new sql"],
)  # fmt: skip
def test_a_method_flag_that_is_not_a_bool_is_a_usage_error(project: Project, call: Any, said: str) -> None:
    from vcp_migrate import UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    manager = project.manager()
    manager.migrate(1)
    before = project.digest()
    with pytest.raises(UsageError, match=re.escape(said)):
        call(manager)
    assert project.digest() == before and project.history() == [1]
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "002_b.sql", "schema.sql"]


def test_a_confirm_answer_that_is_not_a_bool_is_refused_and_nothing_is_done(project: Project) -> None:
    """A confirm that answers "no" (a truthy string) must not count as yes."""
    from vcp_migrate import UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    manager = project.manager()
    manager.migrate(1)
    manager.migrate()  # backs up the database at version 1 first
    (project.dir / "002_b.sql").unlink()  # rolled back from the history, once confirmed

    def checksum() -> object:
        return project.query("SELECT checksum FROM vcp_migrations WHERE version = 2")

    before, recorded = project.digest(), checksum()
    said = "confirm returned 'no', not True or False (nothing was done)"
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.rollback(from_history=True, confirm=lambda title, source: "no")  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.dry_run_rollback(from_history=True, confirm=lambda title, source: "no")  # type: ignore[arg-type,return-value]
    assert project.digest() == before and project.history() == [1, 2] and project.tables() == {"a", "b"}
    project.sql("002_b.sql", "CREATE TABLE b (x, y);", "DROP TABLE b;")  # edited since it was applied
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.repair([2], confirm=lambda repair: "no")  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match=re.escape("confirm returned 1, not True or False")):
        manager.restore(confirm=lambda backup: 1)  # type: ignore[arg-type,return-value]
    assert project.digest() == before and checksum() == recorded and project.history() == [1, 2]
    for call in (
        lambda: manager.rollback(from_history=True, confirm="yes"),  # type: ignore[arg-type]
        lambda: manager.dry_run_rollback(from_history=True, confirm="yes"),  # type: ignore[arg-type]
        lambda: manager.repair([2], confirm="yes"),  # type: ignore[arg-type]
        lambda: manager.restore(confirm="yes"),  # type: ignore[arg-type]
    ):
        with pytest.raises(UsageError, match=re.escape("confirm must be a function that returns True or False")):
            call()
    assert project.digest() == before and checksum() == recorded and project.history() == [1, 2]
    assert len(manager.backups()) == 1


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"schema_file": "."}, "schema_file names a folder, not a file: '.'"),
        ({"schema_file": "./"}, "schema_file names a folder, not a file: './'"),
        ({"schema_file": "/"}, "schema_file names a folder, not a file: '/'"),
        ({"schema_file": "db/.."}, "schema_file names a folder, not a file: 'db/..'"),
        ({"schema_file": Path(".")}, "schema_file names a folder, not a file: '.'"),
        ({"schema_file": ""}, "schema_file is empty (give a path)"),
        ({"db_path": "."}, "db_path names a folder, not a file: '.'"),
        ({"db_path": "data/"}, "db_path names a folder, not a file: 'data/'"),
        ({"db_path": ""}, "db_path is empty (give a path)"),
        ({"migrations_dir": ""}, "migrations_dir is empty (give a path)"),
        ({"backup_dir": ""}, "backup_dir is empty (give a path)"),
        ({"backup_dir": b""}, "backup_dir is empty (give a path)"),
    ],
)
def test_a_path_that_cannot_name_what_it_should_is_a_usage_error(
    project: Project, arguments: dict[str, Any], said: str
) -> None:
    """Refused before anything: a schema file named "." was found out only after the commit."""
    from vcp_migrate import MigrationManager, UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate(1)
    before = project.digest()
    given = {"db_path": project.db, "migrations_dir": project.dir} | arguments
    with pytest.raises(UsageError, match=re.escape(said)):
        MigrationManager(**given)
    manager = project.manager()
    name = next(iter(arguments))
    setattr(manager, name, arguments[name])  # set after construction: refused at the next call
    with pytest.raises(UsageError, match=re.escape(said)):
        manager.migrate()
    assert project.digest() == before and project.history() == [1]
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "002_b.sql", "schema.sql"]


def test_sqlite_s_own_names_for_a_database_are_refused_unless_a_file_so_named_is_there(project: Project) -> None:
    """A db_path of ":memory:" made a file of that name, which the next manager found migrated already; a URI
    ("file:test.db?mode=ro") made a file of its own name too, and status called every migration of
    test.db pending. Refused now, from the constructor, from_config and the command line alike."""
    from vcp_migrate import MigrationManager, UsageError
    from vcp_migrate.cli import main

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    project.manager().migrate(1)
    before = project.digest()
    memory = "db_path is :memory:, SQLite's database in memory, which ends with its connection"
    uri = "db_path is a SQLite URI, not a path: 'file:test.db?mode=ro' (give the file's path, 'test.db';"
    for name, said in ((":memory:", memory), ("file:test.db?mode=ro", uri)):
        with pytest.raises(UsageError, match=re.escape(said)):
            MigrationManager(name, project.dir)
        with pytest.raises(UsageError, match=re.escape(said)):
            MigrationManager.from_config(db_path=name, migrations_dir=project.dir)
        manager = project.manager()
        manager.db_path = name  # type: ignore[assignment]  # set after construction: refused at the next call
        for call in (manager.migrate, manager.status):
            with pytest.raises(UsageError, match=re.escape(said)):
                call()
        result = CliRunner().invoke(main, ["status", "--db", name, "--dir", str(project.dir)])
        assert result.exit_code == 2 and said.replace("db_path", "--db") in result.output
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]
    (project.root / ":memory:").touch()  # a file so named, there: it is the one meant
    assert [run.version for run in MigrationManager(":memory:", project.dir).migrate()] == [1, 2]
    assert project.history() == [1]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ({"replicas": "http://127.0.0.1:2"}, "replicas must be a list of URLs, not str (give a list such as"),
        ({"replicas": None}, "replicas must be a list of URLs, not NoneType"),
        ({"replicas": [b"http://127.0.0.1:2"]}, "replicas must be a list of URLs, each a str, not bytes"),
        ({"replicas": [None]}, "replicas must be a list of URLs, each a str, not NoneType"),
        ({"auth_token": 12345}, "auth_token must be a str or None, not int"),
        ({"auth_token": b"secret"}, "auth_token must be a str or None, not bytes"),
        ({"lease": True}, "lease must be a number of seconds above 0 and at most a day, not True"),
        ({"replica_timeout": True}, "replica_timeout must be a number of seconds above 0"),
    ],
)
def test_a_server_setting_of_the_wrong_kind_is_a_usage_error(
    project: Project, arguments: dict[str, Any], said: str
) -> None:
    """auth_token=12345 or replicas=[None] raised an AttributeError from deep inside, replicas=None
    a TypeError; one URL given as a str was taken as a list of its characters. Refused before
    anything is sent or opened, naming the type and never the value (it may be the token)."""
    from vcp_migrate import MigrationManager, UsageError

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    server = "http://127.0.0.1:1"  # nothing listens there: a call that got as far as sending would fail otherwise
    with pytest.raises(UsageError) as refused:
        MigrationManager(server, project.dir, **arguments)
    assert said in str(refused.value) and "secret" not in str(refused.value) and "12345" not in str(refused.value)
    name = next(iter(arguments))
    if arguments[name] is not None:  # None is a setting not given to from_config
        with pytest.raises(UsageError, match=re.escape(said)):
            MigrationManager.from_config(db_path=server, migrations_dir=project.dir, **arguments)
    if name == "replicas":
        manager = project.manager()
        manager.replicas = arguments[name]  # set after construction: refused at the next call
        with pytest.raises(UsageError, match=re.escape(said)):
            manager.rollback()
    assert project.digest() == before and project.history() == [1] and project.tables() == {"a"}
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


def test_a_server_setting_of_none_is_not_given_to_from_config(project: Project) -> None:
    """None counts as not given: from_config(auth_token=os.environ.get("TOKEN")) with the variable
    unset was refused as "unknown parameter 'auth_token'", and so were replicas, lease and
    replica_timeout of None; each is now left to its default, as the other parameters are."""
    from vcp_migrate import MigrationManager

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    nones = {"auth_token": None, "replicas": None, "lease": None, "replica_timeout": None}
    manager = MigrationManager.from_config(db_path=project.db, migrations_dir=project.dir, **nones)
    assert (manager.replicas, manager.lease, manager.replica_timeout) == ((), 30.0, 60.0)
    assert [run.version for run in manager.migrate()] == [1]
    assert project.history() == [1] and project.tables() == {"a"}
    server = MigrationManager.from_config(db_path="http://127.0.0.1:1", migrations_dir=project.dir, **nones)
    assert server.database == "http://127.0.0.1:1" and server.replicas == ()


@pytest.mark.parametrize(
    "url",
    [Path("libsql://127.0.0.1:1"), b"http://127.0.0.1:1", Path("libsql:test.db"), b"https:test.db"],
    ids=["Path", "bytes", "Path, no slashes", "bytes, no slashes"],
)
def test_a_server_url_given_as_bytes_or_a_path_is_a_usage_error(project: Project, url: Path | bytes) -> None:
    """Path("libsql://HOST") is libsql:/HOST, and a URL given as bytes or a Path was taken for a
    file's path: migrate made a database 'libsql:test.db', or one in a folder named 'libsql:'."""
    from vcp_migrate import MigrationManager, UsageError
    from vcp_migrate.fleet import Fleet

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    (project.root / "libsql:").mkdir()  # where Path("libsql://HOST") would put a file named HOST
    before = sorted(path.relative_to(project.root) for path in project.root.rglob("*"))
    said = (
        f"db_path is a server's URL given as {type(url).__name__}: a URL must be a str"
        " (give it as a str such as 'libsql://HOST:PORT', not a Path, which makes '//' one '/')"
    )
    with pytest.raises(UsageError) as refused:
        MigrationManager(url, project.dir).migrate()
    assert str(refused.value) == said
    with pytest.raises(UsageError) as refused:
        MigrationManager.from_config(db_path=url, migrations_dir=project.dir).migrate()
    assert str(refused.value) == said
    with pytest.raises(UsageError, match="fleets run on database files, not server URLs"):
        Fleet([url], project.dir)  # a fleet takes no server, given as a str or not
    assert sorted(path.relative_to(project.root) for path in project.root.rglob("*")) == before
    assert not project.db.exists()


def _migrate_in_a_worker(db: str, directory: str) -> list[int]:
    from vcp_migrate import MigrationManager

    return [run.version for run in MigrationManager(db, directory).migrate()]


def test_a_failure_in_a_worker_process_reaches_the_parent_whole(project: Project) -> None:
    """MigrationFailed could not be unpickled (its fields are keyword-only): run in a process pool,
    the parent got BrokenProcessPool, "terminated abruptly", and a multiprocessing.Pool hung for
    good. Every error now travels with its fields, and the pool goes on working."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    from vcp_migrate import LockTimeout, MigrationFailed, UsageError
    from vcp_migrate.errors import setting

    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);\nINSERT INTO nope VALUES (1);", "DROP TABLE b;")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(MigrationFailed) as failed:
            pool.submit(_migrate_in_a_worker, str(project.db), str(project.dir)).result(timeout=120)
        error = failed.value
        assert (error.version, error.statement_index, error.statement) == (2, 2, "INSERT INTO nope VALUES (1);")
        assert str(error) == (
            "migrations/002_b.sql: statement 2 failed: no such table: nope"
            " (it was rolled back; the 1 migration(s) before it in this run stay applied)"
        ).replace("migrations/", f"{project.dir}/")
        assert project.history() == [1] and project.tables() == {"a"}
        project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
        assert pool.submit(_migrate_in_a_worker, str(project.db), str(project.dir)).result(timeout=120) == [2]
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}
    for sent in (UsageError(f"bad {setting('db_path')}", hint="fix it"), LockTimeout("held", where="x.db", hint="h")):
        received = pickle.loads(pickle.dumps(sent))
        assert (type(received), received.__dict__, received.args) == (type(sent), sent.__dict__, sent.args)
        assert received.message(lambda parameter, value: f"--{parameter}") == sent.message(lambda p, v: f"--{p}")
