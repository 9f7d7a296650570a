"""The command line: exit codes, one-line errors, help, aliases, environment and configuration."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from vcp_migrate import UsageError
from vcp_migrate.cli import main

from .conftest import (
    Project,
    console_script,
    on_a_terminal,
    with_output_closed,
    with_output_missing,
    with_output_on_a_full_disk,
)

COMMANDS = [
    "migrate",
    "rollback",
    "status",
    "current",
    "new",
    "validate",
    "redo",
    "baseline",
    "repair",
    "backups",
    "restore",
    "schema",
]


def two(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")


def test_migrate_prints_each_migration_and_exits_0(project: Project) -> None:
    two(project)
    result = project.cli("migrate")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Applied 1 a (") and lines[1].startswith("Applied 2 b (")
    assert lines[2] == f"Created {project.db}"
    assert lines[3].startswith("Applied 2 migration(s) in ")
    again = project.cli("up")
    assert again.exit_code == 0 and "Nothing to apply" in again.stdout


def test_rollback_alias_and_steps(project: Project) -> None:
    two(project)
    project.cli("up")
    result = project.cli("down", "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "Rolled back 2 b" in result.stdout and "Rolled back 1 a" in result.stdout
    assert project.history() == []
    assert project.cli("rollback", "--to", "0").stdout.strip() == "Nothing to roll back."


def test_status_table_json_and_exit_code(project: Project) -> None:
    two(project)
    table = project.cli("status")
    assert table.exit_code == 0
    assert "does not exist yet" in table.stdout and "pending" in table.stdout
    result = project.cli("status", "--json", "--exit-code")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert [(d["version"], d["name"], d["applied"], d["state"], d["applied_at"]) for d in data] == [
        (1, "a", False, "pending", None),
        (2, "b", False, "pending", None),
    ]
    assert "does not exist yet" in result.stderr
    project.cli("up", "--to", "1")
    assert project.cli("status", "--exit-code").exit_code == 3
    project.cli("up")
    done = project.cli("status", "--json", "--exit-code")
    assert done.exit_code == 0 and all(d["applied"] for d in json.loads(done.stdout))


def test_new_prints_the_path(project: Project) -> None:
    result = project.cli("new", "AddPnlColumn")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"Created {project.dir / '001_add_pnl_column.py'}"
    assert project.cli("new", "idx", "--sql").stdout.strip().endswith("002_idx.sql")


def test_validate_exit_codes_and_json(project: Project) -> None:
    two(project)
    ok = project.cli("validate")
    assert ok.exit_code == 0 and "OK: no problems found." in ok.stdout
    project.write("003_c.py", "def up(c): pass\n")
    bad = project.cli("validate")
    assert bad.exit_code == 1
    assert f"{project.dir / '003_c.py'}: has no down" in bad.stdout
    data = json.loads(project.cli("validate", "--json").stdout)
    assert data["ok"] is False
    (problem,) = data["problems"]
    assert problem == {
        "kind": "no-down",
        "severity": "error",
        "version": 3,
        "file": str(project.dir / "003_c.py"),
        "message": "has no down, so it cannot be rolled back; add one",
        "diff": None,
        "hazard": None,
    }


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["rollback", "--steps", "0"], 2, "Error: Invalid value for '--steps': 0 is not in the range x>=1."),
        (["rollback", "--steps", "x"], 2, "Error: Invalid value for '--steps': 'x' is not a valid integer"),
        (["rollback", "--steps", "1", "--to", "0"], 2, "Error: --steps and --to cannot be used together"),
        (["migrate", "--to", "-3"], 2, "Error: Invalid value for '--to': -3 is not in the range x>=1."),
        (["migrate", "--lock-timeout", "-1"], 2, "Error: Invalid value for '--lock-timeout'"),
        (["migrate", "--bogus"], 2, "--bogus"),
        (["new"], 2, "Error: Missing argument 'NAME'."),
        (["new", "../../etc/passwd"], 2, "Error: migration name '../../etc/passwd' contains a path"),
        (["migrate", "--to", "9"], 1, "Error: --to 9 is not a migration in"),
        (["rollback"], 1, "test.db: does not exist (check --db; only 'migrate' creates a database)"),
    ],
)
def test_errors_are_one_line_with_the_documented_exit_code(
    project: Project, args: list[str], code: int, text: str
) -> None:
    two(project)
    result = project.cli(*args)
    assert result.exit_code == code, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ") and text in result.stderr
    assert "Traceback" not in result.output
    assert not project.db.exists()


def test_a_name_that_is_not_utf8_names_its_file_and_a_lone_surrogate_is_a_usage_error(project: Project) -> None:
    """Bytes that are not UTF-8 in an argument reach Python as surrogates standing for them: the
    file gets exactly those bytes. A surrogate that stands for no byte (main() called with a str)
    is one line, exit 2, nothing made; it was an 'unexpected UnicodeEncodeError'."""
    import os
    import subprocess

    two(project)
    refused = [
        (["up", "--db", "bad\ud800.db"], "Error: --db holds a lone surrogate ('\\ud800'), which no file name can"),
        (["up", "--dir", "m\ud800"], "Error: --dir holds a lone surrogate ('\\ud800'), which no file name can"),
        (["up", "--backup-dir", "b\ud800"], "Error: --backup-dir holds a lone surrogate ('\\ud800')"),
        (["fleet", "migrate", "f\ud800.db"], "Error: a database path holds a lone surrogate ('\\ud800')"),
    ]
    for args, said in refused:
        result = CliRunner().invoke(main, args)
        assert (result.exit_code, result.stdout) == (2, ""), result.stderr
        assert result.stderr.startswith(said) and len(result.stderr.splitlines()) == 1, result.stderr
    assert sorted(os.listdir(project.root)) == ["migrations"]
    assert sorted(os.listdir(project.dir)) == ["001_a.sql", "002_b.sql"]
    done = subprocess.run([console_script(), "up", "--db", b"bad\xff.db"], cwd=project.root, capture_output=True)
    assert done.returncode == 0 and b"Created bad\\udcff.db" in done.stdout, done.stderr
    assert sorted(os.listdir(os.fsencode(project.root))) == [b"bad\xff.db", b"migrations"]


def test_every_command_works_on_a_database_and_a_directory_whose_paths_are_not_utf8(project: Project) -> None:
    """Real processes given bytes that are not UTF-8 as paths (os.fsencode), a folder above both
    so named too: each command does what it does elsewhere, and says the paths with \\udce9."""
    import os
    import sqlite3
    import subprocess
    from contextlib import closing

    top = os.fsencode(project.root) + b"/r\xe9"
    folder = top + b"/m\xe9"
    os.makedirs(folder)
    for name, table in ((b"001_a.sql", "a"), (b"002_b.sql", "b")):
        with open(folder + b"/" + name, "w") as file:
            file.write(f"-- migrate:up\nCREATE TABLE {table}(x);\n-- migrate:down\nDROP TABLE {table};\n")
    database, old = top + b"/t\xe9.db", top + b"/old\xe9.db"
    with closing(sqlite3.connect(old)) as made:
        made.execute("CREATE TABLE a(x)")

    def run(*args: str, db: bytes = database) -> str:
        done = subprocess.run([console_script(), *args, "--db", db, "--dir", folder], capture_output=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, b""), (args, done.stderr)
        return done.stdout.decode()

    assert "Applied 2 migration(s)" in run("up")
    assert "r\\udce9/t\\udce9.db" in run("status") and run("current") == "2\n"
    assert run("validate", "--roundtrip") == "OK: no problems found.\n"
    assert run("schema") == "CREATE TABLE a (\n  x\n);\nCREATE TABLE b (\n  x\n);\n"
    assert "Would roll back 2 b" in run("rollback", "--dry-run")
    assert "Rolled back 2 b" in run("rollback") and "1 backup(s)" in run("backups")
    with open(folder + b"/001_a.sql", "a") as file:
        file.write("-- reviewed\n")
    assert "Recorded new checksums: 1." in run("repair", "--yes")
    assert "Recorded as applied without running them: 1." in run("baseline", "1", db=old)
    with closing(sqlite3.connect(database)) as connection:
        assert connection.execute("SELECT version, file FROM vcp_migrations").fetchall() == [(1, "001_a.sql")]
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'b'").fetchall() == []
    with closing(sqlite3.connect(old)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: No such command 'frobnicate'. (see 'vcp-migrate --help')"


def test_failed_migration_message_and_debug_traceback(project: Project) -> None:
    project.sql("001_bad.sql", "CREATE TABLE t(x);\nSELECT * FROM nowhere;")
    result = project.cli("migrate")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {project.dir / '001_bad.sql'}: statement 2 failed: no such table: nowhere (nothing was applied)"
    )
    debug = project.cli("migrate", "--debug")
    assert debug.exit_code == 1 and "Traceback" in debug.stderr
    assert project.tables() == set()


def test_an_error_names_a_file_as_status_does_a_line_break_escaped_and_spaces_kept(project: Project) -> None:
    """The error line folded all white space: 'current --db $'nl\\nx.db'' said 'nl x.db: does not
    exist' where status says nl\\nx.db, and a run of spaces in a name became one space, a name no
    file has. A name is shown as status shows it; what SQLite quotes of a statement is folded."""
    import os
    import subprocess

    from vcp_migrate.printable import printable

    two(project)
    for name in ("nl\nx.db", "two  spaces.db", "tab\tand\rcr.db"):
        command = [str(console_script()), "--dir", str(project.dir), "--db", name]
        done = subprocess.run([*command, "current"], cwd=project.root, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        said = f"Error: {printable(name)}: does not exist (check --db, or run 'vcp-migrate migrate' to create it)\n"
        assert done.stderr == said and said.count("\n") == 1, done.stderr
        status = subprocess.run([*command, "status"], cwd=project.root, capture_output=True, text=True, timeout=60)
        assert status.stdout.startswith(f"Migrations of {printable(name)}\n"), status.stdout
    assert sorted(os.listdir(project.root)) == ["migrations"]
    project.cli("migrate")
    project.sql("003_two  spaces.sql", "CREATE TABLE c (x CHECK (x > 0\n    AND x < 5));\nINSERT INTO c VALUES (9);")
    result = project.cli("migrate")
    assert (result.exit_code, result.stderr) == (
        1,
        f"Error: {project.dir / '003_two  spaces.sql'}: statement 2 failed: CHECK constraint failed: x > 0 AND x < 5"
        " (nothing was applied)\n",
    )
    assert project.history() == [1, 2] and project.tables() == {"a", "b"}


def test_unexpected_exception_is_one_line_without_debug(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from vcp_migrate import engine

    two(project)

    def broken(self: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.MigrationManager, "report", broken)
    result = project.cli("status")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: unexpected RuntimeError: boom (run again with --debug and report it)"


def test_interrupt_exits_130_and_names_the_migration(project: Project) -> None:
    project.write(
        "001_x.py", "def up(c):\n    c.execute('CREATE TABLE t(x)')\n    raise KeyboardInterrupt\ndef down(c): pass\n"
    )
    result = project.cli("migrate")
    assert result.exit_code == 130
    assert result.stderr.startswith(f"Error: interrupted while running {project.dir / '001_x.py'}")
    assert project.tables() == set()


def test_warnings_go_to_stderr(project: Project) -> None:
    two(project)
    project.cli("up")
    (project.dir / "001_a.sql").unlink()
    result = project.cli("up")
    assert result.exit_code == 0
    assert result.stderr.startswith("Warning: version 1 (a) is applied but its file is missing")


def test_environment_variables(project: Project) -> None:
    two(project)
    env = {"VCP_MIGRATE_DB": str(project.root / "env.db"), "VCP_MIGRATE_DIR": str(project.dir)}
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert (project.root / "env.db").exists() and not project.db.exists()
    bad = CliRunner().invoke(main, ["migrate"], env={**env, "VCP_MIGRATE_LOCK_TIMEOUT": "soon"})
    assert bad.exit_code == 2 and "VCP_MIGRATE_LOCK_TIMEOUT='soon' is not a finite number" in bad.stderr


@pytest.mark.parametrize("seconds", ["nan", "NaN", "inf", "-inf", "1e400", "-1"])
def test_lock_timeout_that_is_not_a_finite_number_of_seconds_is_a_usage_error(project: Project, seconds: str) -> None:
    two(project)
    project.cli("migrate", "--to", "1")
    before = project.digest()
    for result, start in (
        (project.cli("migrate", "--lock-timeout", seconds), "Error: Invalid value for '--lock-timeout': "),
        (project.cli("rollback", env={"VCP_MIGRATE_LOCK_TIMEOUT": seconds}), "Error: VCP_MIGRATE_LOCK_TIMEOUT="),
    ):
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(start)
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert project.digest() == before and project.history() == [1]


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -0.5])
def test_manager_refuses_a_lock_timeout_that_is_not_finite(project: Project, seconds: float) -> None:
    with pytest.raises(UsageError, match="lock timeout must be a finite number of seconds, 0 or more"):
        project.manager(lock_timeout=seconds)
    assert not project.db.exists()


def test_pyproject_defaults_and_command_line_precedence(project: Project) -> None:
    two(project)
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\ndb = "from_config.db"\ndir = "migrations"\n')
    assert CliRunner().invoke(main, ["migrate"]).exit_code == 0
    assert (project.root / "from_config.db").exists()
    assert CliRunner().invoke(main, ["migrate", "--db", "explicit.db"]).exit_code == 0
    assert (project.root / "explicit.db").exists()


def test_built_in_defaults(project: Project) -> None:
    two(project)
    assert CliRunner().invoke(main, ["migrate"]).exit_code == 0
    assert (project.root / "vcp_trading.db").exists()


def test_broken_pyproject_is_one_line_exit_2(project: Project) -> None:
    two(project)
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate\ndb = 'x'\n")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: pyproject.toml: ") and len(result.stderr.strip().splitlines()) == 1
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\ndatabase = 'x'\n")
    unknown = CliRunner().invoke(main, ["status"])
    assert unknown.exit_code == 2 and "unknown key 'database'" in unknown.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_a_readme_mention(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout and f"vcp-migrate {command}" in result.stdout.replace(
        "vcp-migrate up", "vcp-migrate migrate"
    ).replace("vcp-migrate down", "vcp-migrate rollback")
    for option in ("--db", "--dir", "--debug"):
        assert option in result.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"vcp-migrate {command}" in readme


def test_group_help_and_version() -> None:
    assert CliRunner().invoke(main, []).exit_code == 2
    assert "Commands:" in CliRunner().invoke(main, []).stdout
    version = CliRunner().invoke(main, ["--version"])
    assert version.exit_code == 0 and "vcp-migrate, version" in version.stdout


def test_no_colour_off_a_terminal(project: Project) -> None:
    two(project)
    result = project.cli("status")
    assert "\x1b[" not in result.stdout


def test_terminal_gets_progress_and_colour_and_no_color_removes_colour(project: Project) -> None:
    two(project)
    coloured = project.cli("migrate", env={"FORCE_COLOR": "1"})
    assert coloured.exit_code == 0
    assert "\x1b[32m" in coloured.stdout  # green "Applied"
    plain = project.cli("status", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.exit_code == 0 and "applied" in plain.stdout
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", plain.stdout)


@pytest.mark.parametrize(("no_color", "coloured"), [("", True), ("1", False)])
def test_no_color_empty_keeps_colour_everywhere_and_set_removes_it_everywhere(
    project: Project, no_color: str, coloured: bool
) -> None:
    """NO_COLOR set but empty turned off the error line's colour alone: the status table and
    Rich's diffs kept theirs. no-color.org: present and not empty turns colour off."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("001_a.sql", "CREATE TABLE a(y);", "DROP TABLE a;")  # edited since: validate shows a diff
    before = project.digest()
    where = ["--db", str(project.db), "--dir", str(project.dir)]
    colours = re.compile(r"\x1b\[[0-9;]*3[0-7]m")
    for arguments, code in ([*where, "status"], 0), ([*where, "validate"], 1), (["--db", "no/such.db", "current"], 1):
        command = ["env", f"NO_COLOR={no_color}", str(console_script()), *arguments]
        got, raw = on_a_terminal(command, project.root)
        assert got == code, raw
        assert bool(colours.search(raw)) is coloured, (arguments, raw)
    assert project.digest() == before and not (project.root / "no").exists()


def test_failing_rollback_of_an_edited_file_says_one_thing(project: Project) -> None:
    """Found by the bad-input campaign: no 'rolling back with its current down' warning before an
    error that rolls nothing back."""
    two(project)
    project.cli("up")
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b(x);\n")  # edited, and its down is gone
    result = project.cli("rollback")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {project.dir / '002_b.sql'}: has no down, so it cannot be rolled back"
        " (add one; nothing was rolled back)"
    ]


def test_global_options_before_the_command_as_after_it(project: Project) -> None:
    two(project)
    before = CliRunner().invoke(main, ["--db", str(project.db), "--dir", str(project.dir), "up", "--to", "1"])
    assert before.exit_code == 0, before.output
    assert project.history() == [1]
    mixed = CliRunner().invoke(
        main, ["--db", "elsewhere.db", "--dir", str(project.dir), "current", "--db", str(project.db)]
    )
    assert mixed.output == "1\n"  # after the command wins
    assert not (project.root / "elsewhere.db").exists()
    for options in (["--debug"], ["-q"], ["-v"], ["--no-color"], ["--config", "x.toml"]):
        result = CliRunner().invoke(main, [*options, "--help"])
        assert result.exit_code == 0 and "--config PATH" in result.output


def test_quiet_prints_only_errors(project: Project) -> None:
    two(project)
    quiet = project.cli("up", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert project.history() == [1, 2]
    down = CliRunner().invoke(main, ["-q", "down", "--db", str(project.db), "--dir", str(project.dir)])
    assert down.exit_code == 0 and down.stdout == "" and project.history() == [1]
    project.write("003_bad.sql", "-- migrate:up\nCREATE TABLE a(x);\n-- migrate:down\n")
    failed = project.cli("up", "-q")
    assert failed.exit_code == 1 and failed.stdout == "" and failed.stderr.startswith("Error: ")
    assert project.cli("status", "-q", "--json").stdout.startswith("[")  # data is still printed
    both = project.cli("up", "-q", "-v")
    assert both.exit_code == 2 and "-q and -v cannot be used together" in both.stderr


def test_verbose_prints_each_statement_with_its_time(project: Project) -> None:
    project.write(
        "001_a.sql", "-- migrate:up\nCREATE TABLE a(x);\nINSERT INTO a VALUES (1);\n-- migrate:down\nDROP TABLE a;\n"
    )
    project.write(
        "002_b.py",
        "def up(conn):\n    conn.execute('CREATE TABLE b(x)')\n"
        "    conn.executemany('INSERT INTO b VALUES (?)', [(1,), (2,)])\n"
        "def down(conn):\n    conn.execute('DROP TABLE b')\n",
    )
    result = CliRunner().invoke(main, ["-v", "up", "--db", str(project.db), "--dir", str(project.dir)])
    assert result.exit_code == 0, result.output
    timed = [line for line in result.stdout.splitlines() if re.match(r"^\s+\d+\.\d ms  ", line)]
    assert [line.split(" ms  ", 1)[1] for line in timed] == [
        "CREATE TABLE a(x);",
        "INSERT INTO a VALUES (1);",
        "CREATE TABLE b(x)",
        "INSERT INTO b VALUES (?)",
    ]
    assert "SAVEPOINT" not in result.stdout and project.history() == [1, 2]


def test_verbose_prints_statements_of_executescript_and_of_a_migration_outside_a_transaction(
    project: Project,
) -> None:
    project.write(
        "001_a.py",
        "def up(conn):\n    conn.executescript('CREATE TABLE a(x); CREATE TABLE b(y);')\n"
        "def down(conn):\n    conn.execute('DROP TABLE b')\n    conn.execute('DROP TABLE a')\n",
    )
    project.write(
        "002_n.sql",
        "-- migrate:up transaction:false\nCREATE TABLE n(x);\n-- migrate:down transaction:false\nDROP TABLE n;\n",
    )
    result = CliRunner().invoke(main, ["-v", "up", "--db", str(project.db), "--dir", str(project.dir)])
    assert result.exit_code == 0, result.output
    timed = [line.split(" ms  ", 1)[1] for line in result.stdout.splitlines() if re.match(r"^\s+\d+\.\d ms  ", line)]
    assert timed == ["CREATE TABLE a(x);", "CREATE TABLE b(y);", "CREATE TABLE n(x);"]
    assert project.history() == [1, 2] and {"a", "b", "n"} <= project.tables()


def test_no_color_holds_for_usage_errors_on_a_terminal(project: Project) -> None:
    for args in (["--no-color", "up", "--bogus"], ["up", "--no-color", "--bogus"], ["up", "--bogus"]):
        code, output = on_a_terminal([str(console_script()), *args], project.root)
        assert code == 2 and "No such option '--bogus'" in output
        assert ("\x1b[" in output) == ("--no-color" not in args), output
    assert sorted(p.name for p in project.root.iterdir()) == ["migrations"]


def test_ctrl_c_that_python_wrapped_in_another_error_is_an_interrupt(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while a module loads the first time (a class being made) reaches us as a RuntimeError
    caused by the KeyboardInterrupt: still exit 130 and 'interrupted', not 'unexpected'."""
    from vcp_migrate import MigrationManager

    def interrupted(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance 'sent' in '_Worker'") from exc

    monkeypatch.setattr(MigrationManager, "report", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["status", "--db", str(project.db), "--dir", str(project.dir)])
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert err == "Error: interrupted; nothing was changed (this command only reads)\n"  # status only reads


@pytest.mark.parametrize(
    ("args", "method"),
    [
        (["status"], "report"),
        (["status", "--json"], "report"),
        (["current"], "current"),
        (["validate"], "validate"),
        (["schema"], "schema_text"),
        (["backups"], "backups"),
        (["up"], "migrate"),
        (["down"], "rollback"),
    ],
)
def test_ctrl_c_in_a_command_that_only_reads_says_nothing_was_changed(
    project: Project, monkeypatch: pytest.MonkeyPatch, args: list[str], method: str
) -> None:
    """Not the changing commands' 'a transactional migration is rolled back whole', which made a
    reader of 'status' wonder what was rolled back."""
    from vcp_migrate import MigrationManager

    two(project)
    project.manager().migrate(target=1)
    before = project.digest()
    files = sorted(p.name for p in project.root.rglob("*"))

    def interrupted(*arguments: object, **keywords: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(MigrationManager, method, interrupted)
    result = project.cli(*args)
    assert (result.exit_code, result.stdout) == (130, "")
    if method in ("migrate", "rollback"):
        assert result.stderr.startswith("Error: interrupted (a transactional migration is rolled back whole;")
    else:
        assert result.stderr == "Error: interrupted; nothing was changed (this command only reads)\n"
    assert project.digest() == before and project.history() == [1]
    assert sorted(p.name for p in project.root.rglob("*")) == files


def test_ctrl_c_before_the_command_begins_is_an_interrupt_not_a_refused_question(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while the command line is still being read (click turns it into Abort, as it does a
    question left unanswered): exit 130, said as an interrupt, nothing changed."""
    from vcp_migrate.cli import base

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(base.Group, "resolve_command", interrupted)
    with pytest.raises(SystemExit) as stopped:
        main(["status", "--db", str(project.db), "--dir", str(project.dir)])
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted before anything was done; nothing was changed" in err and "no answer" not in err
    assert not project.db.exists()


@pytest.mark.parametrize("arguments", [["--help"], ["--version"], ["status", "--help"], []])
@pytest.mark.parametrize("where", ["a full disk", "a reader gone", "none at all"])
def test_help_and_version_that_cannot_be_printed_are_one_line_not_a_traceback(
    tmp_path: Path, arguments: list[str], where: str
) -> None:
    """Printed before any command, outside its guard: on a full disk a traceback (OSError: No
    space left on device), and with the reader gone the help of no command too; --help exited 1
    saying nothing; with no standard output at all (>&-), exit 0 saying nothing. The exit code
    is 1 (2 for no command: a usage error), and nothing is made."""
    command = [str(console_script()), *arguments]
    if where == "a full disk":
        code, err = with_output_on_a_full_disk(command, tmp_path)
        said = "Error: standard output could not be written (No space left on device), so some of what the command"
        said += " printed is lost\n"
    elif where == "none at all":
        code, err = with_output_missing(command, tmp_path)
        said = "Error: standard output was closed from the start, so nothing the command printed could be seen\n"
    else:
        code, err = with_output_closed(command, tmp_path)
        said = "Error: standard output was closed before all was printed\n"
    assert (code, err) == (2 if not arguments else 1, said)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("stauts", "status"), ("Status", "status"), ("migrat", "migrate"), ("valdiate", "validate"), ("dwon", "down")],
)
def test_a_mistyped_command_names_the_one_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: str, meant: str
) -> None:
    """'No such command' said only to see --help; click suggests options, not commands."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [typed])
    assert result.exit_code == 2
    assert result.stderr == f"Error: No such command '{typed}'. Did you mean '{meant}'? (see 'vcp-migrate --help')\n"
    assert list(tmp_path.iterdir()) == []
    fleet = CliRunner().invoke(main, ["fleet", "stauts"])
    assert (fleet.exit_code, fleet.stderr) == (
        2,
        "Error: No such command 'stauts'. Did you mean 'status'? (see 'vcp-migrate fleet --help')\n",
    )


def test_a_usage_error_is_exit_2_even_when_it_cannot_be_said(tmp_path: Path) -> None:
    """Standard error on a full disk: writing the error line raised, and the exit code was 1."""
    code, out = with_output_on_a_full_disk([str(console_script()), "stauts"], tmp_path, errors=True)
    assert (code, out) == (2, "")
    code, out = with_output_on_a_full_disk([str(console_script()), "current", "--db", "x.db"], tmp_path, errors=True)
    assert (code, out) == (1, "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["rollback", "--steps"], "Option '--steps' requires an argument."),
        (["status", "--json=1"], "Option '--json' does not take a value."),
        (["status", "--db"], "Option '--db' requires an argument."),
        # A fleet's command: they said "see 'vcp-migrate fleet --help'", which lists none either.
        (["fleet", "status", "--jobs"], "Option '--jobs' requires an argument."),
        (["fleet", "migrate", "a.db", "--jobs"], "Option '--jobs' requires an argument."),
        (["fleet", "validate", "--json=1"], "Option '--json' does not take a value."),
    ],
)
def test_an_option_without_its_value_points_at_its_command_s_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    """click's parser raises these with no context: they said "see 'vcp-migrate --help'", which
    lists none of the command's options."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, arguments)
    command = " ".join(arguments[: 2 if arguments[0] == "fleet" else 1])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message} (see 'vcp-migrate {command} --help')\n"
    assert list(tmp_path.iterdir()) == []
