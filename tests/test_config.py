"""Reading [tool.vcp-migrate]: tomllib on 3.11+, and the small reader used on 3.10."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vcp_migrate import UsageError
from vcp_migrate.config import parse_tool_table, read_settings

SAMPLES = [
    '[project]\nname = "x"\n\n[tool.vcp-migrate]\ndb = "prod.db"\ndir = \'db/migrations\'  # where they live\n',
    '[tool."vcp-migrate"]\ndb = "a \\"quoted\\" name.db"\n[tool.other]\ndb = "not ours"\n',
    "[tool.vcp-migrate]\n# nothing set\n",
    "[tool.vcp-migrate]\nflag = true\nnumber = 1_000\nratio = 0.5\n",
    '[tool.other]\nkey = "value"\n',
    '[[tool.array]]\nx = 1\n[tool.vcp-migrate]  # ours\ndb = "y"\n',
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.vcp-migrate]\ndb\n", "line 2: expected key = value"),
        ("[tool.vcp-migrate]\ndb = [1, 2]\n", "line 2: cannot read the value"),
        ('[tool.vcp-migrate]\ndb = "a"\ndb = "b"\n', "line 3: db is set twice"),
        ("[tool.vcp-migrate\ndb = 'x'\n", "line 1: malformed table header"),
        ("[project]\n[tool.vcp-migrate]]\n", "line 2: malformed table header"),
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
    with pytest.raises(UsageError, match="db must be a str, not 3"):
        read_settings(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="cannot be read"):
        read_settings(path)


def test_manager_settings_take_given_values_then_the_table_then_defaults(tmp_path: Path) -> None:
    from vcp_migrate.config import manager_settings

    assert manager_settings(path=tmp_path / "absent.toml") == (
        "vcp_trading.db",
        "migrations",
        True,
        5,
        True,
        None,
        True,
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.vcp-migrate]\ndb = "table.db"\nbackup = false\nkeep_backups = 2\nschema_file = "s.sql"\n'
        "user_version = false\ndump = false\n"
    )
    from_table = manager_settings(path=pyproject)
    assert (from_table.db, from_table.directory, from_table.backup, from_table.keep_backups) == (
        "table.db",
        "migrations",
        False,
        2,
    )
    assert (from_table.user_version, from_table.schema_file, from_table.dump) == (False, "s.sql", False)
    given = manager_settings("given.db", "given", True, 9, True, path=pyproject)
    assert (given.db, given.directory, given.backup, given.keep_backups, given.dump) == (
        "given.db",
        "given",
        True,
        9,
        True,
    )


def test_manager_settings_refuse_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    from vcp_migrate.config import manager_settings

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.vcp-migrate]\nkeep_backups = true\n")
    with pytest.raises(UsageError, match="keep_backups must be a int, not True"):
        manager_settings(path=pyproject)
