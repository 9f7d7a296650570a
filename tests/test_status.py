"""status: every state, never creating or changing the database, names shown and not obeyed."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from vcp_migrate import MigrationManager, PlanError

from .conftest import (
    ENV_VARS,
    Project,
    console_script,
    modified_missing_and_out_of_order,
    run_cli,
    three,
    with_output_closed,
    with_output_missing,
    with_output_on_a_full_disk,
    wrong_directory,
    wrong_directory_error,
)
from .conftest import (
    on_a_terminal as terminal,
)


def states(project: Project) -> list[tuple[object, str]]:
    return [(row["version"], str(row["state"])) for row in project.manager().status()]


def test_every_state(project: Project) -> None:
    modified_missing_and_out_of_order(project)
    project.sql("005_e.sql", "CREATE TABLE e(x);")
    project.write("notes.sql", "-- migrate:up\n")
    assert states(project) == [
        (1, "modified"),
        (2, "missing"),
        (3, "out-of-order"),
        (4, "applied"),
        (5, "pending"),
        (None, "invalid"),
    ]
    rows = {row["version"]: row for row in project.manager().status()}
    assert rows[4]["applied"] is True and str(rows[4]["applied_at"]).endswith("Z")
    assert rows[5]["applied"] is False and rows[5]["applied_at"] is None
    assert rows[1]["checksum"] != rows[1]["applied_checksum"]
    assert rows[2]["checksum"] is None and rows[2]["name"] == "b"


def test_status_on_a_missing_database_creates_nothing(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    report = project.manager().report()
    assert not report.database_exists
    assert [row.state for row in report.rows] == ["pending"]
    assert not project.db.exists()


def test_status_never_runs_migration_code(project: Project) -> None:
    project.write("001_a.py", "import os\nos.mkdir('ran_at_import')\ndef up(c): pass\ndef down(c): pass\n")
    assert states(project) == [(1, "pending")]
    assert not (project.root / "ran_at_import").exists()


def test_two_files_of_one_version_are_each_invalid_and_fail_the_gate(project: Project) -> None:
    """Which file is the migration is not known: both are invalid, and --exit-code says 4, as
    for any file migrate would refuse (it was an error, exit 1, with no table)."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("2_t.sql", "CREATE TABLE t(x);", "DROP TABLE t;")
    project.manager().migrate()
    project.sql("002_dup.sql", "SELECT 1;", "SELECT 1;")
    rows = project.manager().status()
    assert [(row["version"], row["state"], row["applied"], row["file"]) for row in rows] == [
        (1, "applied", True, str(project.dir / "001_a.sql")),
        (2, "invalid", True, str(project.dir / "002_dup.sql")),  # the history has version 2: applied says so
        (2, "invalid", True, str(project.dir / "2_t.sql")),
    ]
    result = project.cli("status", "--exit-code")
    assert result.exit_code == 4 and "1 applied, 0 pending, 2 invalid" in result.stdout


def test_a_pending_sql_file_migrate_would_refuse_to_read_is_invalid(project: Project) -> None:
    """A section marker it does not know, a hazard name that is none: migrate refuses the file,
    so status says invalid (exit code 4), not pending (3). A Python file is never loaded here."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.write("002_b.sql", "-- migrate:up\nSELECT 1;\n-- migrate: down\nSELECT 1;\n")
    project.write("003_c.sql", "-- migrate:up\n-- vcp:allow drop-colum\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    project.write("004_d.py", "raise SystemExit('never run by status')\n")
    assert states(project) == [(1, "applied"), (2, "invalid"), (3, "invalid"), (4, "pending")]
    assert project.cli("status", "--exit-code").exit_code == 4


def test_unreadable_file_is_invalid(project: Project) -> None:
    outside = project.root / "x.sql"
    outside.write_text("-- migrate:up\n")
    (project.dir / "001_link.sql").symlink_to(outside)
    assert states(project) == [(1, "invalid")]


RED = "003_\x1b[31mred.sql"


TITLE = "004_\x1b]0;pwned\x07x.sql"


def test_escape_sequences_in_names_are_shown_not_obeyed(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql(RED, "CREATE TABLE r(x);", "DROP TABLE r;")
    project.sql(TITLE, "INSERT INTO nothing VALUES (1);")
    before = project.digest()
    plain = project.cli("status")
    coloured = project.cli("status", env={"FORCE_COLOR": "1"})
    assert plain.exit_code == coloured.exit_code == 0
    assert "\x1b" not in plain.stdout
    assert "\\x1b[31mred" in plain.stdout and "\\x1b]0;pwned\\x07x" in plain.stdout
    # On a terminal only Rich's own styles remain: the names' sequences are shown, not sent.
    assert "\x1b[" in coloured.stdout and "\x1b[31mred" not in coloured.stdout and "\x1b]" not in coloured.stdout
    rows = json.loads(project.cli("status", "--json").stdout)
    assert [row["name"] for row in rows] == ["a", "\x1b[31mred", "\x1b]0;pwned\x07x"]
    assert rows[1]["file"] == str(project.dir / RED)
    assert project.digest() == before
    failed = project.cli("migrate", "--no-backup")
    assert failed.exit_code == 1
    assert "\x1b" not in failed.stdout + failed.stderr
    assert failed.stdout.startswith("Applied 3 \\x1b[31mred (")
    assert failed.stderr.startswith(f"Error: {project.dir}/004_\\x1b]0;pwned\\x07x.sql: ")
    assert project.history() == [1, 3] and project.tables() == {"a", "r"}
    after = project.digest()
    (project.dir / RED).unlink()
    validate = project.cli("validate")
    assert "\x1b" not in validate.stdout and "3 (\\x1b[31mred) is applied but its file is missing" in validate.stdout
    assert project.digest() == after


def test_database_name_is_not_read_as_markup(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    result = project.cli("status", "--db", str(project.root / "[/x].db"))
    assert result.exit_code == 0, result.output
    assert "Migrations of " in result.stdout and "[/x].db does not exist yet" in result.stdout
    assert not (project.root / "[/x].db").exists()
    marked = str(project.root / "[red]x.db")
    assert project.cli("migrate", "--db", marked).exit_code == 0
    again = project.cli("migrate", "--db", marked)
    assert again.exit_code == 0 and again.stdout == f"Nothing to apply: {marked} is up to date.\n"
    with closing(sqlite3.connect(marked)) as connection:
        assert connection.execute("SELECT version FROM vcp_migrations").fetchall() == [(1,)]


STATUS_IMPORTS = """
import sys
from vcp_migrate.cli import main

try:
    main(["status", "--db", sys.argv[1], "--dir", sys.argv[2], *sys.argv[3:]])
except SystemExit:
    pass
print(" ".join(sorted(name for name in sys.modules if name.startswith(("vcp_migrate", "_hashlib")))), file=sys.stderr)
print(" ".join(sorted(name for name in sys.modules if name.startswith("rich"))))
"""


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["table", "json"])
def test_status_imports_no_command_module_but_its_own(project: Project, json_flag: tuple[str, ...]) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.manager().migrate()
    result = subprocess.run(
        [sys.executable, "-c", STATUS_IMPORTS, str(project.db), str(project.dir), *json_flag],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(result.stderr.split())
    commands = {name for name in loaded if name.startswith("vcp_migrate.commands.")}
    assert commands == {"vcp_migrate.commands.context", "vcp_migrate.commands.status"}
    assert "vcp_migrate.render" not in loaded  # off a terminal the table is plain text: no Rich at all
    assert not {name for name in result.stdout.split() if name == "rich" or name.startswith("rich.")}
    for heavy in ("execution", "steps", "loading", "backups", "checks", "lock", "schema", "hazards", "sqltext"):
        assert f"vcp_migrate.{heavy}" not in loaded
    # The other commands' modules (the group imports a command's module when it runs), and
    # OpenSSL (a few small files are hashed by the interpreter's own SHA-256).
    assert not loaded & {"vcp_migrate.cli.changing", "vcp_migrate.cli.fleet", "vcp_migrate.cli.fleet_shared"}
    assert "_hashlib" not in loaded


def test_the_summary_counts_each_state(project: Project) -> None:
    modified_missing_and_out_of_order(project)
    project.write("notes.sql", "-- not a migration name\n")
    result = project.cli("status")
    assert result.exit_code == 0
    assert "1 applied, 0 pending, 1 modified, 1 missing, 1 out-of-order, 1 invalid" in result.stdout


def test_the_summary_of_a_database_not_yet_made_counts_invalid_files_apart(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    project.write("notes.sql", "-- not a migration name\n")
    result = project.cli("status")
    assert f"{project.db} does not exist yet: 1 migration(s) pending (1 invalid)" in result.stdout
    assert not project.db.exists()


def test_a_database_with_tables_and_no_history_is_said_so(project: Project) -> None:
    sqlite3.connect(project.db).execute("CREATE TABLE existing(x)").connection.close()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    before = project.digest()
    report = project.manager().report()
    assert report.unmanaged == ("existing",) and len(report.pending) == 1
    for args in ((), ("--json",)):
        result = project.cli("status", *args)
        assert result.exit_code == 0, result.output
        assert "has 1 table(s) (existing) and no migration history" in result.stderr
        assert "vcp-migrate baseline VERSION" in result.stderr
        # A CI gate: 3 said "only pending", as if migrate would run; it refuses this database.
        assert project.cli("status", *args, "--exit-code").exit_code == 4
    assert project.digest() == before
    project.manager(allow_existing=True).migrate()
    assert project.manager().report().unmanaged == ()


def test_the_note_does_not_say_migrate_refuses_when_allow_existing_is_configured(project: Project) -> None:
    sqlite3.connect(project.db).execute("CREATE TABLE existing(x)").connection.close()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\nallow_existing = true\n")
    before = project.digest()
    result = project.cli("status")
    assert result.exit_code == 0 and "has 1 table(s) (existing) and no migration history" in result.stderr
    assert "refuses" not in result.stderr and "allow_existing" in result.stderr
    assert project.cli("status", "--exit-code").exit_code == 3  # migrate will apply them: only pending
    assert project.digest() == before


# -- on a terminal and off it ---------------------------------------------------------------------

LONG = "add_a_reporting_currency_column_to_every_trade_and_backfill_it_from_the_fx_table"
BOX = re.compile("[\u2500-\u257f]")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def long_and_short(project: Project) -> list[str]:
    """Version 1 (a long name) applied; 2 pending; an invalid file. Returns 1's applied_at."""
    project.sql(f"001_{LONG}.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate(target=1)
    project.write("notes.sql", "-- not a migration name\n")
    return [str(row[0]) for row in project.query("SELECT applied_at FROM vcp_migrations")]


def test_off_a_terminal_status_is_plain_aligned_lines(project: Project) -> None:
    (applied_at,) = long_and_short(project)
    before = project.digest()
    result = project.cli("status")
    assert result.exit_code == 0, result.output
    blank = " " * len(applied_at)
    assert result.stdout.splitlines() == [
        f"Migrations of {project.db}",
        f"Version  State    {'Applied at (UTC)':<{len(applied_at)}}  Name",
        f"      1  applied  {applied_at}  {LONG}",
        f"      2  pending  {blank}  b",
        f"      -  invalid  {blank}  notes",
        "1 applied, 1 pending, 1 invalid",
    ]
    assert project.digest() == before


def test_piped_status_is_plain_whole_and_without_box_drawing(project: Project) -> None:
    (applied_at,) = long_and_short(project)
    before = project.digest()
    result = run_cli(project, "status")  # stdout is a pipe
    assert result.returncode == 0, result.stderr
    assert not BOX.search(result.stdout) and "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == f"Migrations of {project.db}" and lines[-1] == "1 applied, 1 pending, 1 invalid"
    rows = [line.split(maxsplit=3) for line in lines[2:-1] if "applied" in line]
    assert rows == [["1", "applied", applied_at, LONG]]
    assert [line.split()[-1] for line in lines[1:-1]] == ["Name", LONG, "b", "notes"]
    columns = {
        line.index(state) for line, state in zip(lines[1:-1], ("State", "applied", "pending", "invalid"), strict=True)
    }
    assert len(columns) == 1  # aligned
    assert project.digest() == before


def on_a_terminal(project: Project, *args: str, columns: int) -> tuple[int, str]:
    """Run the installed vcp-migrate with its output on a pseudo-terminal COLUMNS wide."""
    command = [str(console_script()), args[0], "--db", str(project.db), "--dir", str(project.dir), *args[1:]]
    code, output = terminal(command, project.root, columns=columns)
    return code, ANSI.sub("", output).replace("\r\n", "\n")


def test_on_a_narrow_terminal_the_name_folds_and_version_state_and_time_stay_whole(project: Project) -> None:
    (applied_at,) = long_and_short(project)
    before = project.digest()
    code, output = on_a_terminal(project, "status", columns=60)
    assert code == 0, output
    rows = [line for line in output.splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in rows]
    assert all(len(line) <= 60 for line in rows)  # it fits: only the name gave way
    assert [cell[0] for cell in cells if cell[0]] == ["1", "2", "-"]
    assert [cell[2] for cell in cells if cell[2]] == ["applied", "pending", "invalid"]
    assert [cell[3] for cell in cells if cell[3]] == [applied_at]
    first_row = cells[: [cell[0] for cell in cells].index("2")]
    assert len(first_row) > 1 and "".join(cell[1] for cell in first_row) == LONG
    assert "1 applied, 1 pending, 1 invalid" in output
    assert project.digest() == before


def test_on_a_terminal_wide_names_keep_the_columns_aligned_and_states_are_coloured(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    project.sql("002_Été_数据_テーブル.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    before = project.digest()
    command = [str(console_script()), "status", "--db", str(project.db), "--dir", str(project.dir)]
    code, raw = terminal(command, project.root, columns=40)
    assert code == 0, raw
    assert "\x1b[32mapplied" in raw and "\x1b[33mpending" in raw  # green, yellow
    output = ANSI.sub("", raw).replace("\r\n", "\n")
    rows = [line for line in output.splitlines() if line[:1] in "│┃┏┡└"]
    # Every line of the table is as wide in terminal cells (a wide character takes two).
    assert len({sum(2 if "\u3000" <= char <= "\u9fff" or "\u30a0" <= char <= "\u30ff" else 1 for char in line)
                for line in rows}) == 1  # fmt: skip
    names = "".join(line.split("│")[2].strip() for line in rows if line.startswith("│") and "│" in line[1:])
    assert "Été_数据_テーブル" in names and "1 applied, 1 pending" in output
    assert project.digest() == before


def test_no_color_on_a_terminal_keeps_the_table_without_styles(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    command = ["env", "NO_COLOR=1", str(console_script()), "status", "--db", str(project.db), "--dir", str(project.dir)]
    code, raw = terminal(command, project.root, columns=80)
    assert code == 0, raw
    assert "\x1b[" not in raw and "┏" in raw and "│       1 │ a" in raw
    assert not project.db.exists()  # status never creates the database


@pytest.mark.parametrize("term", ["dumb", "unknown", "DUMB"])
def test_a_dumb_terminal_gets_the_table_without_styles_and_a_plain_error(project: Project, term: str) -> None:
    """TERM=dumb (Emacs' shell, a serial console) shows escape sequences as text: Rich, which draws
    every other table and the schema, styles nothing there, but the status table and the error
    line were styled all the same."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    command = [
        "env",
        f"TERM={term}",
        str(console_script()),
        "status",
        "--db",
        str(project.db),
        "--dir",
        str(project.dir),
    ]
    code, raw = terminal(command, project.root, columns=80)
    assert code == 0, raw
    assert "\x1b[" not in raw and "┏" in raw and "│       1 │ a" in raw
    code, raw = terminal([*command, "--bogus"], project.root, columns=80)
    assert code == 2 and raw.startswith("Error: No such option '--bogus'")
    assert not project.db.exists()  # status never creates the database


STATUS_ON_A_TERMINAL = """
import sys
from vcp_migrate.cli import main

try:
    main(["status", "--db", sys.argv[1], "--dir", sys.argv[2]])
except SystemExit:
    pass
with open(sys.argv[3], "w") as modules:
    modules.write(" ".join(sorted(name for name in sys.modules if name.startswith(("vcp_migrate", "rich")))))
"""


def test_status_on_a_terminal_loads_no_rich(project: Project) -> None:
    """The table on a terminal is drawn without Rich: loading it took longer than the rest of status."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    modules = project.root / "modules.txt"
    command = [sys.executable, "-c", STATUS_ON_A_TERMINAL, str(project.db), str(project.dir), str(modules)]
    code, raw = terminal(command, project.root)
    assert code == 0, raw
    assert "┏" in raw and "applied" in raw  # the table was drawn, on the terminal
    loaded = set(modules.read_text().split())
    assert "vcp_migrate.status_table" in loaded and "vcp_migrate.render" not in loaded
    assert not {name for name in loaded if name == "rich" or name.startswith("rich.")}


# -- --exit-code ----------------------------------------------------------------------------------


def apply_two(project: Project) -> None:
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.sql("002_b.sql", "CREATE TABLE b(x);", "DROP TABLE b;")
    project.manager().migrate()


def modify(project: Project) -> None:
    project.sql("002_b.sql", "CREATE TABLE b(x, y);", "DROP TABLE b;")


def delete(project: Project) -> None:
    (project.dir / "002_b.sql").unlink()


def invalid(project: Project) -> None:
    project.write("notes.sql", "-- not a migration name\n")


def unreadable(project: Project) -> None:
    (project.root / "x.sql").write_text("-- migrate:up\n")
    (project.dir / "003_link.sql").symlink_to(project.root / "x.sql")  # a link out of the directory


def out_of_order(project: Project) -> None:
    project.sql("004_d.sql", "CREATE TABLE d(x);", "DROP TABLE d;")
    project.manager().migrate()
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")


def pending(project: Project) -> None:
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")


def modified_and_pending(project: Project) -> None:
    modify(project)
    pending(project)


@pytest.mark.parametrize(
    ("change", "state", "code"),
    [
        (lambda project: None, None, 0),
        (pending, "pending", 3),
        (modify, "modified", 4),
        (delete, "missing", 4),
        (invalid, "invalid", 4),
        (unreadable, "invalid", 4),
        (out_of_order, "out-of-order", 4),
        (modified_and_pending, "modified", 4),  # 4 wins over 3
    ],
    ids=["applied", "pending", "modified", "missing", "invalid name", "unreadable", "out-of-order", "4 over 3"],
)
def test_exit_code(project: Project, change: object, state: str | None, code: int) -> None:
    apply_two(project)
    change(project)  # type: ignore[operator]
    before, history = project.digest(), project.history()
    states = [row["state"] for row in project.manager().status()]
    assert state in states if state else set(states) == {"applied"}
    for json_flag in ((), ("--json",)):
        result = project.cli("status", "--exit-code", *json_flag)
        assert result.exit_code == code, result.output
        assert result.stderr == ""
    assert project.cli("status").exit_code == 0  # without --exit-code, listing is success
    assert project.digest() == before and project.history() == history


def test_exit_code_of_a_database_not_yet_made_is_pending(project: Project) -> None:
    three(project)
    result = project.cli("status", "--exit-code")
    assert result.exit_code == 3 and "does not exist yet: 3 migration(s) pending" in result.stdout
    assert not project.db.exists()


# -- a directory with none of the applied files ----------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("--json",), ("--exit-code",)], ids=["table", "json", "exit-code"])
def test_status_with_none_of_the_applied_files_says_the_directory_is_wrong(
    project: Project, flags: tuple[str, ...]
) -> None:
    elsewhere = wrong_directory(project)
    before, listing = project.digest(), sorted(os.listdir(project.root))
    result = project.cli("status", "--dir", str(elsewhere), *flags)
    assert result.exit_code == 1
    assert result.stdout == "" and result.stderr == wrong_directory_error(project, elsewhere)
    assert project.digest() == before and sorted(os.listdir(project.root)) == listing
    assert project.history() == [1, 2, 3]
    with pytest.raises(PlanError, match="probably the wrong migrations directory"):
        project.manager().__class__(project.db, elsewhere).status()
    empty = project.root / "empty"
    empty.mkdir()
    assert project.cli("status", "--dir", str(empty), *flags).exit_code == 1
    assert project.digest() == before


def test_one_applied_file_present_is_enough_for_status(project: Project) -> None:
    three(project)
    project.manager().migrate()
    (project.dir / "001_a.sql").unlink()
    (project.dir / "002_b.sql").unlink()
    assert states(project) == [(1, "missing"), (2, "missing"), (3, "applied")]
    assert project.cli("status", "--exit-code").exit_code == 4


def test_quiet_status_prints_its_data_and_no_notes(project: Project) -> None:
    sqlite3.connect(project.db).execute("CREATE TABLE existing(x)").connection.close()
    project.sql("001_a.sql", "CREATE TABLE a(x);")
    loud = project.cli("status", "--json")
    assert "Note:" in loud.stderr
    as_json = project.cli("status", "--json", "-q")
    assert as_json.exit_code == 0 and as_json.stderr == "" and json.loads(as_json.stdout)[0]["state"] == "pending"
    plain = project.cli("status", "-q")
    assert plain.exit_code == 0 and plain.stderr == "" and "      1  pending" in plain.stdout
    project.db.unlink()
    assert project.cli("status", "--json", "-q").stderr == ""


def test_standard_output_closed_is_one_line_not_a_traceback(project: Project) -> None:
    """``status | head -1`` with the reader gone before the first line: exit 1, one line on stderr."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    project.manager().migrate()
    before = project.digest()
    command = [str(console_script()), "status", "--db", str(project.db), "--dir", str(project.dir)]
    process = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert err == "Error: standard output was closed before all was printed; the command went on to its end\n"
    assert project.digest() == before


MISSING = (
    "Error: standard output was closed from the start, so nothing the command printed could be seen;"
    " the command went on to its end\n"
)


@pytest.mark.parametrize("options", [[], ["--json"], ["--exit-code"], ["--json", "--exit-code"]])
def test_standard_output_closed_from_the_start_is_one_line_exit_1(project: Project, options: list[str]) -> None:
    """``vcp-migrate status >&-`` in a CI job: Python has no standard output at all, and status
    exited 0 without a word, as though it had been shown."""
    three(project)
    project.manager().migrate()
    before = project.digest()
    command = [str(console_script()), "status", *options, "--db", str(project.db), "--dir", str(project.dir)]
    assert with_output_missing(command, project.root) == (1, MISSING)
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


@pytest.mark.parametrize("output", ["closed from the start", "on a full disk"])
def test_exit_code_s_answer_stays_when_the_output_is_lost_and_the_loss_is_said(project: Project, output: str) -> None:
    """``status --exit-code`` with something pending and its output lost: 3 stays (the gate's
    answer is still true), and the line says what was lost; it said nothing."""
    three(project)
    project.manager().migrate(2)
    before = project.digest()
    command = [str(console_script()), "status", "--exit-code", "--db", str(project.db), "--dir", str(project.dir)]
    if output == "on a full disk":
        said = (
            "Error: standard output could not be written (No space left on device), so some of what the"
            " command printed is lost; the command went on to its end\n"
        )
        assert with_output_on_a_full_disk(command, project.root) == (3, said)
    else:
        assert with_output_missing(command, project.root) == (3, MISSING)
    assert project.digest() == before and project.history() == [1, 2]


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_reader_leaving_in_the_middle_of_a_long_output_is_said_buffered_or_not(
    project: Project, unbuffered: str, as_json: bool
) -> None:
    """Unbuffered (PYTHONUNBUFFERED=1, as in many containers), a write the reader left in the
    middle of was cut short without an error: status exited 0, silently."""
    long = "a_long_name_" * 10  # every line well over 100 bytes: far more than a pipe holds in all
    for version in range(1, 1201):
        project.sql(f"{version:04d}_{long}{version}.sql", f"CREATE TABLE t{version} (x);", f"DROP TABLE t{version};")
    command = [str(console_script()), "status", *(["--json"] if as_json else []), "--db", str(project.db)]
    command += ["--dir", str(project.dir)]
    code, err = with_output_closed(command, project.root, read_first=10, PYTHONUNBUFFERED=unbuffered)
    said = "Error: standard output was closed before all was printed; the command went on to its end\n"
    assert code == 1 and err.endswith(said)
    assert len(err.splitlines()) == 1 + as_json and not project.db.exists()  # --json notes the missing database


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("as_json", [False, True])
def test_standard_output_on_a_full_disk_is_one_line_exit_1(project: Project, unbuffered: str, as_json: bool) -> None:
    """``status > log`` on a full disk: the OSError (ENOSPC) was "unexpected ... report it", and
    buffered, a traceback at exit and exit code 120."""
    three(project)
    project.manager().migrate(2)
    before = project.digest()
    command = [str(console_script()), "status", *(["--json"] if as_json else []), "--db", str(project.db)]
    code, err = with_output_on_a_full_disk(
        [*command, "--dir", str(project.dir)], project.root, PYTHONUNBUFFERED=unbuffered
    )
    assert code == 1
    assert err == (
        "Error: standard output could not be written (No space left on device), so some of what the command"
        " printed is lost; the command went on to its end\n"
    )
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


@pytest.mark.parametrize("unbuffered", ["1", ""])
@pytest.mark.parametrize("as_json", [False, True])
def test_standard_error_on_a_full_disk_changes_no_exit_code(project: Project, unbuffered: str, as_json: bool) -> None:
    """``status --exit-code 2>> ci.log`` on a full disk, for a database with tables and no history:
    the note on stderr raised ENOSPC, and the gate exited 1 (its error line lost too), not 4."""
    project.sql("001_a.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TABLE made_by_hand (x)")
    before = project.digest()
    command = [str(console_script()), "status", "--exit-code", *(["--json"] if as_json else [])]
    command += ["--db", str(project.db), "--dir", str(project.dir)]
    code, out = with_output_on_a_full_disk(command, project.root, errors=True, PYTHONUNBUFFERED=unbuffered)
    assert code == 4
    if as_json:
        assert [row["state"] for row in json.loads(out)] == ["pending"]
    else:
        assert out.splitlines()[-1] == "0 applied, 1 pending"
    assert project.digest() == before and sorted(p.name for p in project.root.iterdir()) == ["migrations", "test.db"]


def test_a_name_the_output_s_encoding_lacks_is_escaped_not_a_crash(project: Project) -> None:
    """Standard output in Latin-1 (a non-UTF-8 locale): a Chinese migration name was 'unexpected
    UnicodeEncodeError ... report it'; and in ASCII (LC_ALL=C without Python's UTF-8 mode) click
    wrote around the guard, so a reader gone was 'unexpected BrokenPipeError'."""
    project.sql("001_数据.sql", "CREATE TABLE a(x);", "DROP TABLE a;")
    command = [str(console_script()), "status", "--db", str(project.db), "--dir", str(project.dir)]
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | {"PYTHONIOENCODING": "latin-1"}
    result = subprocess.run(command, cwd=project.root, capture_output=True, env=environment, timeout=60)
    assert result.returncode == 0 and result.stderr == b""
    assert b"      1  pending                    \\u6570\\u636e\n" in result.stdout
    ascii_only = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    code, err = with_output_closed(command, project.root, **ascii_only)
    assert (code, err) == (
        1,
        "Error: standard output was closed before all was printed; the command went on to its end\n",
    )
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations"]


def test_a_schema_file_named_as_a_migration_is_listed_and_run_as_one(project: Project) -> None:
    """It was left out of the scan whatever the dump setting: status never listed 003, and with
    the dump off (the refusal's own hint) migrate skipped it for good, status then all applied."""
    three(project)
    project.sql("004_d.sql", "CREATE TABLE d(x);", "DROP TABLE d;")
    named = project.manager(schema_file=project.dir / "003_c.sql", dump_schema=False)
    assert [row["version"] for row in named.status()] == [1, 2, 3, 4]
    assert [run.version for run in named.migrate()] == [1, 2, 3, 4]
    assert project.history() == [1, 2, 3, 4] and project.tables() == {"a", "b", "c", "d"}


def test_the_schema_file_is_known_by_another_spelling_of_its_folder(project: Project) -> None:
    """The folder named through '..' or a link: the tool's own schema.sql was taken for a
    migration with a bad name, and every later run refused to start."""
    three(project)
    assert project.manager().migrate() and (project.dir / "schema.sql").exists()
    (project.root / "sub").mkdir()
    (project.root / "linked").symlink_to(project.dir)
    for spelling in (project.root / "sub" / ".." / "migrations", project.root / "linked"):
        manager = MigrationManager(project.db, spelling, schema_file=project.dir / "schema.sql")
        assert {row["state"] for row in manager.status()} == {"applied"}
        assert manager.migrate() == [] and manager.rollback() and manager.migrate()
    assert project.history() == [1, 2, 3]


def _strict_json(output: bytes) -> object:
    """``output`` read as a strict consumer reads it: UTF-8 and JSON both strict, and no string
    holding a lone surrogate (Python's json.loads takes an escaped one; other readers refuse it)."""
    document = json.loads(output.decode("utf-8", errors="strict"))

    def strings(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [text for key, item in value.items() for text in (key, *strings(item))]
        return [text for item in value for text in strings(item)] if isinstance(value, list) else []

    for text in strings(document):
        text.encode("utf-8", errors="strict")
    return document


def test_status_json_shows_a_name_that_is_not_utf8_as_the_text_output_does(project: Project) -> None:
    """The byte 0xE9 of a Latin-1 name: json.dumps wrote the lone surrogate escape "\\udce9",
    which a strict reader refuses; now the text \\udce9, as the table shows it. Such a file is
    invalid (the history could not record its name), listed with the other invalid files."""
    project.sql("001_a.sql", "CREATE TABLE a (x);", "DROP TABLE a;")
    (project.dir / os.fsdecode(b"002_caf\xe9.sql")).write_text("-- migrate:up\nCREATE TABLE b (x);\n")
    (project.dir / "003_café.sql").write_text("-- migrate:up\nCREATE TABLE c (x);\n")
    command = [str(console_script()), "status", "--db", "test.db", "--dir", "migrations"]
    table = subprocess.run(command, cwd=project.root, capture_output=True, check=True)
    assert "      -  invalid                    002_caf\\udce9\n" in table.stdout.decode()
    done = subprocess.run([*command, "--json"], cwd=project.root, capture_output=True)
    assert done.returncode == 0, done.stderr
    rows = _strict_json(done.stdout)
    assert [(row["name"], row["state"], row["file"]) for row in rows] == [  # type: ignore[index, union-attr]
        ("a", "pending", "migrations/001_a.sql"),
        ("café", "pending", "migrations/003_café.sql"),
        ("002_caf\\udce9", "invalid", "migrations/002_caf\\udce9.sql"),
    ]
    assert not project.db.exists()


@pytest.mark.parametrize(
    ("edit", "missing", "state", "shown"),
    [
        ("name = X'ff00'", True, "missing", {"name": "x'ff00'"}),
        ("applied_at = X'ff'", False, "applied", {"applied_at": "x'ff'"}),
        ("checksum = X'00ff'", False, "modified", {"applied_checksum": "x'00ff'"}),
        ("execution_ms = 9e999", False, "applied", {"execution_ms": None}),
        ("execution_ms = 'slow'", False, "applied", {"execution_ms": None}),
    ],
    ids=["name a BLOB", "applied_at a BLOB", "checksum a BLOB", "execution_ms infinite", "execution_ms text"],
)
def test_a_history_value_edited_by_hand_into_another_type_is_shown(
    project: Project, edit: str, missing: bool, state: str, shown: dict[str, object]
) -> None:
    """A BLOB in the history failed status ("unexpected AttributeError", exit 1, --exit-code 1
    too) or its JSON (bytes, and an infinite execution_ms written as Infinity, which is no JSON).
    It is shown for what it is; the state and exit code are decided as before; nothing is changed."""
    apply_two(project)
    with closing(sqlite3.connect(project.db)) as connection, connection:
        connection.execute(f"UPDATE vcp_migrations SET {edit} WHERE version = 1")
    if missing:
        (project.dir / "001_a.sql").unlink()
    before = project.digest()
    command = [str(console_script()), "status", "--db", "test.db", "--dir", "migrations", "--exit-code"]
    table = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=60)
    assert (table.returncode, table.stderr) == (0 if state == "applied" else 4, "")
    assert re.search(rf"^      1  {state} ", table.stdout, re.MULTILINE), table.stdout
    for key in {"name", "applied_at"} & set(shown):  # the columns the table has
        assert str(shown[key]) in table.stdout
    done = subprocess.run([*command, "--json"], cwd=project.root, capture_output=True, timeout=60)
    assert (done.returncode, done.stderr) == (table.returncode, b"")
    document = _strict_json(done.stdout)
    row = document[0]  # type: ignore[index]
    assert row["state"] == state and {key: row[key] for key in shown} == shown
    assert json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert project.digest() == before and project.history() == [1, 2]
