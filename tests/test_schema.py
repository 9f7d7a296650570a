"""The schema file written after every change, and the schema command."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcp_migrate.errors import UsageError
from vcp_migrate.schema import snapshot
from vcp_migrate.schema_text import normalise, tokenise

from .conftest import ENV_VARS, TRADES, Project, Synced, as_unprivileged, console_script, on_a_terminal, trading


def test_schema_file_follows_every_change_and_is_not_a_migration(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    dump = project.dir / "schema.sql"
    text = dump.read_text()
    assert text.startswith("-- Schema written by vcp-migrate after the last change; do not edit.\n-- version: 2\n\n")
    assert "CREATE INDEX trades_symbol ON trades(symbol);" in text and "vcp_migrations" not in text
    project.manager().rollback()
    assert "-- version: 1" in dump.read_text() and "trades_symbol" not in dump.read_text()
    assert [row["state"] for row in project.manager().status()] == ["applied", "pending"]
    assert project.manager().validate() == []


def test_schema_file_is_deterministic(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    first = (project.dir / "schema.sql").read_text()
    project.manager().rollback(to=0)
    project.manager().migrate()
    assert (project.dir / "schema.sql").read_text() == first


def test_no_dump_and_another_schema_file(project: Project) -> None:
    trading(project)
    assert project.cli("migrate", "--to", "1", "--no-dump").exit_code == 0
    assert not (project.dir / "schema.sql").exists()
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nschema_file = "db/schema.sql"\n')
    (project.root / "db").mkdir()
    assert project.cli("migrate").exit_code == 0
    assert "-- version: 2" in (project.root / "db" / "schema.sql").read_text()
    (project.root / "pyproject.toml").write_text("[tool.vcp-migrate]\ndump = false\n")
    assert project.cli("rollback").exit_code == 0
    assert "-- version: 2" in (project.root / "db" / "schema.sql").read_text()


def test_failing_to_write_the_schema_file_is_a_warning(project: Project) -> None:
    trading(project)
    (project.dir / "schema.sql").mkdir()  # a directory where the file should go
    result = project.cli("migrate")
    assert result.exit_code == 0 and project.history() == [1, 2]
    # It said to check the folder's permissions and free space, both fine.
    assert result.stderr == (
        f"Warning: {project.dir}/schema.sql: the schema file could not be written: a folder has its name (move the"
        " folder away, or name another schema file)\n"
    )


def test_a_schema_file_in_a_folder_that_does_not_exist_says_so(project: Project) -> None:
    """Not the errno of the temporary file beside it: the folder, and what to do."""
    trading(project)
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nschema_file = "db/schema.sql"\n')
    result = project.cli("migrate")
    assert result.exit_code == 0 and project.history() == [1, 2]
    assert " ".join(result.stderr.split()) == (
        "Warning: db/schema.sql: the schema file could not be written: its folder db does not exist (create it,"
        " or name another schema file)"
    )
    assert not (project.root / "db").exists()


def test_schema_command(project: Project) -> None:
    trading(project)
    assert project.cli("schema").exit_code == 1  # no database yet
    project.manager().migrate()
    result = project.cli("schema")
    assert result.exit_code == 0
    assert result.stdout == snapshot(sqlite3.connect(project.db))
    assert result.stdout == (project.dir / "schema.sql").read_text().split("\n\n", 1)[1]


def test_normalisation_keeps_literals_and_folds_the_rest() -> None:
    sql = "CREATE TABLE  t ( a TEXT DEFAULT 'x ,  y(z)' ,\n  b   INTEGER CHECK (b > 0) )"
    assert normalise(sql) == "CREATE TABLE t (\n  a TEXT DEFAULT 'x ,  y(z)',\n  b INTEGER CHECK(b > 0)\n)"
    assert normalise("CREATE INDEX   i ON t ( a ,b )") == "CREATE INDEX i ON t(a, b)"


def test_the_schema_file_is_written_through_no_link(project: Project) -> None:
    trading(project)
    victim, other = project.root / "victim.txt", project.root / "other.txt"
    victim.write_bytes(b"not ours\n")
    other.write_bytes(b"not ours either\n")
    os.symlink("../victim.txt", project.dir / ".schema.sql.partial")  # the name the partial file once had
    os.symlink("../other.txt", project.dir / "schema.sql")
    result = project.cli("migrate")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and project.history() == [1, 2]
    assert victim.read_bytes() == b"not ours\n" and other.read_bytes() == b"not ours either\n"
    dump = project.dir / "schema.sql"
    assert not dump.is_symlink() and "-- version: 2" in dump.read_text()  # the link itself was replaced
    assert os.readlink(project.dir / ".schema.sql.partial") == "../victim.txt"  # left as it was
    assert sorted(p.name for p in project.dir.iterdir()) == [
        ".schema.sql.partial",
        "001_trades.sql",
        "002_index.sql",
        "schema.sql",
    ]


def test_a_failed_schema_file_write_leaves_no_partial_file(project: Project) -> None:
    trading(project)
    (project.dir / "schema.sql").mkdir()
    result = project.cli("migrate")
    assert result.exit_code == 0 and project.history() == [1, 2]
    assert "the schema file could not be written" in result.stderr
    assert not [p.name for p in project.dir.iterdir() if p.name.endswith(".partial")]
    assert list((project.dir / "schema.sql").iterdir()) == []


def test_the_schema_file_and_then_its_folder_are_synced_to_disk(project: Project, synced: Synced) -> None:
    """The file was synced before its rename, but not its folder after it: a power loss could bring
    back the schema file it replaced, one change behind the database."""
    trading(project)
    assert project.cli("migrate", "--no-backup").exit_code == 0
    dump, folder = synced.order(project.dir / "schema.sql", project.dir)
    assert folder > dump


def _refused(project: Project, schema_file: str, *args: str) -> str:
    """Run migrate with ``schema_file`` in the table; it must be refused with nothing changed."""
    (project.root / "pyproject.toml").write_text(f'[tool.vcp-migrate]\nschema_file = "{schema_file}"\n')
    before = sorted(
        (p.relative_to(project.root), p.read_bytes() if p.is_file() else None) for p in project.root.rglob("*")
    )
    result = project.cli("migrate", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    after = sorted(
        (p.relative_to(project.root), p.read_bytes() if p.is_file() else None) for p in project.root.rglob("*")
    )
    assert after == before  # nothing written, nothing created
    return " ".join(result.stderr.split())


def test_a_schema_file_that_names_the_database_is_refused_before_anything(project: Project) -> None:
    """Written over the database after the change, the schema text replaced it whole."""
    trading(project)
    said = _refused(project, "test.db")  # a new database: there is no file yet to recognise
    assert "schema_file in [tool.vcp-migrate] of pyproject.toml names the database itself" in said
    assert "--no-dump" in said
    assert not project.db.exists()
    project.manager(dump_schema=False).migrate(target=1)
    said = _refused(project, "test.db")
    assert project.history() == [1] and project.query("PRAGMA integrity_check") == [("ok",)]
    for journal in ("test.db-journal", "test.db-wal", "test.db-shm"):
        assert "names the database itself (or its journal)" in _refused(project, journal)
    os.symlink("test.db", project.root / "alias.db")
    assert "names the database itself" in _refused(project, "alias.db")
    assert project.manager(dump_schema=False).status()[1]["state"] == "pending"


def test_a_schema_file_named_as_a_migration_is_refused(project: Project) -> None:
    """The scan leaves the schema file out: named as a migration, that migration was skipped, then overwritten."""
    trading(project)
    source = (project.dir / "002_index.sql").read_bytes()
    said = _refused(project, "migrations/002_index.sql")
    assert "is named as a migration in the migrations directory" in said
    assert (project.dir / "002_index.sql").read_bytes() == source and not project.db.exists()
    assert "is named as a migration" in _refused(project, "migrations/003_later.sql")  # not there yet: still refused


def test_a_schema_file_someone_else_wrote_is_refused_and_an_earlier_one_replaced(project: Project) -> None:
    trading(project)
    mine = project.root / "schema.sql"
    mine.write_text("-- the schema as I keep it by hand\n")
    assert "is a file vcp-migrate did not write" in _refused(project, "schema.sql")
    mine.write_bytes(b"")
    assert "did not write" in _refused(project, "schema.sql")  # empty: not one of ours either
    mine.unlink()
    assert project.cli("migrate", "--to", "1").exit_code == 0  # a new file
    assert "-- version: 1" in mine.read_text()
    assert project.cli("migrate").exit_code == 0  # an earlier schema file: replaced
    assert "-- version: 2" in mine.read_text()
    # The API says the same, before the run, with the parameters' names.
    other = project.root / "other.txt"
    other.write_text("notes\n")
    with pytest.raises(UsageError, match=r"schema_file is a file vcp-migrate did not write.*dump_schema=False"):
        project.manager(schema_file=other).rollback()
    assert project.history() == [1, 2] and other.read_text() == "notes\n"


def test_commands_that_never_write_the_schema_file_do_not_check_it(project: Project) -> None:
    trading(project)
    project.manager(dump_schema=False).migrate(target=1)
    (project.root / "notes.sql").write_text("mine\n")
    manager = project.manager(schema_file=project.root / "notes.sql")
    assert manager.dry_run_migrate().failed is None
    assert [row["state"] for row in manager.status()] == ["applied", "pending"]
    assert project.manager(schema_file=project.root / "notes.sql", dump_schema=False).migrate()
    assert (project.root / "notes.sql").read_text() == "mine\n" and project.history() == [1, 2]


def test_restore_is_never_refused_for_it_and_leaves_the_file_alone(project: Project) -> None:
    """An incident's restore must not wait on a schema file setting: the file is left, and said so."""
    trading(project)
    project.manager(dump_schema=False).migrate(1)
    project.manager(dump_schema=False).migrate()  # backs up version 1
    mine = project.root / "mine.sql"
    mine.write_text("-- kept by hand\n")
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nschema_file = "mine.sql"\n')
    result = project.cli("restore", "--yes")
    assert result.exit_code == 0, result.output
    assert "mine.sql: the schema file was not written: it is a file vcp-migrate did not write" in " ".join(
        result.stderr.split()
    )
    assert mine.read_text() == "-- kept by hand\n" and project.history() == [1]


def test_a_schema_file_that_appears_during_the_run_is_left_alone(project: Project) -> None:
    """Checked before the run, and again just before writing."""
    trading(project)
    mine = project.dir / "schema.sql"
    project.write(
        "003_writes_it.py",
        f"def up(connection):\n    open({str(mine)!r}, 'w').write('mine\\n')\ndef down(connection):\n    pass\n",
    )
    result = project.cli("migrate")
    assert result.exit_code == 0 and project.history() == [1, 2, 3]
    assert "the schema file was not written" in result.stderr and mine.read_text() == "mine\n"


def test_a_run_with_nothing_to_do_is_not_refused_for_it(project: Project) -> None:
    """Deploy scripts run up every time: with nothing to apply, nothing would be written."""
    trading(project)
    project.manager(dump_schema=False).migrate()
    (project.root / "notes.sql").write_text("mine\n")
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nschema_file = "notes.sql"\n')
    for command in ("up", "rollback --to 2"):
        result = project.cli(*command.split())
        assert result.exit_code == 0 and result.stderr == "", result.output
    assert (project.root / "notes.sql").read_text() == "mine\n" and project.history() == [1, 2]
    assert project.cli("rollback").exit_code == 2 and project.history() == [1, 2]  # something to do: refused


def test_the_schema_command_on_a_terminal_shows_escape_sequences_as_text(project: Project) -> None:
    """A literal of the schema reached the terminal raw: it could retitle the window and clear the screen."""
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE TABLE esc(a TEXT DEFAULT '\x1b]0;PWNED\x07\x1b[2J')")
    command = [str(console_script()), "schema", "--db", str(project.db), "--dir", str(project.dir)]
    code, shown = on_a_terminal(command, project.root)
    assert code == 0 and "PWNED" in shown
    assert "\x1b]0;PWNED" not in shown and "\x07" not in shown and "\x1b[2J" not in shown


# -- literals, quoted names and comments in the normalised schema ----------------------------------

_IN_COMMENT = st.sampled_from([" ", "  ", "'", "don't", '"', "`", "[", "]", "(", ")", ",", "--", "/*", "a"])
_IN_LITERAL = st.sampled_from([" ", "  ", "   ", "\t", "\n", "''", '"', "`", "[", "(", ")", ",", "--", "/*", "*/", "é"])
_SPACES = st.sampled_from([" ", "  ", "\n", " \t\n  "])


@st.composite
def _gap(draw: st.DrawFn) -> str:
    """White space between two tokens, with a line or block comment holding quotes, or not."""
    gap = draw(_SPACES)
    comment = "".join(draw(st.lists(_IN_COMMENT, max_size=6)))
    kind = draw(st.sampled_from(["", "line", "block"]))
    if kind == "line":
        return f"{gap}--{comment}\n"
    if kind == "block" and "*/" not in comment:  # "/*" after "/*" can make one
        return f"{gap}/*{comment}*/{draw(_SPACES)}"
    return gap


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """The literals (the text between the quotes, '' inside) of a CREATE TABLE's column defaults,
    and the gaps between its tokens; ``_create`` writes the statement."""
    literals = draw(st.lists(st.lists(_IN_LITERAL, max_size=6).map("".join), min_size=1, max_size=4))
    gaps = draw(st.lists(_gap(), min_size=5 * len(literals) + 3, max_size=5 * len(literals) + 3))
    return literals, gaps


def _create(literals: list[str], gaps: list[str]) -> str:
    tokens = ["CREATE", "TABLE", "t", "("]
    for index, literal in enumerate(literals):
        name = f"c{index}" if index % 2 else f'"c  {index}"'  # a quoted name keeps its spaces too
        tokens += [name, "TEXT", "DEFAULT", f"'{literal}'", ","]
    tokens[-1] = ")"
    return "".join(token + gap for token, gap in zip(tokens, [*gaps, ""], strict=True))


def _columns(sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.execute(sql)
        return connection.execute("PRAGMA table_info(t)").fetchall()


@settings(max_examples=300)
@given(_tables(), st.data())
def test_normalisation_keeps_every_literal_and_comment_and_only_folds_white_space(
    table: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    """Comments holding quotes and literals holding runs of spaces: the tokens give the text back,
    the normalised text keeps every literal byte for byte and is SQL that SQLite reads as the same
    table (same columns, same defaults as written), and a change inside one literal shows."""
    literals, gaps = table
    sql = _create(literals, gaps)
    assert "".join(tokenise(sql)) == sql
    normalised = normalise(sql)
    position = 0
    for literal in literals:
        position = normalised.index(f"'{literal}'", position) + len(literal) + 2
    position = 0
    for comment in [gap.strip(" \t\n") for gap in gaps if gap.strip(" \t\n")]:
        position = normalised.index(comment, position) + len(comment)
    assert _columns(normalised) == _columns(sql)
    changed = list(literals)
    index = data.draw(st.integers(0, len(literals) - 1))
    changed[index] += data.draw(st.sampled_from([" ", "\t", "''"]))
    assert normalise(_create(changed, gaps)) != normalised


@settings(max_examples=300)
@given(_tables())
def test_the_normalised_text_normalises_to_itself(table: tuple[list[str], list[str]]) -> None:
    """A block comment before a comma once moved after it, where normalising again moved it onto
    the next line: a database made from the schema file then showed drift."""
    normalised = normalise(_create(*table))
    assert normalise(normalised) == normalised


# Comments before and after the commas of a table, in each place normalising once moved one.
COMMENTED_COMMAS = """CREATE TABLE t (
  a INTEGER PRIMARY KEY /* the key */,
  b TEXT -- the symbol
  /* kept for the desk */,
  c REAL /* price */ -- in cents
  , d TEXT
);"""


def test_a_database_made_from_the_schema_file_shows_no_drift(project: Project) -> None:
    """Made from the schema file (as dbmate users load theirs), then baselined: validate finds it
    what the migrations produce, and its next schema file is the same text."""
    project.sql("001_t.sql", COMMENTED_COMMAS, "DROP TABLE t;")
    assert project.cli("up").exit_code == 0
    written = (project.dir / "schema.sql").read_text()
    project.db.unlink()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.executescript(written)
    result = project.cli("baseline", "1")
    assert result.exit_code == 0, result.output
    assert (project.dir / "schema.sql").read_text() == written
    result = project.cli("validate")
    assert result.exit_code == 0, result.output
    assert "drift" not in result.output and "disagrees" not in result.output
    assert project.history() == [1] and project.columns("t") == ["a", "b", "c", "d"]


def test_an_apostrophe_in_a_comment_opens_no_literal(project: Project) -> None:
    """It once opened a string that ran over the literals after it: their spaces were folded, a
    closing quote lost, and drift inside them went unseen."""
    project.sql("001_t.sql", COMMENTED, "DROP TABLE t;")
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert (project.dir / "schema.sql").read_text().split("\n\n", 1)[1] == (
        "CREATE TABLE t (\n  a TEXT, -- don't index this\n  b TEXT DEFAULT 'x  y',\n  c TEXT DEFAULT 'z'\n);\n"
    )
    assert project.cli("validate").exit_code == 0
    with closing(sqlite3.connect(project.db)) as connection:  # the default changed by hand: one space
        connection.executescript(f"DROP TABLE t; {COMMENTED.replace('x  y', 'x y')}")
    result = project.cli("validate")
    assert result.exit_code == 1
    assert f"{project.db}: the schema differs from what the applied migrations produce (drift" in result.stdout
    assert "\n-  b TEXT DEFAULT 'x  y',\n+  b TEXT DEFAULT 'x y',\n" in result.stdout
    assert [line for line in result.stdout.splitlines() if line.startswith(("-", "+"))] == [
        "--- what the applied migrations produce",
        f"+++ {project.db} now",
        "-  b TEXT DEFAULT 'x  y',",
        "+  b TEXT DEFAULT 'x y',",
    ]
    assert project.history() == [1] and project.query("SELECT dflt_value FROM pragma_table_info('t')") == [
        (None,),
        ("'x y'",),
        ("'z'",),
    ]


COMMENTED = """CREATE TABLE t (
  a TEXT, -- don't index this
  b TEXT DEFAULT 'x  y',
  c TEXT DEFAULT 'z'
);"""


# -- a schema file validate cannot read ------------------------------------------------------------


def _validate_unprivileged(project: Project) -> subprocess.CompletedProcess[str]:
    """validate as a real process that file permissions bind (root drops its power to pass them)."""
    command = [str(console_script()), "validate", "--db", str(project.db), "--dir", str(project.dir)]
    return subprocess.run(as_unprivileged(command), cwd=project.root, capture_output=True, text=True, timeout=60)


def _with_drift_and_a_hazard(project: Project) -> None:
    """Versions 1 and 2 applied, an index made by hand, a pending migration that drops a table."""
    trading(project)
    project.manager().migrate()
    with closing(sqlite3.connect(project.db)) as connection:
        connection.execute("CREATE INDEX by_hand ON trades(quantity)")
        connection.commit()
    project.sql("003_drop.sql", "DROP TABLE trades;", TRADES)


UNREADABLE = (
    ": cannot be read (Permission denied), so whether vcp-migrate wrote it cannot be told and it was not checked:"
    " make it readable (its permissions and its folder's), or name another schema file"
)


def test_an_unreadable_schema_file_is_a_problem_and_the_other_checks_run(project: Project) -> None:
    """It gave up with "unexpected PermissionError": now one line that says what to do, the drift
    and the hazard are still found, and nothing is changed."""
    _with_drift_and_a_hazard(project)
    dump = project.dir / "schema.sql"
    text, digest = dump.read_bytes(), project.digest()
    dump.chmod(0o000)
    try:
        result = _validate_unprivileged(project)
    finally:
        dump.chmod(0o644)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    problems = [line for line in result.stdout.splitlines() if line.startswith((str(project.root), "warning: "))]
    assert problems[:2] == [
        f"{project.db}: the schema differs from what the applied migrations produce (drift: changed outside"
        " migrations)",
        f"{dump}{UNREADABLE}",
    ], result.stdout
    assert problems[2].startswith(f"warning: {project.dir / '003_drop.sql'}: drop-table: ") and len(problems) == 3
    assert result.stdout.endswith("failed: 2 error(s), 1 warning(s).\n")
    assert dump.read_bytes() == text and stat.S_IMODE(dump.stat().st_mode) == 0o644
    assert project.digest() == digest and project.history() == [1, 2]


def test_a_schema_file_in_a_folder_that_cannot_be_entered_is_a_problem(project: Project) -> None:
    """Path.is_file() raised there too, before anything was read."""
    trading(project)
    (project.root / "db").mkdir()
    (project.root / "pyproject.toml").write_text('[tool.vcp-migrate]\nschema_file = "db/schema.sql"\n')
    assert project.cli("migrate").exit_code == 0
    (project.root / "db").chmod(0o600)  # readable, not searchable: the file in it cannot be opened
    try:
        result = _validate_unprivileged(project)
    finally:
        (project.root / "db").chmod(0o755)
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout == f"db/schema.sql{UNREADABLE}\nfailed: 1 error(s), 0 warning(s).\n"
    assert "-- version: 2" in (project.root / "db" / "schema.sql").read_text()


def test_a_schema_file_that_is_a_folder_a_pipe_or_not_utf8_is_a_problem(project: Project) -> None:
    trading(project)
    project.manager().migrate()
    dump = project.dir / "schema.sql"
    text = dump.read_bytes()
    dump.write_bytes(text.replace(b"symbol TEXT", b"symbol \xff TEXT"))
    (problem,) = project.manager().validate()
    assert (problem.kind, problem.severity, problem.path) == ("schema-file", "error", dump)
    assert problem.message == (
        "line 6 is not UTF-8 text, which vcp-migrate always writes, so it was not checked: restore it from version"
        " control, or delete it (the next change writes it again)"
    )
    dump.unlink()
    dump.mkdir()
    (problem,) = project.manager().validate()
    assert problem.message == (
        "is a folder, not a schema file, so it was not checked: move it away, or name another schema file"
    )
    dump.rmdir()
    os.mkfifo(dump)  # never waited on for a writer
    (problem,) = project.manager().validate()
    assert problem.message == "is not a regular file, so it was not checked: move it away, or name another schema file"
    dump.unlink()
    os.symlink("nowhere.sql", dump)  # a link to nothing is no schema file, as no file is
    assert project.manager().validate() == []
    assert sorted(p.name for p in project.dir.iterdir()) == ["001_trades.sql", "002_index.sql", "schema.sql"]
    assert dump.is_symlink() and project.history() == [1, 2]


# -- what a run killed while writing the schema file left ------------------------------------------

KILLED_BEFORE_THE_RENAME = """
import os, signal, sys
from vcp_migrate.entry import main

renaming = os.replace

def replace(source, target, *args, **kwargs):
    if str(source).endswith(".partial"):  # the schema file, written in full, about to be renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return renaming(source, target, *args, **kwargs)

os.replace = replace
sys.argv[0] = "vcp-migrate"
main()
"""


def _partials(project: Project) -> list[str]:
    return sorted(p.name for p in project.dir.iterdir() if p.name.endswith(".partial"))


def _aged(path: Path, seconds: float = 120) -> None:
    """As old as a partial file of a run killed ``seconds`` ago (mtime only; never through a link)."""
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_partial_schema_file_of_a_killed_run_is_removed_by_the_next_write(project: Project) -> None:
    """A real process, SIGKILLed between writing the schema file's partial file and renaming it:
    the partial stayed for good. Now the next write removes it, once its pid is dead and it is
    older than a writer ever keeps one (its mtime is set back here rather than waiting a minute)."""
    trading(project)
    project.manager().migrate(target=1)
    dump = project.dir / "schema.sql"
    before = dump.read_text()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = ["migrate", "--db", str(project.db), "--dir", str(project.dir)]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_THE_RENAME, *command], cwd=project.root, env=env, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL
    assert project.history() == [1, 2] and dump.read_text() == before  # committed; the file not renamed yet
    (left,) = _partials(project)
    assert "CREATE INDEX trades_symbol" in (project.dir / left).read_text()  # written in full
    project.sql("003_c.sql", "CREATE TABLE c(x);", "DROP TABLE c;")
    assert project.cli("migrate").exit_code == 0
    assert _partials(project) == [left]  # young: it could be a live writer's on another machine
    _aged(project.dir / left)
    result = project.cli("rollback")
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert _partials(project) == [] and "-- version: 2" in dump.read_text() and project.history() == [1, 2]


def test_only_dead_partials_of_this_schema_file_are_removed(project: Project) -> None:
    """Regular files named as ours for this schema file, of a dead pid (or none, as before) and
    old: nothing else, however it is named, and never through a link."""
    trading(project)
    dead, victim = _dead_pid(), project.root / "victim.txt"
    victim.write_text("not ours\n")
    removed = [f".schema.sql.{dead}.0123abcd.partial", ".schema.sql.0123abcd.partial"]
    kept = [
        f".schema.sql.{os.getpid()}.0123abcd.partial",  # a live writer's, however old
        f".schema.sql.{dead}.0123abcd.partial.bak",
        f".schema.sql.{dead}.0123ABCD.partial",
        f".other.sql.{dead}.0123abcd.partial",
        f"schema.sql.{dead}.0123abcd.partial",
        ".schema.sql.partial",
        f"notes.{dead}.0123abcd.partial",
    ]
    for name in removed + kept:
        (project.dir / name).write_text(f"{name}\n")
    young = f".schema.sql.{dead}.4567abcd.partial"  # a writer on another machine may still rename it
    (project.dir / young).write_text("young\n")
    os.symlink("../victim.txt", project.dir / f".schema.sql.{dead}.89abcdef.partial")
    (project.dir / f".schema.sql.{dead}.fedcba98.partial").mkdir()
    for name in [*removed, *kept, f".schema.sql.{dead}.89abcdef.partial", f".schema.sql.{dead}.fedcba98.partial"]:
        _aged(project.dir / name)
    result = project.cli("migrate")
    assert result.exit_code == 0 and result.stderr == "", result.output
    names = sorted(p.name for p in project.dir.iterdir())
    assert names == sorted(
        [
            *kept,
            young,
            f".schema.sql.{dead}.89abcdef.partial",
            f".schema.sql.{dead}.fedcba98.partial",
            "001_trades.sql",
            "002_index.sql",
            "schema.sql",
        ]
    )
    assert all((project.dir / name).read_text() == f"{name}\n" for name in kept)
    assert os.readlink(project.dir / f".schema.sql.{dead}.89abcdef.partial") == "../victim.txt"
    assert victim.read_text() == "not ours\n" and "-- version: 2" in (project.dir / "schema.sql").read_text()


def test_the_schema_file_is_on_disk_before_it_is_renamed(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Renamed unsynced, a power loss could leave an empty schema file, which every later change refuses."""
    trading(project)
    events: list[tuple[str, int]] = []  # what was done to which file (its inode)
    syncing, renaming = os.fsync, os.replace

    def fsync(handle: int) -> None:
        events.append(("fsync", os.fstat(handle).st_ino))
        syncing(handle)

    def replace(source: str, target: str) -> None:
        if str(source).endswith(".partial"):
            events.append(("replace", os.stat(source).st_ino))
        renaming(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    project.manager(backup=False).migrate()
    (written,) = [inode for event, inode in events if event == "replace"]
    assert ("fsync", written) in events[: events.index(("replace", written))]
    assert (project.dir / "schema.sql").stat().st_ino == written
    assert "-- version: 2" in (project.dir / "schema.sql").read_text()


@pytest.mark.parametrize("mode", [0o444, 0o640, 0o604], ids=oct)
def test_the_schema_file_keeps_the_permission_bits_it_had(project: Project, mode: int) -> None:
    """Replaced by a new file renamed over it, a read-only (0444) schema file came back 0644."""
    trading(project)
    schema = project.dir / "schema.sql"
    project.manager().migrate(target=1)
    created = stat.S_IMODE(os.stat(schema).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert created == 0o666 & ~umask  # a new one: as any file the user makes
    first = schema.read_text()
    os.chmod(schema, mode)
    project.manager().migrate()
    assert schema.read_text() != first and "-- version: 2" in schema.read_text()
    assert stat.S_IMODE(os.stat(schema).st_mode) == mode
    assert sorted(p.name for p in project.dir.iterdir() if p.name.startswith(".")) == []  # no partial left


VIRTUAL_AND_MORE = (
    "CREATE VIRTUAL TABLE docs USING fts5(title, body);\n"
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;\n"
    'CREATE TABLE "my ""t""" ("é" INTEGER, x INTEGER, y INTEGER GENERATED ALWAYS AS (x * 2) VIRTUAL);\n'
    'CREATE VIEW "v w" AS SELECT * FROM "my ""t""";\n'
    'CREATE TRIGGER "trg\'x" AFTER INSERT ON kv BEGIN UPDATE kv SET v = 1 WHERE k = new.k; END;\n'
)


def test_the_schema_of_a_virtual_table_runs_on_an_empty_database(project: Project) -> None:
    """FTS5 keeps its data in tables its CREATE VIRTUAL TABLE makes (docs_data, docs_idx...): they
    were listed too, so the schema file (and 'schema') could not be run: 'table docs_config already
    exists', against the promise that a database made from it shows no drift."""
    project.sql("001_all.sql", VIRTUAL_AND_MORE, "DROP TABLE docs;")
    project.manager().migrate()
    result = project.cli("schema")
    assert result.exit_code == 0 and "CREATE VIRTUAL TABLE docs USING fts5" in result.stdout
    assert "docs_" not in result.stdout
    with closing(sqlite3.connect(":memory:")) as copy:
        copy.executescript(result.stdout)
        assert snapshot(copy) == result.stdout
    written = (project.dir / "schema.sql").read_text()
    assert written.endswith(result.stdout) and "docs_" not in written
    assert sorted(path.name for path in project.root.iterdir()) == ["migrations", "test.db"]


def test_a_schema_file_that_lists_the_tables_of_a_virtual_table_is_a_warning(project: Project) -> None:
    """One written by a release that listed them is what the migrations produce, written the old way."""
    project.sql("001_all.sql", VIRTUAL_AND_MORE, "DROP TABLE docs;")
    project.manager().migrate()
    schema_file = project.dir / "schema.sql"
    new = schema_file.read_text()
    fts = "CREATE VIRTUAL TABLE docs USING fts5(title, body);\n"
    old = new.replace(fts, fts + "CREATE TABLE 'docs_config' (\n  k PRIMARY KEY,\n  v\n) WITHOUT ROWID;\n")
    schema_file.write_text(old)
    before = project.digest()
    result = project.cli("validate")
    assert result.exit_code == 0, result.output
    assert "warning: " in result.stdout and "only in listing the tables of virtual tables" in result.stdout
    assert schema_file.read_text() == old and project.digest() == before
    schema_file.write_text(old.replace("CREATE TABLE kv", "CREATE TABLE kv2"))  # any other difference: an error
    assert project.cli("validate").exit_code == 1
