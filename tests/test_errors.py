"""Errors as each audience reads them: Python parameters from the API, options from the command
line; the exception underneath chained as ``__cause__``; warnings on the ``vcp_migrate`` logger."""

from __future__ import annotations

import inspect
import json
import logging
import sqlite3
import typing

import click
import pytest

from vcp_migrate import MigrationManager
from vcp_migrate.cli import main
from vcp_migrate.cli.naming import OPTIONS, TABLE_ONLY, as_option
from vcp_migrate.errors import (
    DatabaseError,
    MigrationFailed,
    Parameter,
    PlanError,
    UsageError,
    VcpMigrateError,
    setting,
)
from vcp_migrate.fleet import Fleet

from .conftest import Project, three


def cli_error(project: Project, *args: str) -> str:
    """The one error line the command line printed (it must fail)."""
    result = project.cli(*args)
    assert result.exit_code != 0, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


# -- naming: the parameter from Python, the option from the command line ---------------------------


def test_a_missing_migrations_directory_names_migrations_dir_or_dir(project: Project) -> None:
    missing = project.root / "migrtions"
    with pytest.raises(VcpMigrateError) as raised:
        MigrationManager(project.db, missing).status()
    assert str(raised.value) == (
        f"{missing}: migrations directory does not exist"
        " (check migrations_dir, or create it with 'vcp-migrate new NAME')"
    )
    result = project.cli("status", "--dir", str(missing))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {missing}: migrations directory does not exist"
        " (check --dir, or create it with 'vcp-migrate new NAME')\n"
    )


def test_the_wrong_migrations_directory_names_migrations_dir_or_dir(project: Project) -> None:
    three(project)
    project.manager().migrate()
    other = project.root / "other"
    other.mkdir()
    with pytest.raises(PlanError) as raised:
        MigrationManager(project.db, other).migrate()
    assert str(raised.value).endswith("as the migrations directory (migrations_dir); nothing was changed)")
    line = cli_error(project, "migrate", "--dir", str(other))
    assert line.endswith("as the migrations directory (--dir); nothing was changed)")
    assert project.history() == [1, 2, 3]


def test_a_database_path_that_is_a_directory_names_db_path_or_db_for_status(project: Project) -> None:
    project.db.mkdir()
    with pytest.raises(DatabaseError) as raised:
        project.manager().status()
    assert str(raised.value) == f"{project.db}: is a directory, not a database file (check db_path)"
    assert cli_error(project, "status") == f"Error: {project.db}: is a directory, not a database file (check --db)"


def test_a_missing_database_names_db_path_or_db_for_current(project: Project) -> None:
    with pytest.raises(DatabaseError) as raised:
        project.manager().current()
    assert str(raised.value) == (
        f"{project.db}: does not exist (check db_path, or run 'vcp-migrate migrate' to create it)"
    )
    assert cli_error(project, "current") == (
        f"Error: {project.db}: does not exist (check --db, or run 'vcp-migrate migrate' to create it)"
    )
    assert not project.db.exists()


def test_out_of_order_names_allow_out_of_order_as_a_parameter_or_an_option(project: Project) -> None:
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    project.manager().migrate()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    with pytest.raises(PlanError) as raised:
        project.manager().migrate()
    assert "or pass allow_out_of_order=True; nothing was applied" in str(raised.value)
    assert "--" not in str(raised.value)
    line = cli_error(project, "migrate")
    assert line.endswith("(renumber it above the applied ones, or pass --allow-out-of-order; nothing was applied)")
    assert project.history() == [2]


def test_migrate_json_names_the_option_in_its_error_too(project: Project) -> None:
    project.sql("002_b.sql", "CREATE TABLE b(x);")
    project.manager().migrate()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    result = project.cli("migrate", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error.endswith("(renumber it above the applied ones, or pass --allow-out-of-order; nothing was applied)")
    assert project.history() == [2]


def test_rollback_to_an_unknown_version_names_to_or_the_to_option(project: Project) -> None:
    three(project)
    project.manager().migrate()
    with pytest.raises(PlanError) as raised:
        project.manager().rollback(to=7)
    assert str(raised.value) == f"to=7 is not a migration in {project.dir} (known versions: 1, 2, 3)"
    assert cli_error(project, "rollback", "--to", "7") == (
        f"Error: --to 7 is not a migration in {project.dir} (known versions: 1, 2, 3)"
    )
    assert project.history() == [1, 2, 3]


def test_migrate_to_an_unknown_version_names_target_or_the_to_option(project: Project) -> None:
    three(project)
    with pytest.raises(PlanError, match=r"^target=7 is not a migration in "):
        project.manager().migrate(7)
    assert cli_error(project, "migrate", "--to", "7").startswith("Error: --to 7 is not a migration in ")
    assert project.history() == []


def test_more_steps_than_applied_names_to_0_or_the_to_option(project: Project) -> None:
    three(project)
    project.manager().migrate()
    with pytest.raises(PlanError, match=r"\(use to=0 to roll back every applied migration; nothing was changed\)"):
        project.manager().rollback(4)
    line = cli_error(project, "rollback", "--steps", "4")
    assert line.endswith("(use --to 0 to roll back every applied migration; nothing was changed)")
    assert project.history() == [1, 2, 3]


def test_a_missing_file_names_from_history_as_a_parameter_or_an_option(project: Project) -> None:
    three(project)
    project.manager().migrate()
    (project.dir / "003_c.sql").unlink()
    with pytest.raises(PlanError) as raised:
        project.manager().rollback()
    assert "restore the file, or pass from_history=True to run the down kept in the database" in str(raised.value)
    line = cli_error(project, "rollback")
    assert "restore the file, or pass --from-history to run the down kept in the database" in line
    assert project.history() == [1, 2, 3]


def test_configuration_errors_name_path_or_the_config_option(project: Project) -> None:
    with pytest.raises(UsageError) as raised:
        MigrationManager.from_config("nowhere.toml")
    assert str(raised.value) == "nowhere.toml: path names a file that does not exist (give a pyproject.toml)"
    (project.root / "pyproject.toml").write_bytes(b"[tool.vcp-migrate]\ndb = '\xff'\n")
    with pytest.raises(UsageError) as raised:
        MigrationManager.from_config()
    assert str(raised.value).endswith("(fix the file, or name another with path)")
    result = project.cli("status")
    assert result.exit_code == 2 and result.stderr.endswith("(fix the file, or name another with --config)\n")
    assert not project.db.exists()


def test_a_setting_with_a_value_is_spelled_for_each_audience() -> None:
    error = PlanError(
        "refused", hint=f"pass {setting('backup', False)} or {setting('atomic', True)} or {setting('to', 0)}"
    )
    assert str(error) == "refused (pass backup=False or atomic=True or to=0)"
    assert error.message(as_option) == "refused (pass --no-backup or --atomic or --to 0)"


def test_every_parameter_a_message_may_name_is_one_of_the_api_and_has_an_option_of_the_cli() -> None:
    parameters = set(typing.get_args(Parameter))
    api = {
        name
        for method in (
            MigrationManager.__init__,
            MigrationManager.migrate,
            MigrationManager.rollback,
            MigrationManager.from_config,
            Fleet.__init__,
            Fleet.migrate,
        )
        for name in inspect.signature(method).parameters
    }
    assert parameters <= api
    assert set(OPTIONS) == parameters
    assert isinstance(main, click.Group)
    context = click.Context(main)
    fleet = main.get_command(context, "fleet")
    assert isinstance(fleet, click.Group)
    commands = [*main.commands.values(), *fleet.commands.values()]
    options = {
        option
        for command in commands
        for parameter in command.get_params(context)
        for option in (*parameter.opts, *parameter.secondary_opts)
    }
    assert set(OPTIONS.values()) - set(TABLE_ONLY.values()) <= options
    assert "--no-backup" in options and "--no-create" in options  # what False spells


# -- chaining: __cause__ is the exception underneath ----------------------------------------------


def test_a_failing_statement_chains_sqlites_error(project: Project) -> None:
    project.sql("001_bad.sql", "CREATE TABLE a(x);\nINSERT INTO nowhere VALUES (1);")
    with pytest.raises(MigrationFailed) as raised:
        project.manager().migrate()
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert str(raised.value.__cause__) == "no such table: nowhere"
    assert project.tables() == set() and project.history() == []


def test_a_python_migration_that_raises_is_the_cause(project: Project) -> None:
    project.write(
        "001_boom.py",
        """
        class Boom(Exception):
            pass

        def up(connection):
            connection.execute("CREATE TABLE a(x)")
            raise Boom("no good")

        def down(connection):
            pass
        """,
    )
    with pytest.raises(MigrationFailed) as raised:
        project.manager().migrate()
    cause = raised.value.__cause__
    assert type(cause).__name__ == "Boom" and str(cause) == "no good"
    assert project.tables() == set() and project.history() == []


def test_opening_a_file_that_is_not_a_database_chains_sqlites_error(project: Project) -> None:
    project.db.write_bytes(b"not a database at all, but long enough to have a header" * 20)
    before = project.digest()
    with pytest.raises(DatabaseError) as raised:
        project.manager().current()
    assert str(raised.value).endswith("is not a SQLite database (check db_path; nothing was changed)")
    assert isinstance(raised.value.__cause__, sqlite3.DatabaseError)
    assert project.digest() == before


# -- warnings: the vcp_migrate logger when no observer is given ------------------------------------


def missing_applied_file(project: Project) -> str:
    three(project)
    project.manager().migrate(2)
    (project.dir / "002_b.sql").unlink()
    return f"version 2 (b) is applied but its file is missing from {project.dir}"


def test_without_an_observer_a_warning_goes_to_the_vcp_migrate_logger(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    warning = missing_applied_file(project)
    with caplog.at_level(logging.WARNING, logger="vcp_migrate"):
        runs = project.manager().migrate()
    assert [run.version for run in runs] == [3]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [("vcp_migrate", logging.WARNING, warning)]


def test_the_command_line_prints_a_warning_once_and_logs_nothing(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    warning = missing_applied_file(project)
    with caplog.at_level(logging.DEBUG, logger="vcp_migrate"):
        result = project.cli("migrate")
    assert result.exit_code == 0
    assert result.stderr.count(warning) == 1 and f"Warning: {warning}\n" in result.stderr
    assert caplog.records == []
    assert project.history() == [1, 2, 3]
