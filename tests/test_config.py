"""Reading [tool.vcp-migrate]: tomllib on 3.11+, and the small reader used on 3.10."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vcp_migrate import MigrationManager, UsageError, config
from vcp_migrate.cli import main
from vcp_migrate.config import read_settings
from vcp_migrate.tomltable import parse_tool_table

from .conftest import ENV_VARS, Project, as_unprivileged, console_script

SAMPLES = [
    '[project]\nname = "x"\n\n[tool.vcp-migrate]\ndb = "prod.db"\ndir = \'db/migrations\'  # where they live\n',
    '[tool."vcp-migrate"]\ndb = "a \\"quoted\\" name.db"\n[tool.other]\ndb = "not ours"\n',
    "[tool.vcp-migrate]\n# nothing set\n",
    "[tool.vcp-migrate]\nflag = true\nnumber = 1_000\nratio = 0.5\n",
    '[tool.other]\nkey = "value"\n',
    '[[tool.array]]\nx = 1\n[tool.vcp-migrate]  # ours\ndb = "y"\n',
    "[tool.'vcp-migrate']\ndb = 'literal.db'\n",
    '[ tool . "vcp-migrate" ]\ndb = "spaced.db"\n',
    # Values over several lines in other tables: a nested array, strings holding brackets and headers.
    '[tool.other]\nmatrix = [\n  ["a", "b"],  # [x]\n  [\'c\', "]"],\n]\ntext = """\n[not a header\n"""\n'
    "raw = '''\n[tool.vcpmigrate]\n'''\n[tool.vcp-migrate]\ndb = \"z.db\"\n",
    # A table under an array of tables is declared again under each element: that is no repeat.
    '[[tool.other]]\n[tool.other.sub]\nx = 1\n[[tool.other]]\n[tool.other.sub]\nx = 2\n[tool.vcp-migrate]\ndb = "a"\n',
]


@pytest.mark.parametrize("text", SAMPLES)
def test_small_reader_agrees_with_tomllib(text: str) -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is the reference and exists from Python 3.11")
    import tomllib

    expected = tomllib.loads(text).get("tool", {}).get("vcp-migrate", {})
    assert parse_tool_table(text) == expected


def test_small_reader_values() -> None:
    assert parse_tool_table(SAMPLES[0]) == {"db": "prod.db", "dir": "db/migrations"}
    assert parse_tool_table(SAMPLES[3]) == {"flag": True, "number": 1000, "ratio": 0.5}
    assert [parse_tool_table(text) for text in SAMPLES[6:]] == [
        {"db": "literal.db"},
        {"db": "spaced.db"},
        {"db": "z.db"},
        {"db": "a"},
    ]


@pytest.mark.parametrize(
    ("text", "first", "second", "name"),
    [
        (
            '[tool.vcp-migrate]\ndb = "a.db"\n\n[tool.other]\nx = 1\n\n[tool.vcp-migrate]\ndir = "m"\n',
            1,
            7,
            "tool.vcp-migrate",
        ),
        ('[project]\n[tool.vcp-migrate]\ndb = "a.db"\n[tool."vcp-migrate"]\ndb = "b.db"\n', 2, 4, "tool.vcp-migrate"),
        ("[tool.vcp-migrate]\n[tool.vcp-migrate]\n", 1, 2, "tool.vcp-migrate"),
        ('[tool.other]\nx = 1\n[tool.vcp-migrate]\ndb = "a.db"\n[tool.other]\ny = 2\n', 1, 5, "tool.other"),
    ],
)
def test_small_reader_refuses_a_table_declared_twice_as_tomllib_does(
    text: str, first: int, second: int, name: str
) -> None:
    """On Python 3.10 a second [tool.vcp-migrate] was read on top of the first (its dir taken,
    or its db overridden), where tomllib on 3.11+ refuses the file."""
    said = (
        f"pyproject.toml: line {second}: [{name}] is declared twice (first on line {first}),"
        " which TOML does not allow (merge the two tables into one)"
    )
    with pytest.raises(UsageError) as raised:
        parse_tool_table(text, "pyproject.toml")
    assert str(raised.value) == said
    if sys.version_info >= (3, 11):
        import tomllib

        with pytest.raises(tomllib.TOMLDecodeError, match="twice"):
            tomllib.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.vcp-migrate]\ndb\n", "line 2: expected key = value"),
        ("[tool.vcp-migrate]\ndb = [1, 2]\n", "line 2: cannot read the value"),
        ('[tool.vcp-migrate]\ndb = "a"\ndb = "b"\n', "line 3: db is set twice"),
        ("[tool.vcp-migrate\ndb = 'x'\n", "line 1: malformed table header"),
        ("[project]\n[tool.vcp-migrate]]\n", "line 2: malformed table header"),
        # What tomllib reads as the table, and this reader cannot: an error, never a table passed by.
        ('[tool]\nvcp-migrate = {db = "x.db"}\n', "line 2: .*write the settings as key = value lines"),
        ('tool.vcp-migrate.db = "x.db"\n', "line 1: .*write the settings as key = value lines"),
        ('[tool.vcp-migrate.extra]\ndb = "x.db"\n', "line 1: .*write the settings as key = value lines"),
        ("[[tool.vcp-migrate]]\ndb = 'x.db'\n", "line 1: .*write the settings as key = value lines"),
        ('[tool]\nvcp_migrate = {db = "x.db"}\n', r"\[tool.vcp_migrate\] is not read by vcp-migrate"),
        ("[tool.'vcp_migrate']\ndb = 'x.db'\n", r"\[tool.vcp_migrate\] is not read by vcp-migrate"),
    ],
)
def test_small_reader_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_tool_table(text)


def test_read_settings_checks_keys_and_types(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    assert read_settings(path) == {}
    path.write_text('[tool.vcp-migrate]\ndb = "x.db"\n')
    assert read_settings(path) == {"db": "x.db"}
    path.write_text("[tool.vcp-migrate]\ndb = 3\n")
    with pytest.raises(UsageError, match="db must be a string, not 3"):
        read_settings(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="cannot be read"):
        read_settings(path)


def test_manager_settings_take_given_values_then_the_table_then_defaults(tmp_path: Path) -> None:
    from vcp_migrate.config import manager_settings

    assert manager_settings() == (
        "vcp_trading.db", "migrations", None, 30.0, True, 5, True, True, True, False, None, None, {}
    )  # fmt: skip
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.vcp-migrate]\ndb = "table.db"\nbackup = false\nkeep_backups = 2\nschema_file = "s.sql"\n'
        "user_version = false\ndump = false\nlock_timeout = 4\ncreate = false\nallow_existing = true\n"
        'backup_dir = "/srv/backups"\n'
    )
    table = manager_settings(config=pyproject)
    assert table == (
        str(tmp_path / "table.db"), str(tmp_path / "migrations"), str(tmp_path / "s.sql"),
        4.0, False, 2, False, False, False, True, pyproject, "/srv/backups",
        {name: f"{key} in [tool.vcp-migrate] of {pyproject}" for name, key in (
            ("db_path", "db"), ("lock_timeout", "lock_timeout"), ("backup", "backup"), ("keep_backups", "keep_backups"),
            ("user_version", "user_version"), ("dump_schema", "dump"), ("create", "create"),
            ("allow_existing", "allow_existing"), ("backup_dir", "backup_dir"), ("schema_file", "schema_file"),
        )},
    )  # fmt: skip
    given = manager_settings({"db": "given.db", "dir": "given", "keep_backups": 9, "create": True}, pyproject)
    assert (given.db, given.directory, given.keep_backups, given.create, given.backup) == (
        "given.db", "given", 9, True, False
    )  # fmt: skip


def test_manager_settings_refuse_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    from vcp_migrate.config import manager_settings

    pyproject = tmp_path / "pyproject.toml"
    for text, message in (
        ("keep_backups = true", "keep_backups must be a whole number, not True"),
        ("lock_timeout = 'soon'", "lock_timeout must be a number, not 'soon'"),
        ("lock_timeout = -1", "lock_timeout must be a finite number of seconds, 0 or more, not -1.0"),
        ("create = 'no'", "create must be true or false, not 'no'"),
    ):
        pyproject.write_text(f"[tool.vcp-migrate]\n{text}\n")
        with pytest.raises(UsageError, match=re.escape(message)):
            manager_settings(config=pyproject)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Each names the file and says what to write in it, as the other bad values do.
        ("keep_backups = 0", "pyproject.toml: keep_backups must be 1 or more, not 0 (write backup = false"),
        ('db = ""', "pyproject.toml: [tool.vcp-migrate] db is empty (give a path, or leave the key out)"),
        # An empty dir would make the project's root the migrations directory, where 'new' writes.
        ('dir = ""', "pyproject.toml: [tool.vcp-migrate] dir is empty"),
        ("schema_file = ''", "pyproject.toml: [tool.vcp-migrate] schema_file is empty"),
    ],
)
def test_a_bad_value_in_the_table_is_an_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    work = _layout(tmp_path, f"[tool.vcp-migrate]\n{text}\n")
    monkeypatch.chdir(work)
    with pytest.raises(UsageError, match=re.escape(message)):
        MigrationManager.from_config()
    for command in ("status", "new", "up"):
        result = CliRunner().invoke(main, [command, "x"] if command == "new" else [command])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "data", "db", "pyproject.toml", "src"]
    assert [p.name for p in (tmp_path / "db" / "migrations").iterdir()] == ["001_a.sql"]
    assert not list((tmp_path / "data").iterdir()) and not list(work.iterdir())


def test_an_empty_path_given_is_an_error(project: Project) -> None:
    with pytest.raises(UsageError, match="migrations_dir is empty"):
        MigrationManager.from_config(migrations_dir="")
    for option in ("--db", "--dir", "--config"):
        result = CliRunner().invoke(main, ["new", "x", option, ""])
        assert result.exit_code == 2 and result.stderr == f"Error: {option} is empty (give a path)\n"
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"] and not any(project.dir.iterdir())


def test_a_blank_path_is_an_error_wherever_it_comes_from(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """' ' named a file: migrate created a database called ' ' (said as 'Created  '), and the other
    commands said 'Error: : does not exist'. Blank from an option, the environment or the table
    (in a folder above: there it was joined to '..'), it is refused as an empty one is, and
    nothing is made."""
    (project.root / "sub").mkdir()
    for folder, arguments, env, table, said in (
        ("", ["up", "--db", "  "], {}, "", "--db is blank"),
        ("", ["status", "--dir", "\t"], {}, "", "--dir is blank"),
        ("", ["up"], {"VCP_MIGRATE_DB": " "}, "", "VCP_MIGRATE_DB is blank"),
        ("", ["current"], {"VCP_MIGRATE_DIR": " "}, 'db = "test.db"', "VCP_MIGRATE_DIR is blank"),
        ("", ["up"], {}, 'db = " "', "pyproject.toml: [tool.vcp-migrate] db is blank"),
        ("sub", ["up"], {}, 'db = " "', "../pyproject.toml: [tool.vcp-migrate] db is blank"),
        ("sub", ["up"], {}, 'schema_file = " "', "../pyproject.toml: [tool.vcp-migrate] schema_file is blank"),
    ):
        monkeypatch.chdir(project.root / folder)
        (project.root / "pyproject.toml").write_text(f"[tool.vcp-migrate]\n{table}\n" if table else "")
        result = CliRunner().invoke(main, arguments, env=env)
        assert (result.exit_code, result.stdout) == (2, ""), (arguments, result.output)
        assert result.stderr.startswith(f"Error: {said} (white space only) (give a path")
        assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "pyproject.toml", "sub"]
    assert not any(project.dir.iterdir()) and not any((project.root / "sub").iterdir())


def _refused_as_usage(
    project: Project, monkeypatch: pytest.MonkeyPatch, *cases: tuple[str, list[str], dict[str, str], str, str]
) -> None:
    """Each case (the folder run in, the arguments, the environment, the table's line, the error's
    beginning) is a usage error of one line, and nothing is made: no database, no folder."""
    (project.root / "sub").mkdir()
    for folder, arguments, env, table, said in cases:
        monkeypatch.chdir(project.root / folder)
        (project.root / "pyproject.toml").write_text(f"[tool.vcp-migrate]\n{table}\n" if table else "")
        result = CliRunner().invoke(main, arguments, env=env)
        assert (result.exit_code, result.stdout) == (2, ""), (arguments, result.output)
        assert result.stderr.startswith(f"Error: {said}") and result.stderr.count("\n") == 1
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "pyproject.toml", "sub"]


def test_an_unexpanded_tilde_is_an_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """No shell expands ~ in --dir=~ (nor in a table or a YAML-set variable): new made a folder
    named '~' in the project (the hint of status says to make the directory with new), and
    migrate a database under it once it was there. Refused now unless such a folder is there."""
    unexpanded = "write the full path; a shell expands ~ only at the start of a word: --db ~/app.db, not --db=~/app.db"
    _refused_as_usage(
        project,
        monkeypatch,
        ("", ["new", "x", "--dir=~"], {}, "", f"--dir begins with ~, which is not expanded here: '~' ({unexpanded})"),
        ("", ["up", "--db=~/app.db"], {}, "", "--db begins with ~, which is not expanded here: '~/app.db'"),
        ("", ["status"], {"VCP_MIGRATE_DIR": "~/m"}, "", "VCP_MIGRATE_DIR begins with ~, which is not expanded here"),
        ("sub", ["up"], {}, 'db = "~/app.db"', "../pyproject.toml: [tool.vcp-migrate] db begins with ~, which is not"),
    )
    assert not any(project.dir.iterdir()) and not any((project.root / "sub").iterdir())
    monkeypatch.chdir(project.root)
    (project.root / "~").mkdir()  # a folder so named, there: it is the one meant
    result = CliRunner().invoke(main, ["new", "x", "--dir=~/m"])
    assert (result.exit_code, result.stdout) == (0, "Created ~/m/001_x.py\n")


def test_a_url_of_another_kind_is_an_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///app.db, as SQLAlchemy names a file, or file:///..., was taken as a path: migrate
    said its folder 'sqlite:' did not exist, status that every migration was pending (exit 0).
    Refused now, from an option, the environment or the table, unless a folder so named is there."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    hint = "give a path, app.db and not sqlite:///app.db; the only URLs vcp-migrate reads are a libSQL server's:"
    _refused_as_usage(
        project,
        monkeypatch,
        ("", ["up", "--db", "sqlite:///app.db"], {}, "", f"--db is a URL, not a path: 'sqlite:///app.db' ({hint}"),
        ("", ["status", "--db", "file:///tmp/app.db"], {}, "", "--db is a URL, not a path: 'file:///tmp/app.db'"),
        ("", ["status", "--dir", "s3://bucket/m"], {}, "", "--dir is a URL, not a path: 's3://bucket/m'"),
        ("", ["status"], {"VCP_MIGRATE_DB": "sqlite:///app.db"}, "", "VCP_MIGRATE_DB is a URL, not a path"),
        ("sub", ["up"], {}, 'db = "sqlite:///app.db"', "../pyproject.toml: [tool.vcp-migrate] db is a URL, not a"),
    )
    assert not any((project.root / "sub").iterdir())
    monkeypatch.chdir(project.root)
    (project.root / "pyproject.toml").unlink()
    (project.root / "sqlite:").mkdir()  # a folder so named, there: it is the one meant
    result = CliRunner().invoke(main, ["up", "--db", "sqlite://app.db"])
    assert result.exit_code == 0, result.output
    assert (project.root / "sqlite:" / "app.db").exists()


# -- which file -------------------------------------------------------------------------------


def _layout(root: Path, table: str = '[tool.vcp-migrate]\ndb = "data/app.db"\ndir = "db/migrations"\n') -> Path:
    """A repository: pyproject.toml at the root, migrations two folders down, a subfolder to work in."""
    (root / ".git").mkdir(parents=True)
    (root / "pyproject.toml").write_text(table)
    (root / "db" / "migrations").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "db" / "migrations" / "001_a.sql").write_text(
        "-- migrate:up\nCREATE TABLE a(x);\n-- migrate:down\nDROP TABLE a;\n"
    )
    work = root / "src" / "app"
    work.mkdir(parents=True)
    return work


def test_found_walking_up_and_paths_relative_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = _layout(tmp_path)
    monkeypatch.chdir(work)
    assert config.find() == Path("../../pyproject.toml")
    manager = MigrationManager.from_config()
    assert manager.db_path.resolve() == tmp_path / "data" / "app.db"
    assert manager.migrations_dir.resolve() == tmp_path / "db" / "migrations"
    assert [run.version for run in manager.migrate()] == [1]
    assert (tmp_path / "data" / "app.db").exists() and not (work / "app.db").exists()


def test_a_pyproject_without_the_table_is_passed_by(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = _layout(tmp_path)
    (work.parent / "pyproject.toml").write_text('[project]\nname = "app"\n')
    monkeypatch.chdir(work)
    assert config.find() == Path("../../pyproject.toml")


def test_the_walk_stops_at_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.vcp-migrate]\ndb = "outside.db"\n')
    repository = tmp_path / "repo"
    work = _layout(repository, "[project]\n")
    monkeypatch.chdir(work)
    assert config.find() is None
    assert MigrationManager.from_config().db_path == Path("vcp_trading.db")


@pytest.mark.parametrize(
    "name",
    [
        "vcp_migrate",
        "vcpmigrate",
        "VCP-Migrate",
        '"vcp_migrate"',
        "vcp-migrations",
        "vcp-migarte",
        "vcp-migrator",
        "vcp-migrat",
    ],
)
def test_a_near_miss_table_name_is_an_error_naming_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    work = _layout(tmp_path, f'[tool.{name}]\ndb = "x.db"\n')
    monkeypatch.chdir(work)
    with pytest.raises(
        UsageError,
        match=r"pyproject.toml: \[tool\.\S+\] is not read by vcp-migrate \(name the table \[tool\.vcp-migrate\]\)",
    ):
        config.find()
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2 and "name the table [tool.vcp-migrate]" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not list((tmp_path / "data").iterdir())


def test_other_tools_tables_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    others = ("vcs-migrate", "vcp-deploy", "vcp", "ruff", "migrate", "vcp-migrate-server", "vcp-mighty", "vcp-mirage")
    tables = "".join(f"[tool.{name}]\nx = 1\n" for name in others)
    work = _layout(tmp_path, tables + '[tool.vcp-migrate]\ndb = "x.db"\n')
    monkeypatch.chdir(work)
    assert config.find() is not None and MigrationManager.from_config().db_path.name == "x.db"


@pytest.mark.parametrize(
    ("kind", "said"), [("folder", "a folder"), ("pipe", "no regular file"), ("device", "no regular file")]
)
def test_a_config_that_names_a_folder_a_pipe_or_a_device_says_so(project: Project, kind: str, said: str) -> None:
    """Each was said to be 'a file that does not exist', which it is not; a pipe is never opened."""
    named = {"folder": project.dir, "device": Path(os.devnull)}.get(kind, project.root / "fifo.toml")
    if kind == "pipe":
        os.mkfifo(named)
    for where, arguments, env in (
        ("--config", ["status", "--config", str(named)], {}),
        ("VCP_MIGRATE_CONFIG", ["status"], {"VCP_MIGRATE_CONFIG": str(named)}),
    ):
        result = project.cli(*arguments, env=env)
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"Error: {named}: {where} names {said} (give a pyproject.toml)\n"
    assert not project.db.exists()


def test_config_option_and_environment_pick_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = _layout(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text('[tool.vcp-migrate]\ndb = "other.db"\n')
    monkeypatch.chdir(work)
    monkeypatch.setenv("VCP_MIGRATE_CONFIG", str(other))
    assert config.find() == other
    assert MigrationManager.from_config().db_path == tmp_path / "other.db"
    assert config.find(tmp_path / "pyproject.toml") == tmp_path / "pyproject.toml"  # --config wins
    monkeypatch.setenv("VCP_MIGRATE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(UsageError, match="VCP_MIGRATE_CONFIG names a file that does not exist"):
        config.find()
    monkeypatch.delenv("VCP_MIGRATE_CONFIG")
    result = CliRunner().invoke(main, ["--config", "nowhere.toml", "status"])
    assert result.exit_code == 2 and "nowhere.toml: --config names a file that does not exist" in result.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("[project]\n")
    result = CliRunner().invoke(main, ["status", "--config", str(empty)])
    assert result.exit_code == 2 and "has no [tool.vcp-migrate] table" in result.stderr


def test_precedence_option_then_environment_then_config_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = _layout(tmp_path, '[tool.vcp-migrate]\ndb = "config.db"\nlock_timeout = 7\n')
    monkeypatch.chdir(work)
    assert MigrationManager.from_config().db_path == Path("../../config.db")
    assert MigrationManager.from_config().lock_timeout == 7.0
    assert MigrationManager.from_config().migrations_dir == Path("../../migrations")  # default, relative to the file
    monkeypatch.setenv("VCP_MIGRATE_DB", "env.db")
    monkeypatch.setenv("VCP_MIGRATE_LOCK_TIMEOUT", "8")
    assert MigrationManager.from_config().db_path == Path("env.db")
    assert MigrationManager.from_config().lock_timeout == 8.0
    chosen = MigrationManager.from_config(db_path="option.db", lock_timeout=9)
    assert (chosen.db_path, chosen.lock_timeout) == (Path("option.db"), 9)
    with pytest.raises(UsageError, match="unknown parameter 'database'"):
        MigrationManager.from_config(database="x.db")


def test_the_cli_and_the_api_use_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = _layout(tmp_path, '[tool.vcp-migrate]\ndb = "data/app.db"\ndir = "db/migrations"\nbackup = false\n')
    monkeypatch.chdir(work)
    result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 0, result.output
    assert MigrationManager.from_config().current() == 1
    assert not (tmp_path / "data" / "app.db.backups").exists()
    assert CliRunner().invoke(main, ["--db", "here.db", "current"]).exit_code == 1  # the option wins: no such db
    assert CliRunner().invoke(main, ["current", "--db", "../../data/app.db"]).output == "1\n"


def test_the_installed_command_from_a_subdirectory_uses_the_project_two_folders_up(tmp_path: Path) -> None:
    """As a new user would: pyproject.toml at the repository root, `cd src/app && vcp-migrate up`."""
    work = _layout(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(console_script()), *args]
        return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=60, env=env)

    up = run("up")
    assert up.returncode == 0, up.stderr
    assert f"Created {Path('../../data/app.db')}" in up.stdout
    assert (tmp_path / "data" / "app.db").exists() and list(work.iterdir()) == []
    assert run("current").stdout == "1\n"
    status = run("status", "--json")
    assert status.returncode == 0 and '"state": "applied"' in status.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.vcp_migrate]\ndb = "data/app.db"\n')
    wrong = run("up")
    assert wrong.returncode == 2 and wrong.stdout == "" and "Traceback" not in wrong.stderr
    assert wrong.stderr == (
        "Error: ../../pyproject.toml: [tool.vcp_migrate] is not read by vcp-migrate"
        " (name the table [tool.vcp-migrate])\n"
    )
    assert list(work.iterdir()) == []


# -- what from_config is given --------------------------------------------------------------------


def test_from_config_takes_the_paths_the_constructor_takes(project: Project) -> None:
    """A path object (or bytes) is a path, as for the constructor; an error names the parameter."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    for given, said in (
        ({"db_path": 3}, "db_path must be a path (a str or a path object), not int (3)"),
        ({"schema_file": ["s.sql"]}, "schema_file must be a path (a str or a path object), not list"),
        ({"migrations_dir": "m\0"}, "migrations_dir holds a NUL character"),
        ({"backup_dir": b""}, "backup_dir is empty (give a path)"),
        ({"dump_schema": "no"}, "dump_schema must be True or False, not 'no'"),
        ({"create": "false"}, "create must be True or False, not 'false'"),
        ({"schema_file": Path(".")}, "schema_file names a folder, not a file: '.'"),
    ):
        with pytest.raises(UsageError, match=re.escape(said)):
            MigrationManager.from_config(**given)
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]
    manager = MigrationManager.from_config(
        db_path=Path("x.db"), migrations_dir=project.dir, schema_file=Path("s.sql"), backup_dir=Path("kept")
    )
    assert (manager.db_path, manager.migrations_dir, manager.schema_file, manager.backup_dir) == (
        Path("x.db"), project.dir, Path("s.sql"), Path("kept")
    )  # fmt: skip
    assert MigrationManager.from_config(db_path=os.fsencode("y.db")).db_path == Path("y.db")
    assert [run.version for run in manager.migrate()] == [1]
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations", "s.sql", "x.db"]


# -- our table where it is not read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[tools.vcp-migrate]\n{settings}", "tools.vcp-migrate"),
        ("[Tool.vcp-migrate]\n{settings}", "Tool.vcp-migrate"),
        ("[too.vcp-migrate]\n{settings}", "too.vcp-migrate"),
        ("[TOOL.'vcp_migrate']\n{settings}", "TOOL.vcp_migrate"),
        ("[vcp-migrate]\n{settings}", "vcp-migrate"),
        ('["vcp_migrate"]\n{settings}', "vcp_migrate"),
        ('[tools]\nvcp-migrate = {{db = "prod.db", create = false}}\n', "tools.vcp-migrate"),
        ('vcp-migrate.db = "prod.db"\nvcp-migrate.create = false\n', "vcp-migrate"),
    ],
)
def test_our_table_outside_tool_is_an_error_naming_the_right_one(project: Project, text: str, shown: str) -> None:
    """Passed by, each would drop every setting: `up` created and migrated the default database."""
    (project.root / ".git").mkdir()
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    text = text.format(settings='db = "prod.db"\ncreate = false\n') + '\n[project]\nname = "app"\n'
    (project.root / "pyproject.toml").write_text(text)
    said = f"pyproject.toml: [{shown}] is not read by vcp-migrate (name the table [tool.vcp-migrate])"
    with pytest.raises(UsageError, match=re.escape(said)):
        parse_tool_table(text, "pyproject.toml")  # the Python 3.10 reader, on every version
    with pytest.raises(UsageError, match=re.escape(said)):
        MigrationManager.from_config()
    for command in ("up", "status"):
        result = CliRunner().invoke(main, [command])
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {said}\n")
    assert sorted(p.name for p in project.root.iterdir()) == [".git", "migrations", "pyproject.toml"]


def test_tables_of_other_names_outside_tool_are_left_alone(project: Project) -> None:
    text = (
        '[project]\nname = "vcp-migrate"\n[project.scripts]\nvcp-migrate = "vcp_migrate.cli:main"\n'
        "[tools]\nx = 1\n[tools.vcp-deploy]\nx = 1\n[toolz.black]\nx = 1\n[vcp]\nx = 1\n[vcp-deploy]\nx = 1\n"
        '[migrate]\nx = 1\n[tool.black]\nline-length = 99\n[tool.vcp-migrate]\ndb = "x.db"\n'
    )
    (project.root / ".git").mkdir()
    (project.root / "pyproject.toml").write_text(text)
    assert parse_tool_table(text) == {"db": "x.db"}
    assert MigrationManager.from_config().db_path == Path("x.db")


# -- settings that cannot name what they should ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("schema_file = '.'", "schema_file names a folder, not a file: '.'"),
        ("schema_file = './'", "schema_file names a folder, not a file: './'"),
        ("schema_file = '/'", "schema_file names a folder, not a file: '/'"),
        ("schema_file = 'migrations/..'", "schema_file names a folder, not a file: 'migrations/..'"),
        ("db = '.'", "db names a folder, not a file: '.'"),
        ("db = 'data/'", "db names a folder, not a file: 'data/'"),
    ],
)
def test_a_table_path_that_names_a_folder_is_refused_before_anything(project: Project, line: str, said: str) -> None:
    """``up`` with schema_file = "." once committed the migration, then failed on a ValueError."""
    (project.root / ".git").mkdir()
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b (x);", "DROP TABLE b;")
    assert project.cli("up", "--to", "1").exit_code == 0
    before = project.digest()
    (project.root / "pyproject.toml").write_text(f"[tool.vcp-migrate]\n{line}\n")
    said = f"pyproject.toml: [tool.vcp-migrate] {said} (give the path of a file, or leave the key out)"
    with pytest.raises(UsageError, match=re.escape(said)):
        MigrationManager.from_config()
    for args in (("up",), ("up", "--db", "test.db"), ("status",)):
        result = CliRunner().invoke(main, list(args))
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {said}\n")
    assert project.digest() == before and project.history() == [1]
    assert sorted(p.name for p in project.root.iterdir()) == [".git", "migrations", "pyproject.toml", "test.db"]
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql", "002_b.sql", "schema.sql"]
    (project.root / "pyproject.toml").unlink()
    result = CliRunner().invoke(main, ["up", "--db", "data/"])  # given, it is named as the option
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: --db names a folder, not a file: 'data/' (give the path of a file)\n",
    )
    assert sorted(p.name for p in project.root.iterdir()) == [".git", "migrations", "test.db"]


def test_an_error_names_where_a_value_came_from_not_an_option_never_typed(project: Project) -> None:
    """A database or a migrations folder from VCP_MIGRATE_DB/DIR or from the table: the message
    names that, not --db or --dir, which the user never typed."""
    (project.root / ".git").mkdir()
    (project.root / "folder.db").mkdir()
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    missing = "migrations directory does not exist"

    def said(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env=env)
        return result.exit_code, result.stderr

    assert said("status", env={"VCP_MIGRATE_DB": "folder.db"}) == (
        1,
        "Error: folder.db: is a directory, not a database file (check VCP_MIGRATE_DB)\n",
    )
    failed = CliRunner().invoke(main, ["up", "--json"], env={"VCP_MIGRATE_DB": "folder.db"})
    assert json.loads(failed.stdout)["error"] == "folder.db: is a directory, not a database file (check VCP_MIGRATE_DB)"
    assert said("up", env={"VCP_MIGRATE_DIR": "nowhere"}) == (
        1,
        f"Error: nowhere: {missing} (check VCP_MIGRATE_DIR, or create it with 'vcp-migrate new NAME')\n",
    )
    assert said("fleet", "status", "test.db", env={"VCP_MIGRATE_DIR": "nowhere"}) == (
        1,
        f"Error: nowhere: {missing} (check VCP_MIGRATE_DIR, or create it with 'vcp-migrate new NAME')\n",
    )
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\ndb = 'folder.db'\ndir = 'nowhere'\n")
    table = "in [tool.vcp-migrate] of pyproject.toml"
    assert said("up", "--dir", "migrations") == (
        1,
        f"Error: folder.db: is a directory, not a database file (check db {table})\n",
    )
    assert said("status", "--db", "test.db") == (
        1,
        f"Error: nowhere: {missing} (check dir {table}, or create it with 'vcp-migrate new NAME')\n",
    )
    # Given on the command line, or given over the environment, the option is named.
    assert said("status", "--db", "test.db", "--dir", "elsewhere", env={"VCP_MIGRATE_DIR": "nowhere"}) == (
        1,
        f"Error: elsewhere: {missing} (check --dir, or create it with 'vcp-migrate new NAME')\n",
    )
    assert said("status", "--db", "folder.db", "--dir", "migrations") == (
        1,
        "Error: folder.db: is a directory, not a database file (check --db)\n",
    )
    assert sorted(p.name for p in project.root.iterdir()) == [".git", "folder.db", "migrations", "pyproject.toml"]
    assert list((project.root / "folder.db").iterdir()) == []
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_a.sql"]


def test_a_byte_order_mark_is_named_not_an_invalid_statement_at_line_1(project: Project) -> None:
    """Saved by an editor as 'UTF-8 with BOM', the file was 'not valid TOML: Invalid statement (at
    line 1, column 1)' (or 'line 1: expected key = value' on Python 3.10): nothing to see there."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    (project.root / "pyproject.toml").write_bytes(b'\xef\xbb\xbf[tool.vcp-migrate]\r\ndb = "app.db"\r\n')
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: pyproject.toml: begins with a byte order mark (an invisible U+FEFF, as some editors save UTF-8),"
        " which TOML does not allow (save the file as UTF-8 without a BOM)\n"
    )
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations", "pyproject.toml"]


def test_a_folder_that_cannot_be_searched_for_the_configuration_is_a_usage_error(project: Project) -> None:
    """Run in a folder without its x bit, looking for pyproject.toml raised 'unexpected
    PermissionError ... report it'. Skipping the folder could miss the project's file and use the
    defaults (another database), so it is an error naming the file and what to do."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    closed = project.root / "closed"
    closed.mkdir()
    closed.chmod(0)
    try:
        command = [str(console_script()), "current", "--db", str(project.db)]
        environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
        result = subprocess.run(
            as_unprivileged(command), cwd=closed, capture_output=True, text=True, timeout=60, env=environment
        )
    finally:
        closed.chmod(0o755)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: pyproject.toml: cannot be looked for: Permission denied (make its folder searchable, or name the"
        " configuration file with --config)\n"
    )
    assert list(closed.iterdir()) == [] and project.digest() == before


def test_a_current_folder_deleted_under_the_shell_is_a_usage_error(project: Project) -> None:
    """Its folder deleted (a branch switched, a release folder replaced), every command said
    'unexpected FileNotFoundError ... report it'; with --config and an absolute --db it still runs."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    gone = project.root / "gone"
    gone.mkdir()
    script = (
        "import os, subprocess, sys\n"
        "os.chdir(sys.argv[1]); os.rmdir(sys.argv[1])\n"
        "for extra in ([], ['--config', sys.argv[3]]):\n"
        "    command = [sys.argv[2], 'current', '--db', sys.argv[4], *extra]\n"
        "    done = subprocess.run(command, capture_output=True, text=True)\n"
        "    print(done.returncode, repr(done.stdout), repr(done.stderr))\n"
    )
    config = project.root / "vcp.toml"
    config.write_text('[tool.vcp-migrate]\ndir = "migrations"\n')
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    arguments = [str(gone), str(console_script()), str(config), str(project.db)]
    result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, env=environment)
    said = (
        "Error: the current folder no longer exists, so no pyproject.toml can be looked for above it"
        " (cd into the project again)\n"
    )
    assert result.stdout.splitlines() == [f"2 '' {said!r}", "0 '1\\n' ''"]
    assert not gone.exists() and project.digest() == before
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations", "test.db", "vcp.toml"]
