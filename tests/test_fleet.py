"""vcp-migrate fleet: many databases in one command, each migrated as the single command would,
with real worker processes; every failure checked by reopening the databases."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import Result

from vcp_migrate import MigrationManager, closed_output
from vcp_migrate.errors import MigrationFileError, PlanError, UsageError
from vcp_migrate.fleet import Fleet
from vcp_migrate.fleet import worker as worker_module

from .conftest import (
    ENV_VARS,
    Project,
    applied_1_3_then_2,
    console_script,
    on_a_terminal,
    with_output_closed,
    with_output_missing,
)

TRADES = (
    "-- migrate:up\nCREATE TABLE trades (id INTEGER PRIMARY KEY, qty INTEGER);\n-- migrate:down\nDROP TABLE trades;\n"
)
FROZEN = "CREATE TRIGGER frozen BEFORE UPDATE ON trades BEGIN SELECT RAISE(ABORT, 'trades are frozen'); END"


def _tenants(project: Project, count: int, *, rows: int = 100, frozen: tuple[int, ...] = ()) -> list[Path]:
    """``count`` databases cloned from one template at version 1 with ``rows`` rows; version 2
    adds a column and backfills it, which fails on the ``frozen`` ones (a trigger refuses updates)."""
    project.write(
        "001_trades.sql",
        TRADES,
    )
    template = project.root / "template.db"
    MigrationManager(template, project.dir, dump_schema=False).migrate()
    with closing(sqlite3.connect(template)) as connection:
        connection.executemany("INSERT INTO trades (qty) VALUES (?)", [(n,) for n in range(rows)])
        connection.commit()
    project.write(
        "002_notional.sql",
        "-- migrate:up\nALTER TABLE trades ADD COLUMN notional INTEGER;\nUPDATE trades SET notional = qty * 10;\n"
        "-- migrate:down\nALTER TABLE trades DROP COLUMN notional;\n",
    )
    folder = project.root / "tenants"
    folder.mkdir()
    paths = []
    for number in range(count):
        path = folder / f"tenant{number:04d}.db"
        shutil.copyfile(template, path)
        if number in frozen:
            with closing(sqlite3.connect(path)) as connection:
                connection.execute(FROZEN)
        paths.append(path)
    return paths


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT coalesce(max(version), 0) FROM vcp_migrations").fetchone()[0])


def _consistent(path: Path) -> int:
    """The version, once checked that schema, history and user_version agree."""
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(trades)")}
        version = int(connection.execute("SELECT coalesce(max(version), 0) FROM vcp_migrations").fetchone()[0])
        assert connection.execute("PRAGMA user_version").fetchone()[0] == version
        assert ("notional" in columns) == (version == 2), (path, version, columns)
        if version == 2:
            assert connection.execute("SELECT count(*) FROM trades WHERE notional IS NOT qty * 10").fetchone() == (0,)
        return version


def _fleet(project: Project, *args: str, cwd: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", *args, "--dir", str(project.dir)]
    return subprocess.run(
        command, cwd=cwd or project.root, capture_output=True, text=True, timeout=300, env=env, **kwargs
    )  # type: ignore[call-overload]


def test_two_hundred_databases_three_fail_and_only_failed_finishes_the_job(project: Project) -> None:
    frozen = (17, 90, 151)
    paths = _tenants(project, 200, frozen=frozen)
    before = {path: _digest(path) for path in paths}
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "2", "--keep-going", "--json", "--report", "run.json")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 200 and {line["path"] for line in lines} == {f"tenants/{p.name}" for p in paths}
    failed = sorted(line["path"] for line in lines if line["state"] == "failed")
    assert failed == [f"tenants/tenant{n:04d}.db" for n in frozen]
    for line in lines:
        if line["state"] == "failed":
            assert "trades are frozen" in line["error"] and line["kind"] == "migration" and line["applied"] == []
            assert (line["version_before"], line["version_after"]) == (1, 1)
        else:
            assert line["state"] == "migrated" and line["applied"] == [2] and line["version_after"] == 2
    for number, path in enumerate(paths):
        if number in frozen:
            assert _digest(path) == before[path]  # byte for byte as it was
        else:
            assert _consistent(path) == 2
    report = json.loads((project.root / "run.json").read_text())
    assert report["summary"]["states"] == {"migrated": 197, "failed": 3}
    assert report["summary"]["versions"] == {"1": 3, "2": 197}
    assert len(report["summary"]["slowest"]) == 5 and len(report["summary"]["failed"]) == 3
    assert "3 failed, 197 migrated" in result.stderr  # the summary, on stderr with --json
    # Fix the cause, then resume from the report: only the three run, and the job is done.
    for number in frozen:
        with closing(sqlite3.connect(paths[number])) as connection:
            connection.execute("DROP TRIGGER frozen")
    again = _fleet(project, "migrate", "--only-failed", "run.json", "--report", "run.json")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("migrated") == 4  # three lines and the summary
    assert all(_consistent(path) == 2 for path in paths)
    assert json.loads((project.root / "run.json").read_text())["summary"]["states"] == {"migrated": 3}
    status = _fleet(project, "status", "tenants/*.db", "--exit-code")
    assert status.returncode == 0 and "200 checked" in status.stdout and "v2: 200" in status.stdout


def test_by_default_no_database_starts_after_the_first_failure(project: Project) -> None:
    paths = _tenants(project, 40, rows=1, frozen=(0,))
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--json")
    assert result.returncode == 1
    states = [json.loads(line)["state"] for line in result.stdout.splitlines()]
    assert states == ["failed"] + ["not-started"] * 39
    assert all(_version(path) == 1 for path in paths)


@pytest.mark.parametrize("jobs", [1, 2])
def test_canary_stops_the_run_when_one_of_the_first_fails(project: Project, jobs: int) -> None:
    paths = _tenants(project, 30, rows=1, frozen=(3,))
    run = Fleet(paths, project.dir).migrate(jobs=jobs, canary=5, keep_going=True)
    states = [result.state for result in run.results]
    assert states[3] == "failed" and states[:5].count("migrated") == 4  # the canaries all ran
    assert set(states[5:]) == {"not-started"}
    assert [_version(p) for p in paths] == [2, 2, 2, 1, 2] + [1] * 25
    clean = _tenants_elsewhere(project, 12)
    run = Fleet(clean, project.dir).migrate(jobs=jobs, canary=5)
    assert [result.state for result in run.results] == ["migrated"] * 12


def _tenants_elsewhere(project: Project, count: int) -> list[Path]:
    folder = project.root / "more"
    folder.mkdir()
    paths = []
    for number in range(count):
        path = folder / f"t{number}.db"
        shutil.copyfile(project.root / "template.db", path)
        paths.append(path)
    return paths


def test_max_failures_stops_after_that_many(project: Project) -> None:
    paths = _tenants(project, 20, rows=1, frozen=(2, 5, 8, 11))
    run = Fleet(paths, project.dir).migrate(jobs=1, max_failures=2)
    states = [result.state for result in run.results]
    assert states[:6] == ["migrated", "migrated", "failed", "migrated", "migrated", "failed"]
    assert set(states[6:]) == {"not-started"} and run.summary.states["not-started"] == 14
    assert not run.summary.ok
    keep_going = Fleet(paths, project.dir).migrate(jobs=2, keep_going=True)
    assert [r.path for r in keep_going.results if r.state == "failed"] == [str(paths[n]) for n in (2, 5, 8, 11)]


def test_a_bad_migration_file_stops_the_fleet_before_any_database_is_touched(project: Project) -> None:
    paths = _tenants(project, 5, rows=1)
    project.write("003_broken.py", "def up(connection):\n    connection.execute(\n")
    before = {path: _digest(path) for path in paths}
    with pytest.raises(MigrationFileError, match="003_broken.py"):
        Fleet(paths, project.dir).migrate(jobs=2)
    result = _fleet(project, "migrate", "tenants/*.db")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert all(_digest(path) == before[path] for path in paths)


def test_a_version_no_migration_has_is_refused_once_before_any_database_is_touched(project: Project) -> None:
    """'fleet migrate --to 7' with no migration 7 failed the first database, and the others as
    not started (or each one, with --keep-going) and wrote that into the report, where 'migrate
    --to 7' refuses at once: now the fleet refuses as it does, before any database, exit 1."""
    paths = _tenants(project, 4, rows=1)
    MigrationManager(paths[3], project.dir, dump_schema=False).migrate()
    before = _files(project.root)
    single = subprocess.run(
        [str(console_script()), "migrate", "--db", str(paths[0]), "--dir", str(project.dir), "--to", "7"],
        cwd=project.root, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ENV_VARS},
    )  # fmt: skip
    said = f"Error: --to 7 is not a migration in {project.dir} (known versions: 1, 2; no database was touched)"
    assert (single.returncode, single.stderr) == (1, f"{said.split('; ')[0]})\n")  # the same words, less the last
    for args in (("migrate", "--to", "7"), ("rollback", "--to", "7"), ("migrate", "--to", "7", "--dry-run")):
        for more in ((), ("--keep-going",)):
            refused = _fleet(project, *args, "tenants/*.db", "--report", "run.json", "--backup", *more)
            assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", said + "\n"), (args, more)
            assert _files(project.root) == before  # no report, no backup, no lock, every database as it was
    with pytest.raises(PlanError, match="no database was touched"):
        Fleet(paths, project.dir).rollback(to=3, jobs=2)
    assert _files(project.root) == before
    # Below the newest file, a version may be in a database's history with its file gone (squashed):
    # each database decides, as the single command does.
    first = sorted(project.dir.iterdir())[0]
    source = first.read_bytes()
    first.unlink()
    squashed = _fleet(project, "rollback", "--to", "1", str(paths[3]), "--json", "--no-dump")
    assert squashed.returncode == 0, squashed.stderr
    assert _version(paths[3]) == 1
    first.write_bytes(source)
    # 0 is no migration's, and rolls back every one, as 'rollback --to 0' does.
    emptied = _fleet(project, "rollback", "--to", "0", "tenants/*.db", "--json")
    assert emptied.returncode == 0, emptied.stderr
    assert [json.loads(line)["version_after"] for line in emptied.stdout.splitlines()] == [0, 0, 0, 0]
    assert [_version(path) for path in paths] == [0, 0, 0, 0]


def test_a_fleet_run_and_single_runs_leave_identical_databases(project: Project) -> None:
    paths = _tenants(project, 6, rows=20)
    singles = [project.root / f"single{n}.db" for n in range(6)]
    for path, single in zip(paths, singles, strict=True):
        shutil.copyfile(path, single)
    Fleet(paths, project.dir, dump_schema=False).migrate(jobs=2)
    for single in singles:
        MigrationManager(single, project.dir, backup=False, dump_schema=False).migrate()
    for path, single in zip(paths, singles, strict=True):
        with closing(sqlite3.connect(path)) as fleet, closing(sqlite3.connect(single)) as alone:
            for query in (
                "SELECT * FROM trades ORDER BY id",
                "SELECT type, name, sql FROM sqlite_schema ORDER BY name",
                "SELECT version, name, checksum FROM vcp_migrations",
                "PRAGMA user_version",
            ):
                assert fleet.execute(query).fetchall() == alone.execute(query).fetchall()


def test_the_schema_file_is_written_once_and_shared_ids_are_reported(project: Project) -> None:
    paths = _tenants(project, 8, rows=1)
    warnings: list[str] = []

    from vcp_migrate.observer import Observer

    class Listening(Observer):
        def warning(self, message: str) -> None:
            warnings.append(message)

    run = Fleet(paths, project.dir, observer=Listening()).migrate(jobs=2)
    schema = (project.dir / "schema.sql").read_text()
    assert "-- version: 2" in schema and "notional" in schema
    assert list(run.summary.shared_ids.values()) == [tuple(str(p) for p in paths)]
    assert len(warnings) == 1 and "8 databases share the database id" in warnings[0]


def test_backups_in_one_folder_only_when_asked(project: Project) -> None:
    paths = _tenants(project, 4, rows=1)
    Fleet(paths[:2], project.dir).migrate(jobs=1)
    assert not list((project.root / "tenants").glob("*.backups"))
    result = _fleet(project, "migrate", *(str(p) for p in paths[2:]), "--backup-dir", "saved", "--keep-backups", "1")
    assert result.returncode == 0, result.stderr
    saved = sorted(p.name for p in (project.root / "saved").iterdir())
    assert [name.split(".")[0] for name in saved] == ["tenant0002", "tenant0003"] and len(saved) == 2
    assert all(name.endswith(".db") and "-v1." in name for name in saved)


def test_a_database_locked_by_its_application_fails_as_locked_and_the_rest_go_on(project: Project) -> None:
    paths = _tenants(project, 4, rows=1)
    holder = sqlite3.connect(paths[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = _fleet(project, "migrate", "tenants/*.db", "--lock-timeout", "0.2", "--keep-going", "--json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    by_path = {line["path"]: line for line in map(json.loads, result.stdout.splitlines())}
    locked = by_path["tenants/tenant0001.db"]
    assert locked["state"] == "failed" and locked["kind"] == "locked"
    assert [_version(p) for p in paths] == [2, 1, 2, 2]


def test_sigkill_of_the_fleet_leaves_every_database_consistent_and_a_rerun_converges(project: Project) -> None:
    project.write(
        "001_trades.sql",
        TRADES,
    )
    paths = _tenants(project, 300, rows=2000)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", "2",
               "--json"]  # fmt: skip
    process = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdout is not None
    for _ in range(20):  # wait until some databases are done
        process.stdout.readline()
    workers = _children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 10  # its workers see their parent gone, finish the database in hand and exit
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and not any(_alive(pid) for pid in workers)
    versions = [_consistent(path) for path in paths]
    assert 20 <= versions.count(2) < 300, versions.count(2)
    rerun = _fleet(project, "migrate", "tenants/*.db", "--jobs", "2", "--lock-timeout", "30")
    assert rerun.returncode == 0, rerun.stderr
    assert all(_consistent(path) == 2 for path in paths)


def test_fleet_status_counts_versions_and_lists_problems(project: Project) -> None:
    paths = _tenants(project, 6, rows=1)
    Fleet(paths[:4], project.dir).migrate(jobs=1)
    with closing(sqlite3.connect(paths[0])) as connection:
        connection.execute("CREATE INDEX drift ON trades(qty)")
    paths[5].write_bytes(b"not a database" * 100)
    run = Fleet(paths, project.dir).status(jobs=2)
    by_name = {Path(r.path).name: r for r in run.results}
    assert by_name["tenant0000.db"].problems == ("drifted",)
    assert by_name["tenant0004.db"].pending == 1 and by_name["tenant0004.db"].version_after == 1
    assert by_name["tenant0005.db"].state == "failed" and by_name["tenant0005.db"].kind == "not-a-database"
    assert run.summary.versions == {2: 4, 1: 1}
    result = _fleet(project, "status", *(str(p) for p in paths[:5]), "--exit-code")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "tenant0000.db" in result.stdout and "drifted" in result.stdout and "tenant0004.db" in result.stdout
    assert "tenant0001.db" not in result.stdout.split("status:")[0]  # up to date: not listed
    behind = _fleet(project, "status", *(str(p) for p in paths[1:5]), "--exit-code")
    assert behind.returncode == 3
    # Its output lost (no reader, no standard output at all): the answer stays, as status's does, and the loss is said.
    command = [str(console_script()), "fleet", "status", *(str(p) for p in paths[1:5]), "--dir", str(project.dir)]
    for lose, said in (
        (with_output_closed, "closed before all was printed"),
        (with_output_missing, "closed from the start, so nothing the command printed could be seen"),
    ):
        code, err = lose([*command, "--exit-code"], project.root)
        assert code == 3 and "Traceback" not in err, err
        assert err.splitlines()[-1].startswith(f"Error: standard output was {said}; the run went on to its end: 4")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_interrupted_fleet_status_marks_the_drifted_among_the_databases_it_read(project: Project, jobs: str) -> None:
    """Ctrl-C while databases are read (their application holds them locked): the databases read
    were listed without their drift, which only a run that ended marked."""
    paths = _tenants(project, 8, rows=1)
    Fleet(paths, project.dir).migrate(jobs=1)
    with closing(sqlite3.connect(paths[0])) as connection:
        connection.execute("CREATE INDEX drift ON trades(qty)")
    before = {path: _digest(path) for path in paths}
    held = [sqlite3.connect(path, isolation_level=None) for path in paths[2:4]]
    for connection in held:  # the fleet waits for them: each worker (one by turns, with 2) has one in hand
        connection.execute("BEGIN EXCLUSIVE")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "status", *map(str, paths), "--dir", str(project.dir), "--jobs", jobs,
               "--lock-timeout", "60", "--report", "run.json"]  # fmt: skip
    process = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               start_new_session=True, text=True)  # fmt: skip

    def reading(path: Path) -> bool:
        for pid in (process.pid, *_children(process.pid)):
            with contextlib.suppress(OSError):
                if any(os.path.realpath(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir()):
                    return True
        return False

    try:
        for _ in range(3000):
            if all(reading(path) for path in paths[2 : 2 + int(jobs)]):
                break
            time.sleep(0.01)
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.5)
    finally:
        for connection in held:  # the databases in flight finish
            connection.execute("ROLLBACK")
            connection.close()
    out, err = _finished(process)
    assert process.returncode == 130, err
    assert "Error: interrupted: the databases in flight finished, the others were not started" in err
    report = {Path(r["path"]).name: r for r in json.loads((project.root / "run.json").read_text())["results"]}
    read = [name for name, result in report.items() if result["state"] == "checked"]
    assert read == [path.name for path in paths[: 2 + int(jobs)]], report
    assert {name: report[name]["problems"] for name in read} == {name: [] for name in read} | {
        paths[0].name: ["drifted"]
    }
    assert re.search(rf"^checked +{re.escape(str(paths[0]))}  2 -> 2  \(drifted\)", out, re.M), out
    assert [path.name for path in paths if str(path) in out.split("status:")[0]] == [paths[0].name]
    assert {path: _digest(path) for path in paths} == before


def test_targets_bad_input_is_one_line_and_changes_nothing(project: Project) -> None:
    paths = _tenants(project, 2, rows=1)
    before = {path: _digest(path) for path in paths}
    for args, message in (
        (("migrate", "tenant/*.db"), "the pattern 'tenant/*.db' matches no file"),
        (("migrate",), "no databases given"),
        (("migrate", "--targets-from", "absent.txt"), "absent.txt: cannot be read"),
        (("migrate", "--only-failed", "absent.json"), "absent.json: cannot be read"),
        (("migrate", "tenants/*.db", "--db", "x.db"), "fleet commands take the databases as arguments"),
    ):
        result = _fleet(project, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    (project.root / "list.txt").write_text(f"# tenants\n{paths[0]}\n\n")
    listed = _fleet(project, "migrate", "--targets-from", "list.txt", "--json")
    assert listed.returncode == 0 and [json.loads(line)["path"] for line in listed.stdout.splitlines()] == [
        str(paths[0])
    ]
    assert _digest(paths[1]) == before[paths[1]]
    from_stdin = _fleet(project, "migrate", "--targets-from", "-", input=f"{paths[1]}\n")
    assert from_stdin.returncode == 0 and _version(paths[1]) == 2


def test_fleet_rollback_and_validate(project: Project) -> None:
    paths = _tenants(project, 5, rows=1)
    Fleet(paths, project.dir).migrate(jobs=2)
    run = Fleet(paths, project.dir).rollback(jobs=2)
    assert {r.state for r in run.results} == {"rolled-back"} and all(_consistent(p) == 1 for p in paths)
    checked = Fleet(paths, project.dir).validate(jobs=2)
    assert checked.summary.ok and {r.state for r in checked.results} == {"checked"}
    result = _fleet(project, "validate", "tenants/*.db")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", ["migrate", "rollback", "status", "validate"])
def test_every_fleet_command_has_help_with_an_example_and_a_readme_mention(command: str) -> None:
    from click.testing import CliRunner

    from vcp_migrate.cli import main

    result = CliRunner().invoke(main, ["fleet", command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout
    assert f"vcp-migrate fleet {command}" in result.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"vcp-migrate fleet {command}" in readme


SLOW = (
    "import time\n\ndef up(connection):\n    connection.execute('ALTER TABLE trades ADD COLUMN notional INTEGER')\n"
    "    time.sleep({seconds})\n    connection.execute('UPDATE trades SET notional = qty * 10')\n\n"
    "def down(connection):\n    connection.execute('ALTER TABLE trades DROP COLUMN notional')\n"
)


# A Python migration that records what its worker process had loaded: the command line (click),
# and the parent's main module run again (a user's script below defines TENANTS).
LOADED = (
    "import sys\n\ndef up(connection):\n    connection.execute('ALTER TABLE trades ADD COLUMN notional INTEGER')\n"
    "    connection.execute('UPDATE trades SET notional = qty * 10')\n"
    "    connection.execute('CREATE TABLE loaded (click, main)')\n"
    "    seen = ('click' in sys.modules, hasattr(sys.modules['__main__'], 'TENANTS'))\n"
    "    connection.execute('INSERT INTO loaded VALUES (?, ?)', seen)\n"
)
SCRIPT = (
    "import sys\nfrom vcp_migrate.fleet import Fleet\n\nTENANTS = sys.argv[1:-1]\n\n"
    "if __name__ == '__main__':\n    run = Fleet(TENANTS, sys.argv[-1], dump_schema=False).migrate(jobs=2)\n"
    "    sys.exit(0 if run.summary.ok else 1)\n"
)


def _loaded(path: Path) -> tuple[int, int]:
    with closing(sqlite3.connect(path)) as connection:
        return tuple(connection.execute("SELECT click, main FROM loaded").fetchone())  # type: ignore[return-value]


def test_workers_of_the_command_line_do_not_load_it_again_those_of_a_script_run_it(project: Project) -> None:
    """A spawned worker runs its parent's main module first: for vcp-migrate's console script that
    only costs (click and every command), for a user's script it is what multiprocessing promises."""
    paths = _tenants(project, 4, rows=2)
    (project.dir / "002_notional.sql").unlink()
    project.write("002_notional.py", LOADED)
    result = _fleet(project, "migrate", *(str(p) for p in paths[:2]), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert [_loaded(p) for p in paths[:2]] == [(0, 0), (0, 0)]
    script = project.root / "script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [sys.executable, str(script), *(str(p) for p in paths[2:]), str(project.dir)]
    ran = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, ran.stderr
    assert [_loaded(p)[1] for p in paths[2:]] == [1, 1]
    assert all(_consistent(p) == 2 for p in paths)


def _slow_tenants(project: Project, count: int, seconds: float, frozen: tuple[int, ...] = ()) -> list[Path]:
    """As _tenants, but version 2 is a Python migration that takes ``seconds`` on each database."""
    paths = _tenants(project, count, rows=1, frozen=frozen)
    (project.dir / "002_notional.sql").unlink()
    project.write("002_notional.py", SLOW.format(seconds=seconds))
    return paths


def test_workers_start_no_database_after_the_first_failure(project: Project) -> None:
    # Chunks of 12 a worker: the failing worker's own chunk, and the queued ones, are not started.
    paths = _slow_tenants(project, 200, 0.05, frozen=(0,))
    before = {path: _digest(path) for path in paths}
    run = Fleet(paths, project.dir, dump_schema=False).migrate(jobs=2)
    states = [result.state for result in run.results]
    assert states[0] == "failed" and states.count("migrated") <= 4, states.count("migrated")
    for path, result in zip(paths, run.results, strict=True):
        if result.state == "not-started":
            assert _digest(path) == before[path]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("jobs", ["2", "1"])
@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_finishes_those_in_flight_reports_the_rest_and_a_rerun_converges(
    project: Project, sent: signal.Signals, jobs: str
) -> None:
    paths = _slow_tenants(project, 40, 0.1)
    before = {path: _digest(path) for path in paths}
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", jobs,
               "--json", "--report", "run.json"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()  # one database done: the run is under way
    os.killpg(process.pid, sent)
    # Bounded: a fleet that does not end fails the test (killed, exit -9) instead of hanging the suite.
    watchdog = threading.Timer(60, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        out, err = process.stdout.read(), process.stderr.read()  # not communicate(): readline() read ahead
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert process.returncode == 130, err
    lines = [json.loads(line) for line in [first, *out.splitlines()]]
    assert err.splitlines()[-1].startswith("Error: interrupted: the databases in flight finished")
    assert "--only-failed run.json" in err and "Traceback" not in err
    report = json.loads((project.root / "run.json").read_text())
    states = {r["path"]: r["state"] for r in report["results"]}
    assert states == {line["path"]: line["state"] for line in lines} and len(states) == 40
    assert set(states.values()) == {"migrated", "not-started"} and list(states.values()).count("migrated") <= 8
    for path in paths:
        if states[f"tenants/{path.name}"] == "not-started":
            assert _digest(path) == before[path]
        else:
            assert _consistent(path) == 2
    again = _fleet(project, "migrate", "--only-failed", "run.json")
    assert again.returncode == 0, again.stderr
    assert all(_consistent(path) == 2 for path in paths)


@pytest.mark.parametrize("keep_going", [True, False])
def test_sigkill_of_a_worker_fails_only_what_it_held_the_others_finish_theirs_and_a_rerun_finishes(
    project: Project, keep_going: bool
) -> None:
    paths = _slow_tenants(project, 60, 0.1)
    before = {path: _digest(path) for path in paths}
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", "3",
               "--json", "--report", "run.json", *(["--keep-going"] if keep_going else [])]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    # Bounded: a fleet that does not end fails the test (killed, exit -9) instead of hanging the suite.
    watchdog = threading.Timer(60, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        for _ in range(6):  # some databases done: every worker is under way, each with a database in hand
            process.stdout.readline()
        workers = [pid for pid in _children(process.pid) if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 3, workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = process.communicate()
    finally:
        watchdog.cancel()
    assert process.returncode == 1 and "Traceback" not in err and "unexpected" not in err, err
    assert not any(_alive(pid) for pid in workers)
    results = {Path(r["path"]).name: r for r in json.loads((project.root / "run.json").read_text())["results"]}
    # Only the database the killed worker held failed; the other workers finished theirs (none is
    # reported failed, nor left a hot journal or a lock file behind) and, by default, started no other.
    failed = [name for name, r in results.items() if r["state"] == "failed"]
    assert len(failed) == 1, failed
    held = project.root / "tenants" / failed[0]
    assert (
        results[held.name]["kind"] == "interrupted" and "worker process ended abruptly" in results[held.name]["error"]
    )
    status = held.stat()
    assert {p.name for p in held.parent.iterdir() if not p.name.endswith(".db")} <= {
        f"{held.name}-journal",
        f".vcp-lock-{status.st_dev}-{status.st_ino}",
    }
    states = Counter(r["state"] for r in results.values())
    assert states["migrated"] == (59 if keep_going else 60 - 1 - states["not-started"]), states
    assert keep_going or states["not-started"] >= 30, states
    for path in paths:
        result = results[path.name]
        if result["state"] == "migrated":
            assert _consistent(path) == 2 and result["version_after"] == 2 and result["applied"] == [2]
        elif result["state"] == "not-started":
            assert _digest(path) == before[path]
    assert _consistent(held) in (1, 2)  # its migration in progress is rolled back as it is opened
    # Said as found once its worker was gone (it said none: a database's earlier commits stay).
    assert results[held.name]["version_after"] == _consistent(held)
    assert f"it is at version {_consistent(held)} now" in results[held.name]["error"]
    again = _fleet(project, "migrate", "--only-failed", "run.json")
    assert again.returncode == 0, again.stderr
    assert all(_consistent(path) == 2 for path in paths)
    assert [p.name for p in held.parent.iterdir() if not p.name.endswith(".db")] == []


def test_only_failed_from_another_folder_and_never_from_another_commands_report(project: Project) -> None:
    paths = _tenants(project, 6, rows=1, frozen=(2,))
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--report", "run.json")
    assert result.returncode == 1
    assert f"failed: tenants/{paths[2].name}: " in result.stdout  # the summary names the database
    before = {path: _digest(path) for path in paths}
    refused = _fleet(project, "rollback", "--only-failed", "run.json")
    assert refused.returncode == 2 and "is the report of a fleet migrate run, not of fleet rollback" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and {p: _digest(p) for p in paths} == before
    with closing(sqlite3.connect(paths[2])) as connection:
        connection.execute("DROP TRIGGER frozen")
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    again = _fleet(project, "migrate", "--only-failed", "../run.json", "--jobs", "1", cwd=elsewhere)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 migrated" in again.stdout and all(_consistent(path) == 2 for path in paths)


def test_a_report_that_cannot_be_written_is_refused_before_any_database_is_touched(project: Project) -> None:
    paths = _tenants(project, 3, rows=1)
    before = {path: _digest(path) for path in paths}
    for report in ("absent/run.json", "tenants"):
        result = _fleet(project, "migrate", "tenants/*.db", "--report", report)
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert f"'{report}' cannot be written" in result.stderr
        assert {p: _digest(p) for p in paths} == before


def test_on_a_terminal_a_progress_bar_counts_done_failed_and_the_rate(project: Project) -> None:
    import re

    paths = _tenants(project, 30, rows=1, frozen=(7,))
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--keep-going"]
    code, output = on_a_terminal(command, project.root, columns=120)
    assert code == 1
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    assert re.search(r"migrate\s.*30/30\s+1 failed\s+\d+/s", output), output[-2000:]
    assert "tenant0007.db" in output and "29 migrated" in output
    assert [_version(path) for path in paths].count(2) == 29


# -- the command line in this process (--jobs 1): every path of its output, targets and report --


def _cli(project: Project, *args: str, input: str | None = None) -> Result:
    from click.testing import CliRunner

    from vcp_migrate.cli import main

    return CliRunner().invoke(main, ["fleet", *args, "--dir", str(project.dir), "--jobs", "1"], input=input)


def test_the_command_line_in_process_text_json_report_and_only_failed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _tenants(project, 6, rows=1, frozen=(2,))
    monkeypatch.chdir(project.root)
    text = _cli(project, "migrate", "tenants/*.db", "--keep-going", "--report", "run.json")
    assert text.exit_code == 1
    lines = text.stdout.splitlines()
    assert sum(line.startswith("migrated ") for line in lines) == 5 and lines[2].startswith("failed ")
    assert "trades are frozen" in lines[2] and "migrate: 6 database(s)" in text.stdout
    assert "at each version: v1: 1, v2: 5" in text.stdout and "slowest: " in text.stdout
    assert "failed: tenants/tenant0002.db" in text.stdout
    with closing(sqlite3.connect(paths[2])) as connection:
        connection.execute("DROP TRIGGER frozen")
    resumed = _cli(project, "migrate", "--only-failed", "run.json", "--json")
    assert resumed.exit_code == 0, resumed.output
    (line,) = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert line["path"] == "tenants/tenant0002.db" and line["state"] == "migrated" and line["applied"] == [2]
    again = _cli(project, "migrate", "tenants/*.db", "--json")
    assert {json.loads(line)["state"] for line in again.stdout.splitlines()} == {"up-to-date"}
    status = _cli(project, "status", "tenants/*.db", "--exit-code", "--report", "status.json")
    assert status.exit_code == 0 and "6 checked" in status.stdout and "v2: 6" in status.stdout
    assert json.loads((project.root / "status.json").read_text())["command"] == "status"
    down = _cli(project, "rollback", "tenants/*.db", "--steps", "1", "--backup")
    assert down.exit_code == 0 and "rollback: 6 database(s)" in down.stdout and "6 rolled-back" in down.stdout
    assert all(_version(path) == 1 for path in paths) and len(list(paths[0].parent.glob("*.backups"))) == 6
    checked = _cli(project, "validate", "tenants/*.db", "--json")
    assert checked.exit_code == 0 and len(checked.stdout.splitlines()) == 6


def test_the_command_line_in_process_targets_from_a_file_and_standard_input(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _tenants(project, 3, rows=1)
    monkeypatch.chdir(project.root)
    (project.root / "list.txt").write_text(f"# two of them\n{paths[0]}\n\n{paths[1]}\n{paths[0]}\n")
    listed = _cli(project, "migrate", "--targets-from", "list.txt", "--json")
    assert [json.loads(line)["path"] for line in listed.stdout.splitlines()] == [str(paths[0]), str(paths[1])]
    piped = _cli(project, "migrate", "--targets-from", "-", "--json", input=f"{paths[2]}\n")
    assert [json.loads(line)["state"] for line in piped.stdout.splitlines()] == ["migrated"]
    for args, message in (
        (("migrate", "nowhere/*.db"), "matches no file"),
        (("migrate",), "no databases given"),
        (("migrate", "--targets-from", "absent.txt"), "cannot be read"),
        (("rollback", "tenants/*.db", "--steps", "1", "--to", "0"), "cannot be used together"),
    ):
        result = _cli(project, *args)
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
    missing = _cli(project, "migrate", "tenants/absent.db", "--json")
    (line,) = [json.loads(line) for line in missing.stdout.splitlines()]
    assert missing.exit_code == 1 and line["kind"] == "missing" and "does not exist" in line["error"]
    assert "check its path in the list of databases" in line["error"]


def test_a_server_url_is_not_a_fleet_target(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _tenants(project, 2, rows=1)
    before = {path: _digest(path) for path in paths}
    monkeypatch.chdir(project.root)
    (project.root / "servers.txt").write_text(f"{paths[0]}\nlibsql://reader:pw@db.example.com/app\n")
    said = "fleets run on database files, not server URLs (migrate a server with 'vcp-migrate migrate --db URL')"
    for args, where in [
        (("status", "http://127.0.0.1:8080"), "http://127.0.0.1:8080"),
        (("migrate", str(paths[0]), "https://db.example.com"), "https://db.example.com"),
        (("validate", "ws://127.0.0.1:8080"), "ws://127.0.0.1:8080"),
        (("migrate", "--targets-from", "servers.txt"), "libsql://db.example.com/app"),  # never the password
    ]:
        result = _cli(project, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr == f"Error: {where}: {said}\n" and "pw" not in result.stderr
    with pytest.raises(UsageError, match="fleets run on database files, not server URLs"):
        Fleet([paths[1], "http://127.0.0.1:8080"], project.dir)
    assert {path: _digest(path) for path in paths} == before


def test_the_python_api_status_validate_and_dry_run_in_process(project: Project) -> None:
    paths = _tenants(project, 4, rows=1)
    rehearsed = Fleet(paths, project.dir).migrate(jobs=1, dry_run=True)
    assert {r.state for r in rehearsed.results} == {"migrated"} and all(_version(p) == 1 for p in paths)
    seen: list[str] = []
    run = Fleet(paths, project.dir).migrate(jobs=1, on_result=lambda result: seen.append(result.path))
    assert seen == [str(p) for p in paths] and run.summary.ok and run.summary.as_dict()["states"] == {"migrated": 4}
    with pytest.raises(UsageError, match="max_failures must be 1 or more"):
        Fleet(paths, project.dir).migrate(jobs=1, max_failures=0)
    for wrong in ({"max_failures": 1.5}, {"canary": "2"}, {"jobs": 2.0}, {"target": True}):
        with pytest.raises(UsageError, match="must be a whole number, not"):
            Fleet(paths, project.dir).migrate(**wrong)  # type: ignore[arg-type]
    paths[3].write_bytes(b"not a database" * 100)
    checked = Fleet(paths, project.dir).validate(jobs=1)
    assert [r.state for r in checked.results] == ["checked"] * 3 + ["failed"] and not checked.summary.ok


def test_hard_links_in_other_folders_are_one_database_and_run_once(project: Project) -> None:
    (path,) = _tenants(project, 1, rows=10)
    links = []
    for folder in ("a", "b", "c"):
        (project.root / folder).mkdir()
        links.append(project.root / folder / "tenant.db")
        os.link(path, links[-1])
    result = _fleet(project, "migrate", str(path), *map(str, links), "--jobs", "2", "--keep-going", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["path"], line["state"]) for line in lines] == [(str(path), "migrated")]
    assert _consistent(path) == 2 and "share a database id" not in result.stderr


def test_the_python_api_runs_each_file_once_whatever_its_names(project: Project) -> None:
    """A rollback of one step through a file given twice (and through a link) rolled back two."""
    (path,) = _tenants(project, 1, rows=10)
    os.symlink(path, project.root / "alias.db")
    run = Fleet([path, project.root / "alias.db", str(path), os.fsencode(path)], project.dir).rollback(jobs=1)
    assert [(r.path, r.state, r.applied) for r in run.results] == [(str(path), "rolled-back", (1,))]
    assert _version(path) == 0 and run.summary.shared_ids == {}
    run = Fleet([path, path], project.dir).migrate(jobs=2)
    assert [r.state for r in run.results] == ["migrated"] and _consistent(path) == 2


def test_the_python_api_refuses_what_is_not_a_list_of_paths_and_jobs_below_one(project: Project) -> None:
    (path,) = _tenants(project, 1, rows=1)
    before = _digest(path)
    for wrong, said in (
        (str(path), "paths must be a list of database paths, not one str"),
        (os.fsencode(path), "not one bytes"),
        (path, "not one PosixPath"),
        ([5], "a database path must be a path (a str or a path object), not int"),
        ([f"{path}\0"], "holds a NUL character"),
    ):
        with pytest.raises(UsageError, match=re.escape(said)):
            Fleet(wrong, project.dir)  # type: ignore[arg-type]
    for jobs in (0, -3):
        with pytest.raises(UsageError, match=f"jobs must be 1 or more, not {jobs}"):
            Fleet([path], project.dir).migrate(jobs=jobs)
    assert _digest(path) == before and sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_the_python_api_refuses_a_flag_or_a_schema_file_of_the_wrong_kind_before_anything(project: Project) -> None:
    """A truthy string taken as it is would turn a setting on: ``dry_run="no"`` would migrate for real."""
    paths = _tenants(project, 2, rows=1)
    digests = [_digest(p) for p in paths]
    for make, said in (
        (lambda: Fleet(paths, project.dir, backup="no"), "backup must be True or False, not 'no'"),
        (lambda: Fleet(paths, project.dir, dump_schema=0), "dump_schema must be True or False, not 0"),
        (lambda: Fleet(paths, project.dir, allow_existing="no"), "allow_existing must be True or False, not 'no'"),
        (lambda: Fleet(paths, project.dir, schema_file="."), "schema_file names a folder, not a file: '.'"),
        (lambda: Fleet(paths, project.dir).migrate(jobs=1, dry_run="no"), "dry_run must be True or False, not 'no'"),
        (lambda: Fleet(paths, project.dir).migrate(jobs=1, atomic="no"), "atomic must be True or False, not 'no'"),
        (lambda: Fleet(paths, project.dir).rollback(jobs=1, keep_going=1), "keep_going must be True or False, not 1"),
        (lambda: Fleet(paths, project.dir).validate(jobs=1, roundtrip="no"), "roundtrip must be True or False"),
    ):
        with pytest.raises(UsageError, match=re.escape(said)):
            make()
    assert [_digest(p) for p in paths] == digests and not (project.dir / "schema.sql").exists()


def test_a_schema_file_that_is_a_target_or_a_migration_stops_the_fleet_before_it_starts(project: Project) -> None:
    paths = _tenants(project, 3, rows=1)
    digests = [_digest(p) for p in paths]
    for schema_file, said in (
        (paths[1], "a file vcp-migrate did not write"),
        (project.dir / "002_notional.sql", "named as a migration"),
    ):
        source = (project.dir / "002_notional.sql").read_bytes()
        with pytest.raises(UsageError, match=re.escape(said)):
            Fleet(paths, project.dir, schema_file=schema_file).migrate(jobs=1)
        assert [_digest(p) for p in paths] == digests and (project.dir / "002_notional.sql").read_bytes() == source
    (project.root / "pyproject.toml").write_text(f'[tool.vcp-migrate]\nschema_file = "{paths[0]}"\n')
    result = _fleet(project, "migrate", *map(str, paths))
    assert result.returncode == 2 and result.stdout == "", result.stderr
    said = "schema_file in [tool.vcp-migrate] of pyproject.toml is a file vcp-migrate did not write"
    assert said in " ".join(result.stderr.split())
    assert [_digest(p) for p in paths] == digests
    assert Fleet(paths, project.dir, schema_file=paths[0]).status(jobs=1).summary.ok  # status writes no schema file


def test_an_unbuffered_standard_error_gets_a_print_as_one_write_so_workers_cut_into_no_line(tmp_path: Path) -> None:
    """Unbuffered (PYTHONUNBUFFERED=1), print() writes its pieces one by one; a fleet's workers
    share standard error, and lines came out as "hello fromhello from (2,)\n (2,)"."""
    writes: list[bytes] = []

    class Recorded(io.FileIO):
        def write(self, data: object) -> int:
            writes.append(bytes(data))  # type: ignore[call-overload]
            return super().write(data)  # type: ignore[arg-type]

    stream = io.TextIOWrapper(Recorded(tmp_path / "err", "w"), encoding="utf-8", write_through=True)
    guarded = closed_output._Guarded(stream)
    print("hello from", (2,), file=guarded)
    print("no end yet", end="", file=guarded)
    assert writes == [b"hello from (2,)\n"]
    print(" and the end", file=guarded)
    print("a last piece", end="", file=guarded)
    guarded.flush()
    assert writes == [b"hello from (2,)\n", b"no end yet and the end\n", b"a last piece"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_json_lines_hold_only_results_what_a_migration_prints_goes_to_standard_error(
    project: Project, jobs: str
) -> None:
    paths = _tenants(project, 3, rows=1)
    project.write(
        "003_noisy.py",
        "import os\nprint('loading 003')\n"
        "def up(c):\n    print('hello from', c.execute('PRAGMA user_version').fetchone())\n"
        "    os.system('echo from a subprocess')\n    os.write(1, b'written to 1\\n')\n"
        "def down(c):\n    pass\n",
    )
    result = _fleet(project, "migrate", *map(str, paths), "--json", "--jobs", jobs)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["state"] for line in result.stdout.splitlines()] == ["migrated"] * 3
    assert result.stderr.count("hello from (2,)") == 3 and "loading 003" in result.stderr
    assert result.stderr.count("from a subprocess") == 3 and result.stderr.count("written to 1") == 3
    assert all(_version(p) == 3 for p in paths)
    for path in paths:  # again, with no one reading standard error: a print() fails nothing
        with closing(sqlite3.connect(path)) as connection:
            connection.execute("DELETE FROM vcp_migrations WHERE version = 3")
            connection.commit()
    command = [str(console_script()), "fleet", "migrate", *map(str, paths), "--json", "--jobs", jobs]
    process = subprocess.Popen([*command, "--dir", str(project.dir)], cwd=project.root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)  # fmt: skip
    assert process.stderr is not None
    process.stderr.close()
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and [json.loads(line)["state"] for line in out.splitlines()] == ["migrated"] * 3


def test_listed_paths_are_taken_as_written_and_an_existing_name_is_never_a_pattern(project: Project) -> None:
    """``acct[1].db`` is that file, never the ``acct1.db`` the same text matches as a pattern."""
    project.write("001_trades.sql", TRADES)
    bracketed, plain = project.root / "acct[1].db", project.root / "acct1.db"
    for path in (bracketed, plain):
        MigrationManager(path, project.dir, dump_schema=False).migrate()
    project.write("002_more.sql", "-- migrate:up\nCREATE TABLE more (x);\n-- migrate:down\nDROP TABLE more;\n")
    (project.root / "list.txt").write_text("acct[1].db\n")
    listed = _fleet(project, "migrate", "--targets-from", "list.txt", "--no-dump", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["path"] for line in listed.stdout.splitlines()] == ["acct[1].db"]
    assert (_version(bracketed), _version(plain)) == (2, 1)
    named = _fleet(project, "rollback", "acct[1].db", "--json")
    assert named.returncode == 0, named.stderr
    assert [json.loads(line)["path"] for line in named.stdout.splitlines()] == ["acct[1].db"]
    assert (_version(bracketed), _version(plain)) == (1, 1)
    pattern = _fleet(project, "migrate", "acct[0-9].db", "--no-dump", "--json")
    assert [json.loads(line)["path"] for line in pattern.stdout.splitlines()] == ["acct1.db"]


def test_a_dry_run_report_is_marked_and_a_real_rerun_refuses_it(project: Project) -> None:
    paths = _tenants(project, 3, rows=5, frozen=(1,))
    rehearsed = _fleet(project, "migrate", "tenants/*.db", "--dry-run", "--keep-going", "--report", "dry.json")
    assert rehearsed.returncode == 1 and "migrate --dry-run: 3 database(s)" in rehearsed.stdout
    # Each line says it was a rehearsal, not only the summary: "migrated 1 -> 2" alone misled.
    lines = [line for line in rehearsed.stdout.splitlines() if line.startswith("migrated ")]
    assert len(lines) == 2 and all("1 -> 2  (rehearsed: nothing was changed)" in line for line in lines)
    assert json.loads((project.root / "dry.json").read_text())["command"] == "migrate --dry-run"
    before = [_digest(path) for path in paths]
    real = _fleet(project, "migrate", "--only-failed", "dry.json")
    assert (
        real.returncode == 2 and "is the report of a fleet migrate --dry-run run, not of fleet migrate" in real.stderr
    )
    assert [_digest(path) for path in paths] == before
    again = _fleet(project, "migrate", "--dry-run", "--only-failed", "dry.json", "--json")
    assert [json.loads(line)["path"] for line in again.stdout.splitlines()] == ["tenants/tenant0001.db"]
    assert [_digest(path) for path in paths] == before


def test_quiet_prints_only_the_failures(project: Project) -> None:
    _tenants(project, 3, rows=5, frozen=(2,))
    result = _fleet(project, "migrate", "tenants/*.db", "--keep-going", "--no-dump", "-q")
    assert result.returncode == 1
    assert result.stdout.splitlines() and all(line.startswith("failed: ") for line in result.stdout.splitlines())
    assert "tenant0002.db" in result.stdout
    quiet = _fleet(project, "migrate", "tenants/*.db", "--keep-going", "--no-dump", "-q")
    rerun = _fleet(project, "migrate", "tenants/tenant0000.db", "--no-dump", "-q")
    assert quiet.returncode == 1 and rerun.returncode == 0 and rerun.stdout == ""


@pytest.mark.parametrize("path", [None, 1, "", "nul\u0000.db"], ids=["null", "a number", "empty", "a NUL character"])
def test_a_report_whose_paths_are_not_file_names_is_refused(project: Project, path: object) -> None:
    _tenants(project, 1, rows=1)
    report = {"command": "migrate", "results": [{"path": path, "state": "failed"}]}
    (project.root / "odd.json").write_text(json.dumps(report))
    result = _fleet(project, "migrate", "--only-failed", "odd.json")
    assert result.returncode == 2 and "is not a report of a fleet run" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_a_listed_path_with_a_nul_character_is_refused(project: Project) -> None:
    _tenants(project, 1, rows=1)
    (project.root / "list.txt").write_bytes(b"tenants/tenant0000.db\nbad\x00.db\n")
    result = _fleet(project, "migrate", "--targets-from", "list.txt")
    assert result.returncode == 2 and "holds a NUL character" in result.stderr and "Traceback" not in result.stderr
    assert _version(project.root / "tenants" / "tenant0000.db") == 1


# A Python migration that does, on a database whose table ``ctl`` says so, what a crash, a hang
# or a stray KeyboardInterrupt in a migration does: SIGKILL its own process, sleep forever, raise.
ACTING = (
    "import os, signal, time\n\ndef up(connection):\n"
    "    connection.execute('ALTER TABLE trades ADD COLUMN notional INTEGER')\n"
    "    connection.execute('UPDATE trades SET notional = qty * 10')\n"
    "    row = connection.execute(\"SELECT name FROM sqlite_master WHERE name = 'ctl'\").fetchone()\n"
    "    action = connection.execute('SELECT action FROM ctl').fetchone()[0] if row else ''\n"
    "    if action == 'kill':\n        os.kill(os.getpid(), signal.SIGKILL)\n"
    "    if action == 'hang':\n        while True:\n            time.sleep(1)\n"
    "    if action == 'interrupt':\n        raise KeyboardInterrupt\n"
    "    if action == 'endless':  # one SQLite statement that never ends\n"
    "        connection.execute('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
    " SELECT count(*) FROM n').fetchone()\n"
    "    if action == 'caught':  # an INSERT that never ends: interrupted, SQLite rolls its transaction back\n"
    "        try:\n"
    "            connection.execute('INSERT INTO trades (qty) WITH RECURSIVE n(i) AS"
    " (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n')\n"
    "        except Exception:\n"
    "            connection.execute('CREATE TABLE leaked (x)')  # outside any transaction: it would stay\n"
    "    if action == 'forked':  # a helper process meanwhile, which gets the terminal's Ctrl-C too\n"
    "        if os.fork() == 0:\n            time.sleep(3)\n            os._exit(0)\n"
    "        open('forked', 'w').close()\n"
    "        connection.execute('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000000)"
    " SELECT count(*) FROM n').fetchone()\n"
    "    time.sleep({seconds})\n\n"
    "def down(connection):\n    connection.execute('ALTER TABLE trades DROP COLUMN notional')\n"
)


def _acting_tenants(project: Project, count: int, seconds: float, acts: dict[int, str]) -> list[Path]:
    paths = _tenants(project, count, rows=1)
    (project.dir / "002_notional.sql").unlink()
    project.write("002_notional.py", ACTING.format(seconds=seconds))
    for number, action in acts.items():
        with closing(sqlite3.connect(paths[number])) as connection:
            connection.execute("CREATE TABLE ctl (action TEXT)")
            connection.execute("INSERT INTO ctl VALUES (?)", (action,))
            connection.commit()
    return paths


def _started(project: Project, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--no-dump",
               "--json", "--report", "run.json", *args]  # fmt: skip
    return subprocess.Popen(
        command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        start_new_session=True,
    )  # fmt: skip


def _finished(process: subprocess.Popen[str], seconds: float = 60) -> tuple[str, str]:
    """Its output once it ends; bounded: a fleet that does not end is killed and fails the test."""
    watchdog = threading.Timer(seconds, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    try:
        return process.communicate()
    finally:
        watchdog.cancel()


def _workers(pid: int) -> list[int]:
    return [child for child in _children(pid) if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_keep_going_replaces_workers_that_databases_crash_and_runs_every_other(project: Project) -> None:
    """Three databases crash whatever worker runs them (as a faulty extension or the OOM killer
    would), more than there are workers: each fails alone, every other database is migrated."""
    paths = _acting_tenants(project, 24, 0, {3: "kill", 9: "kill", 15: "kill", 21: "interrupt"})
    out, err = _finished(_started(project, "--jobs", "2", "--keep-going"))
    results = {Path(line["path"]).name: line for line in map(json.loads, out.splitlines())}
    assert len(results) == 24 and "Traceback" not in err, err
    failed = sorted(name for name, result in results.items() if result["state"] == "failed")
    assert failed == [paths[n].name for n in (3, 9, 15, 21)], failed
    assert results[paths[21].name]["error"].endswith(
        "the migration raised KeyboardInterrupt (a transactional migration is rolled back whole; it is at version 1"
        " now; run the fleet again to finish it)"
    )
    for number, path in enumerate(paths):
        assert _consistent(path) == (1 if number in (3, 9, 15, 21) else 2)
        if number not in (3, 9, 15, 21):
            assert results[path.name]["state"] == "migrated"


def test_a_worker_that_dies_before_its_first_database_fails_none_after_one_that_died_holding_one(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies holding a database; the one started in its place dies too, as Python starts,
    before it takes any: the first database it was sent was reported failed ("its worker process
    ended abruptly"), though nothing had touched it (the flag saying the slot held a database was
    its predecessor's)."""
    paths = _acting_tenants(project, 24, 0.05, {2: "kill"})  # work left for a worker in its place
    migration = project.dir / "002_notional.py"
    migration.write_text(
        migration.read_text().replace(
            "    if action == 'kill':\n", "    if action == 'kill':\n        open('killed', 'w').close()\n"
        )
    )
    # Run by every Python as it starts: the first to start after the kill, the worker in its place, dies.
    startup = project.root / "startup"
    startup.mkdir()
    (startup / "sitecustomize.py").write_text(
        "import os, signal\n"
        "if os.path.exists('killed') and not os.path.exists('died starting'):\n"
        "    open('died starting', 'w').close()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(startup), os.environ.get("PYTHONPATH")])))
    out, err = _finished(_started(project, "--jobs", "2", "--keep-going"))
    assert (project.root / "died starting").exists(), err
    results = {Path(line["path"]).name: line for line in map(json.loads, out.splitlines())}
    assert len(results) == 24 and "Traceback" not in err, err
    failed = sorted(name for name, result in results.items() if result["state"] == "failed")
    assert failed == [paths[2].name], (failed, err)
    for number, path in enumerate(paths):
        assert _consistent(path) == (1 if number == 2 else 2)


@pytest.mark.parametrize("action", ["hang", "endless", "caught"])
@pytest.mark.parametrize("jobs", ["2", "1"])
def test_a_second_ctrl_c_stops_a_migration_that_hangs(project: Project, jobs: str, action: str) -> None:
    """The first Ctrl-C lets the databases in flight finish, and one never does; the second stops
    it: exit 130, that database failed (rolled back), no worker left, a rerun finishes the job.
    In one SQLite statement that never ends too: with one job, both signals came during the one
    C call, whose end Python waits for to run its handler (once, for both); and when the migration
    catches the statement's error and goes on, nothing it does after stays (SQLite's interrupt
    rolled its transaction back: a statement after would commit on its own)."""
    paths = _acting_tenants(project, 6, 0.05, {5 if jobs == "1" else 0: action})
    process = _started(project, "--jobs", jobs, "--keep-going")
    assert process.stdout is not None
    hung = paths[5 if jobs == "1" else 0]
    journal = hung.with_name(hung.name + "-journal")
    for _ in range(2000):  # until the one that hangs is in hand: its transaction has a journal
        if journal.exists():
            break
        time.sleep(0.01)
    workers = _workers(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(1)
    assert process.poll() is None  # those in flight finish: this one never does
    os.killpg(process.pid, signal.SIGINT)
    _, err = _finished(process, 30)
    assert process.returncode == 130, err
    assert "Error: interrupted: the databases in flight were stopped and rolled back" in err
    assert not any(_alive(pid) for pid in workers)
    results = {r["path"]: r for r in json.loads((project.root / "run.json").read_text())["results"]}
    assert (results[f"tenants/{hung.name}"]["state"], results[f"tenants/{hung.name}"]["kind"]) == (
        "failed",
        "interrupted",
    )
    assert _consistent(hung) == 1
    with closing(sqlite3.connect(hung)) as connection:
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'leaked'").fetchall() == []
        connection.execute("DROP TABLE ctl")
        connection.commit()
    again = _fleet(project, "migrate", "--only-failed", "run.json", "--no-dump")
    assert again.returncode == 0, again.stderr
    assert all(_consistent(path) == 2 for path in paths)
    assert [p.name for p in hung.parent.iterdir() if not p.name.endswith(".db")] == []


def test_a_ctrl_c_once_the_databases_are_done_no_longer_loses_the_report(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the end of the run's own handling of signals and the report, Python's handler was
    back: a Ctrl-C there ended the command with exit 130, no report and no summary."""
    from click.testing import CliRunner

    from vcp_migrate import fleet as fleet_module
    from vcp_migrate.cli import main

    paths = _tenants(project, 3, rows=1)
    summarize = fleet_module.summarize

    def after_a_ctrl_c(*args: object) -> object:
        os.kill(os.getpid(), signal.SIGINT)  # every database done, the summary and report not yet
        return summarize(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(fleet_module, "summarize", after_a_ctrl_c)
    arguments = ["fleet", "migrate", *map(str, paths), "--dir", str(project.dir), "--jobs", "1", "--report", "run.json"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    report = json.loads((project.root / "run.json").read_text())
    assert [r["state"] for r in report["results"]] == ["migrated"] * 3
    assert all(_consistent(path) == 2 for path in paths)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_with_one_job_a_process_a_migration_forked_does_not_make_one_ctrl_c_two(project: Project) -> None:
    """The terminal's Ctrl-C reaches a helper the migration forked as well; the helper's copy
    must not count as the second Ctrl-C in the fleet's process: the database in hand finishes."""
    paths = _acting_tenants(project, 3, 0, {0: "forked"})
    process = _started(project, "--jobs", "1")
    wait_for_file = project.root / "forked"
    for _ in range(3000):
        if wait_for_file.exists():
            break
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    out, err = _finished(process)
    assert process.returncode == 130 and "the databases in flight finished" in err, err
    states = [json.loads(line)["state"] for line in out.splitlines()]
    assert states == ["migrated", "not-started", "not-started"], out
    assert [_consistent(path) for path in paths] == [2, 1, 1]


def test_sigkill_of_the_fleet_ends_a_worker_whose_migration_hangs_and_a_rerun_finishes(project: Project) -> None:
    """The fleet's process killed (as the OOM killer would) while a worker's migration hangs: the
    worker gives it the grace and ends, so no orphan keeps the database's lock; the migration
    is rolled back, and a rerun, once the cause is gone, finishes every database."""
    paths = _acting_tenants(project, 4, 0.05, {0: "hang"})
    process = _started(project, "--jobs", "2", "--keep-going")
    journal = paths[0].with_name(paths[0].name + "-journal")
    for _ in range(2000):  # until the one that hangs is in hand: its transaction has a journal
        if journal.exists():
            break
        time.sleep(0.01)
    workers = _workers(process.pid)
    killed = time.monotonic()
    process.kill()
    _finished(process, 30)  # its output ends when the workers, which share it, end
    while any(map(_alive, workers)) and time.monotonic() < killed + 30:
        time.sleep(0.05)
    assert len(workers) == 2 and not any(map(_alive, workers))
    assert worker_module.ORPHAN_GRACE_SECONDS - 1 < time.monotonic() - killed < worker_module.ORPHAN_GRACE_SECONDS + 5
    assert _consistent(paths[0]) == 1
    with closing(sqlite3.connect(paths[0])) as connection:
        connection.execute("DROP TABLE ctl")
        connection.commit()
    again = _fleet(project, "migrate", "tenants/*.db", "--no-dump", "--lock-timeout", "5")
    assert again.returncode == 0, again.stderr
    assert all(_consistent(path) == 2 for path in paths)
    assert [p.name for p in paths[0].parent.iterdir() if not p.name.endswith(".db")] == []


def test_workers_started_by_the_console_script_load_no_command_line(project: Project) -> None:
    """A spawned worker imports its parent's main module first: the console script, which imports
    the command line only when it runs, so a worker loads none of it (its migrations see no click)."""
    project.write(
        "001_k.py",
        "import sys\n\ndef up(connection):\n    connection.execute('CREATE TABLE k (x)')\n"
        "    connection.execute('INSERT INTO k VALUES (?)', (repr(sorted(m for m in sys.modules if m.startswith(("
        "'click', 'rich', 'vcp_migrate.cli')))),))\n",
    )
    (project.root / "tenants").mkdir()
    for name in ("a.db", "b.db", "c.db"):
        with closing(sqlite3.connect(project.root / "tenants" / name)) as connection:
            connection.execute("VACUUM")  # a database with nothing in it yet (an empty file is none)
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "2", "--no-dump")
    assert result.returncode == 0, result.stderr
    for name in ("a.db", "b.db", "c.db"):
        with closing(sqlite3.connect(project.root / "tenants" / name)) as connection:
            assert connection.execute("SELECT x FROM k").fetchall() == [("[]",)]


def test_a_worker_killed_before_its_first_database_fails_none(project: Project) -> None:
    paths = _acting_tenants(project, 8, 0.05, {})
    process = _started(project, "--jobs", "2")
    for _ in range(500):  # as soon as a worker process exists: it is starting, no database in hand
        workers = _workers(process.pid)
        if workers:
            break
        time.sleep(0.005)
    os.kill(workers[0], signal.SIGKILL)
    out, err = _finished(process)
    assert process.returncode == 0, err
    assert [json.loads(line)["state"] for line in out.splitlines()] == ["migrated"] * 8
    assert all(_consistent(path) == 2 for path in paths)


def test_ctrl_c_to_the_whole_group_while_workers_start_kills_none(project: Project) -> None:
    paths = _acting_tenants(project, 8, 0.05, {})
    process = _started(project, "--jobs", "2")
    for _ in range(500):
        if len(_workers(process.pid)) == 2:
            break
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it: to the fleet and its workers
    out, err = _finished(process)
    assert process.returncode == 130 and "ended abruptly" not in out and "Traceback" not in err, err
    states = {Path(line["path"]).name: line["state"] for line in map(json.loads, out.splitlines())}
    assert set(states.values()) <= {"migrated", "not-started"}, states
    for path in paths:
        assert _consistent(path) == (2 if states[path.name] == "migrated" else 1)


def test_a_second_ctrl_c_while_results_wait_in_the_pipes_loses_none(project: Project) -> None:
    """The fleet blocked writing its lines (a reader that stalls, as ``| less`` does) while the
    workers' results pile up; Ctrl-C twice: every result that came back is reported as it is on
    disk, and a database reported not started is untouched."""
    paths = _acting_tenants(project, 300, 0.002, {})
    before = {path.name: _digest(path) for path in paths}
    process = _started(project, "--jobs", "2", "--keep-going")
    time.sleep(3)  # its standard output is not read meanwhile: the fleet waits to write
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    _, err = _finished(process)
    assert process.returncode == 130, err
    results = {Path(r["path"]).name: r for r in json.loads((project.root / "run.json").read_text())["results"]}
    assert len(results) == 300
    for path in paths:
        state = results[path.name]["state"]
        if state == "not-started":
            assert _digest(path) == before[path.name], path.name
        elif state == "migrated":
            assert _consistent(path) == 2, path.name
        else:  # stopped while it ran: rolled back as it is opened
            assert (state, results[path.name]["kind"]) == ("failed", "interrupted"), path.name
            assert _consistent(path) in (1, 2)


def test_with_one_job_a_migration_raising_keyboard_interrupt_fails_its_database_only(project: Project) -> None:
    paths = _acting_tenants(project, 6, 0, {2: "interrupt"})
    out, err = _finished(_started(project, "--jobs", "1", "--keep-going"))
    states = [json.loads(line)["state"] for line in out.splitlines()]
    assert states == ["migrated", "migrated", "failed", "migrated", "migrated", "migrated"], err
    assert [_consistent(path) for path in paths] == [2, 2, 1, 2, 2, 2]


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and its digest: what a refused run must leave as it was."""
    return {str(path.relative_to(folder)): _digest(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(
    "named",
    [
        "a database of the fleet",
        "a database of the fleet not there yet",
        "a migration file",
        "the schema file, which the run writes",
        "a run lock",
        "a link to a report",
        "JSON that is not a report",
        "no name",
        "a database's journal, not there",
        "a database's write-ahead log, not there",
        "the journal of a database named through a link",
    ],
)
def test_a_report_that_would_replace_what_is_not_a_report_is_refused_first(project: Project, named: str) -> None:
    """--report may name a new file or an earlier report (a resumed run's); anything else would be
    lost when the report replaced it: refused before any database is touched."""
    _tenants(project, 3)
    earlier = _fleet(project, "status", "tenants/*.db", "--report", "earlier.json")
    assert earlier.returncode == 0, earlier.stderr
    report = {
        "a database of the fleet": "./tenants/../tenants/tenant0001.db",
        "a database of the fleet not there yet": "tenants/new.db",
        "a migration file": str(project.dir / "002_notional.sql"),
        "the schema file, which the run writes": str(project.dir / "schema.sql"),
        "a run lock": "tenants/.vcp-lock-1-2",
        "a link to a report": "link.json",
        "JSON that is not a report": "deploy.json",
        "no name": "",
        # SQLite's next open of the database takes a file there for its journal and deletes it.
        "a database's journal, not there": "tenants/tenant0001.db-journal",
        "a database's write-ahead log, not there": "./tenants/tenant0002.db-wal",
        "the journal of a database named through a link": "tenants/tenant0000.db-journal",
    }[named]
    (project.root / "link.json").symlink_to("earlier.json")
    (project.root / "linked.db").symlink_to("tenants/tenant0000.db")
    (project.root / "deploy.json").write_text('{"command": "deploy --prod", "results": [], "owner": "ops"}')
    before = _files(project.root)
    targets = ["linked.db", "tenants/tenant0001.db", "tenants/tenant0002.db"] if "link" in named else ["tenants/*.db"]
    result = _fleet(project, "migrate", *targets, "tenants/new.db", "--keep-going", "--report", report)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Invalid value for --report: {report!r} cannot be written: it" in result.stderr
    assert _files(project.root) == before and (project.root / "link.json").is_symlink()
    resumed = _fleet(project, "migrate", "tenants/*.db", "--report", "earlier.json")  # an earlier report: replaced
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((project.root / "earlier.json").read_text())["command"] == "migrate"


def test_backups_are_never_targets_of_a_pattern_nor_named(project: Project) -> None:
    """``tenants/**/*.db`` reaches each database's backups folder, and --backup-dir beside the
    databases puts backups among them: the fleet leaves them out, and refuses one named."""
    paths = _tenants(project, 2)
    first = _fleet(project, "migrate", "tenants/*.db", "--backup", "--no-dump")
    assert first.returncode == 0, first.stderr
    beside = _fleet(project, "rollback", "tenants/*.db", "--backup-dir", "tenants", "--no-dump")
    assert beside.returncode == 0, beside.stderr
    backups = [path for path in (project.root / "tenants").rglob("*.db") if path not in paths]
    assert len(backups) == 4
    kept = {path: _digest(path) for path in backups}
    again = _fleet(project, "migrate", "tenants/**/*.db", "--backup", "--json", "--no-dump")
    assert again.returncode == 0, again.stderr
    assert sorted(json.loads(line)["path"] for line in again.stdout.splitlines()) == [
        f"tenants/{path.name}" for path in paths
    ]
    # Nor through a link, nor a backups folder a pattern such as tenants/* reaches; a database in a
    # folder merely named *.backups is one.
    (project.root / "tenants" / "zz.db").symlink_to(backups[0])
    folders = _fleet(project, "status", "tenants/*", "--json")
    assert sorted(json.loads(line)["path"] for line in folders.stdout.splitlines()) == [
        f"tenants/{path.name}" for path in paths
    ]
    (project.root / "old.backups").mkdir()
    shutil.copyfile(paths[0], project.root / "old.backups" / "kept.db")
    assert _fleet(project, "status", "old.backups/*.db").returncode == 0
    named = _fleet(project, "migrate", str(backups[0]), "--json", "--no-dump")
    assert named.returncode == 1
    assert "is a backup (named as vcp-migrate names them" in json.loads(named.stdout)["error"]
    assert all(_digest(path) == digest for path, digest in kept.items())


def test_an_empty_file_is_no_database_a_fleet_would_create(project: Project) -> None:
    """A placeholder, or a copy still being written: SQLite would make it a new database."""
    _tenants(project, 1)
    (project.root / "tenants" / "placeholder.db").touch()
    result = _fleet(project, "migrate", "tenants/*.db", "--keep-going", "--json", "--no-dump")
    assert result.returncode == 1
    lines = {json.loads(line)["path"]: json.loads(line) for line in result.stdout.splitlines()}
    assert lines["tenants/tenant0000.db"]["state"] == "migrated"
    assert lines["tenants/placeholder.db"]["error"].startswith(
        "tenants/placeholder.db: is empty (0 bytes): not a database yet, and a fleet never creates one"
    )
    assert (project.root / "tenants" / "placeholder.db").stat().st_size == 0


def test_standard_output_closed_early_the_run_goes_on_to_its_end_and_the_report_has_it(project: Project) -> None:
    """Its reader gone (``| head -1``): the lines are dropped, every database is run, the report is
    written, and one line says so (exit 1); no traceback."""
    paths = _tenants(project, 30)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--json"]
    process = subprocess.Popen(
        [*command, "--jobs", "2", "--report", "run.json", "--no-dump"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # before its first line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    assert err.strip().splitlines()[-1] == (
        "Error: standard output was closed before all was printed; the run went on to its end:"
        " 30 migrated (every result is in run.json)"
    )
    assert "Traceback" not in err and "Exception ignored" not in err
    results = json.loads((project.root / "run.json").read_text())["results"]
    assert [result["state"] for result in results] == ["migrated"] * 30
    assert all(_consistent(path) == 2 for path in paths)


def test_a_report_that_cannot_be_written_at_the_end_comes_after_the_summary(project: Project) -> None:
    """Its folder removed while the run went on: the summary is printed, then one line says the
    report could not be written (exit 1); the databases are as the summary says."""
    paths = _tenants(project, 2)
    (project.root / "reports").mkdir()
    project.write("003_gone.py", "import shutil\n\ndef up(connection):\n    shutil.rmtree('reports', True)\n")
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--report", "reports/run.json", "--no-dump")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "migrate: 2 database(s) in" in result.stdout and "2 migrated" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        "Error: reports/run.json: the report could not be written: its folder does not exist or cannot be written:"
        " name a file in a folder that exists (the databases are as the run left them: 'vcp-migrate fleet status'"
        " shows them)"
    )
    assert [_version(path) for path in paths] == [3, 3]


def test_a_file_that_appears_at_the_report_path_during_the_run_is_not_replaced(project: Project) -> None:
    """Checked again just before it is written: what appeared there meanwhile (a copy of a
    database, say) stays; one line says the report was not written, after the summary."""
    paths = _tenants(project, 2)
    project.write("003_cp.py", "def up(connection):\n    open('run.json', 'w').write('not a report')\n")
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", "1", "--report", "run.json", "--no-dump")
    assert result.returncode == 1 and "2 migrated" in result.stdout
    assert result.stderr.splitlines()[-1].startswith(
        "Error: run.json: the report could not be written: it exists and is not a fleet run's report"
    )
    assert (project.root / "run.json").read_text() == "not a report"
    assert [_version(path) for path in paths] == [3, 3]


def test_only_failed_runs_a_database_listed_twice_once(project: Project) -> None:
    """A report listing one file under several names (repeated, through a link, as ./path)."""
    paths = _tenants(project, 2)
    (project.root / "tenants" / "link.db").symlink_to("tenant0000.db")
    listed = ["tenants/tenant0000.db", "tenants/tenant0000.db", "tenants/link.db", "./tenants/tenant0000.db"]
    results = [{"path": path, "state": "failed"} for path in listed]
    (project.root / "hand.json").write_text(json.dumps({"command": "migrate", "results": results}))
    result = _fleet(project, "migrate", "--only-failed", "hand.json", "--jobs", "2", "--json", "--no-dump")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == ["tenants/tenant0000.db"]
    assert "share the database id" not in result.stderr
    assert [_version(path) for path in paths] == [2, 1]


def test_a_report_whose_directory_holds_a_nul_is_not_a_report(project: Project) -> None:
    _tenants(project, 1)
    document = {
        "command": "migrate",
        "directory": "/x\0",
        "results": [{"path": "tenants/tenant0000.db", "state": "failed"}],
    }
    (project.root / "nul.json").write_text(json.dumps(document))
    result = _fleet(project, "migrate", "--only-failed", "nul.json")
    assert result.returncode == 2 and result.stderr.startswith("Error: nul.json: is not a report of a fleet run")
    assert _version(project.root / "tenants" / "tenant0000.db") == 1


@pytest.mark.parametrize("folder", ["a file", "a link", "no parent"])
def test_a_backup_folder_that_cannot_be_one_stops_the_fleet_before_it_starts(project: Project, folder: str) -> None:
    paths = _tenants(project, 2)
    (project.root / "file").write_text("x")
    (project.root / "real").mkdir()
    (project.root / "link").symlink_to("real")
    given = {"a file": "file", "a link": "link", "no parent": "new/deeper/backups"}[folder]
    before = _files(project.root)
    result = _fleet(project, "migrate", "tenants/*.db", "--backup-dir", given, "--keep-going")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {given}: --backup-dir ")
    assert _files(project.root) == before and not (project.root / "new").exists()
    assert [_version(path) for path in paths] == [1, 1]


@pytest.mark.parametrize("command", ["migrate", "rollback"])
def test_an_empty_backup_folder_is_a_usage_error_not_ignored(project: Project, command: str) -> None:
    """``--backup-dir ""`` was passed by, as if not given: the run went on with no backup at all."""
    paths = _tenants(project, 2)
    before = _files(project.root)
    result = _fleet(project, command, "tenants/*.db", "--backup-dir", "", "--keep-going")
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr == "Error: --backup-dir is empty (give a path)\n"
    assert _files(project.root) == before and [_version(path) for path in paths] == [1, 1]


def test_more_jobs_than_four_a_core_is_a_usage_error(project: Project) -> None:
    """Said before anything is loaded: a Python migration's module code has not run."""
    _tenants(project, 1)
    project.write("003_mark.py", "open('loaded', 'w').close()\n\ndef up(connection):\n    pass\n")
    result = _fleet(project, "migrate", "tenants/*.db", "--jobs", str(4 * (os.cpu_count() or 1) + 1))
    assert result.returncode == 2 and "is more worker processes than 4 a core" in result.stderr
    assert _version(project.root / "tenants" / "tenant0000.db") == 1 and not (project.root / "loaded").exists()


def test_targets_from_keeps_names_as_the_system_gives_them(project: Project) -> None:
    """Bytes that are not UTF-8, and spaces, belong to the name (a list read from a file or stdin)."""
    _tenants(project, 1)
    odd = os.fsdecode(b"tenants/caf\xe9 .db")
    shutil.copyfile(project.root / "tenants" / "tenant0000.db", os.fsencode(project.root) + b"/" + os.fsencode(odd))
    (project.root / "list.txt").write_bytes(os.fsencode(odd) + b"\r\n# a comment\n\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    for source in ("list.txt", "-"):
        result = subprocess.run(
            [str(console_script()), "fleet", "status", "--targets-from", source, "--json", "--dir", str(project.dir)],
            cwd=project.root, capture_output=True, timeout=300, env=env, input=(project.root / "list.txt").read_bytes(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (line,) = result.stdout.splitlines()
        # The byte 0xE9 is the text \udce9 in the JSON, as the plain line shows it (see JSON output).
        assert json.loads(line)["path"] == "tenants/caf\\udce9 .db" and json.loads(line)["state"] == "checked"


@pytest.mark.parametrize("terminal", [False, True], ids=["lines", "progress bar"])
def test_output_closed_fails_no_migration_that_prints_nor_the_progress_bar(project: Project, terminal: bool) -> None:
    """A migration's print() in a worker, or Rich's progress bar (FORCE_COLOR), writing to the
    closed pipe: every database is migrated all the same, and the line gives the counts."""
    paths = _tenants(project, 12)
    project.write("003_p.py", "def up(connection):\n    print('backfilling', flush=True)\n")
    command = [str(console_script()), "fleet", "migrate", "tenants/*.db", "--dir", str(project.dir), "--jobs", "2"]
    code, err = with_output_closed([*command, "--no-dump"], project.root, **({"FORCE_COLOR": "1"} if terminal else {}))
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        "Error: standard output was closed before all was printed; the run went on to its end: 12 migrated"
        " (pass --report FILE to keep the results)"
    )
    assert [_version(path) for path in paths] == [3] * 12


def test_fleet_status_shows_files_it_cannot_use_as_the_single_command_does(project: Project) -> None:
    """Two files of one version, a file badly named, a pending SQL file migrate would refuse:
    each database lists them (invalid), --exit-code says 4, and invalid files are not pending."""
    _tenants(project, 2)
    project.write("2_dup.sql", "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 1;\n")
    project.write("abc.sql", "-- migrate:up\nSELECT 1;\n")
    project.write("003_bad.sql", "-- migrate:up\nSELECT 1;\n-- migrate: down\nSELECT 1;\n")
    result = _fleet(project, "status", "tenants/*.db", "--exit-code", "--json")
    assert result.returncode == 4, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["state"], line["pending"], line["problems"]) for line in lines] == [("checked", 0, ["invalid"])] * 2
    migrate = _fleet(project, "migrate", "tenants/*.db")  # it refuses them before any database
    assert migrate.returncode == 1 and "abc.sql: name does not match" in migrate.stderr
    assert [_version(path) for path in (project.root / "tenants").glob("*.db")] == [1, 1]


@pytest.mark.parametrize("jobs", [1, 2])
def test_from_python_prints_are_not_redirected_and_a_redirect_stdout_reaches_them_only_with_jobs_1(
    project: Project, jobs: int
) -> None:
    """From Python nothing is redirected: with jobs=1 they went to standard output, with 2 to standard error.
    A redirection of sys.stdout reaches them only with jobs=1: workers print to file descriptor 1."""
    paths = _tenants(project, 2, rows=1)
    project.write("003_noisy.py", "def up(c):\n    print('hello from up')\ndef down(c):\n    pass\n")
    fleet = f"Fleet({[str(p) for p in paths]!r}, {str(project.dir)!r}, dump_schema=False)"
    script = (
        "import contextlib, io, sys\nfrom vcp_migrate.fleet import Fleet\n"
        "if __name__ == '__main__':\n"
        f"    run = {fleet}.migrate(jobs={jobs})\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as caught:\n"
        f"        down = {fleet}.rollback(to=2, jobs={jobs})\n"
        f"        again = {fleet}.migrate(jobs={jobs})\n"
        "    print('caught', caught.getvalue().count('hello from up'))\n"
        "    sys.exit(0 if run.summary.ok and down.summary.ok and again.summary.ok else 1)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("caught 2" if jobs == 1 else "caught 0")
    assert result.stdout.count("hello from up") == (2 if jobs == 1 else 4) and "hello" not in result.stderr
    assert all(_version(p) == 3 for p in paths)


def test_a_thread_a_migration_leaves_running_does_not_hold_the_fleet(project: Project) -> None:
    """Its database fails for it; the worker process waited for the thread at its exit, and the fleet for the worker."""
    paths = _tenants(project, 2, rows=1)
    project.write(
        "003_threaded.py",
        "import threading, time\n"
        "def up(c):\n    if c.execute('PRAGMA database_list').fetchone()[2].endswith('0001.db'):\n"
        "        threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "def down(c):\n    pass\n",
    )
    started = time.monotonic()
    result = _fleet(project, "migrate", *map(str, paths), "--jobs", "2", "--keep-going", "--json")
    assert time.monotonic() - started < 30 and result.returncode == 1, result.stderr
    states = {json.loads(line)["path"]: json.loads(line)["state"] for line in result.stdout.splitlines()}
    assert states == {str(paths[0]): "migrated", str(paths[1]): "failed"}
    assert [_version(p) for p in paths] == [3, 2]


def test_odd_reports_and_lists_are_usage_errors_and_sqlite_s_own_files_no_targets(project: Project) -> None:
    paths = _tenants(project, 2, rows=1)
    digests = [_digest(p) for p in paths]
    deep = project.root / "deep.json"
    deep.write_text('{"command": "migrate", "summary": {}, "results": ' + "[" * 100_000 + "]" * 100_000 + "}")
    for args in (("--report", str(deep), str(paths[0])), ("--only-failed", str(deep))):
        result = _fleet(project, "migrate", *args)
        assert result.returncode == 2 and "unexpected" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    closed = _fleet(project, "status", "--targets-from", "-", stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 2 and "standard input: cannot be read: it is closed" in closed.stderr, closed.stderr
    assert [_digest(p) for p in paths] == digests
    for beside in ("-wal", "-shm", "-journal"):  # as an application in WAL mode, or a killed run, leaves them
        Path(f"{paths[0]}{beside}").write_bytes(b"")
    (project.root / "tenants" / "locked.db").write_bytes(b"not a database")
    result = _fleet(project, "migrate", str(project.root / "tenants" / "*"), "--keep-going", "--json")
    found = {
        Path(line["path"]).name: (line["state"], line["kind"]) for line in map(json.loads, result.stdout.splitlines())
    }
    assert found == {
        "locked.db": ("failed", "not-a-database"),  # "locked" in a name is no lock
        "tenant0000.db": ("migrated", None),
        "tenant0001.db": ("migrated", None),
    }


def test_fleet_rollback_undoes_the_migration_applied_last_on_each_database(project: Project) -> None:
    applied_1_3_then_2(project)
    folder = project.root / "tenants"
    folder.mkdir()
    paths = [folder / f"tenant{number}.db" for number in range(2)]
    for path in paths:
        shutil.copyfile(project.db, path)
    run = Fleet(paths[:1], project.dir).rollback()  # the API on one, the command line on the other
    assert {r.state for r in run.results} == {"rolled-back"}
    result = _fleet(project, "rollback", str(paths[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in paths:
        with closing(sqlite3.connect(path)) as connection:
            history = [row[0] for row in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")]
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE name LIKE 't_'")}
            assert (history, tables) == ([1, 3], {"t1", "t3"}), path
            assert connection.execute("PRAGMA user_version").fetchone() == (3,)


def test_fleet_status_json_shows_a_path_that_is_not_utf8_as_its_line_does(project: Project) -> None:
    """Each JSON line is valid UTF-8 with no lone surrogate: the byte 0xE9 of a database's name is
    the text \\udce9, as the plain line shows it (json.dumps wrote an escaped lone surrogate)."""
    paths = _tenants(project, 1)
    latin = os.fsdecode(b"tenants/caf\xe9.db")
    shutil.copyfile(paths[0], latin)
    before = _files(project.root)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    command = [str(console_script()), "fleet", "status", latin, str(paths[0]), "--dir", str(project.dir)]
    lines = subprocess.run(command, cwd=project.root, capture_output=True, env=env, timeout=300)
    assert b"tenants/caf\\udce9.db  1 -> 1" in lines.stdout, lines.stderr
    done = subprocess.run([*command, "--json"], cwd=project.root, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.decode("utf-8", errors="strict").splitlines()]
    for row in rows:
        json.dumps(row, ensure_ascii=False).encode("utf-8", errors="strict")  # no lone surrogate in it
    assert sorted((row["path"], row["state"]) for row in rows) == sorted(
        [("tenants/caf\\udce9.db", "checked"), (str(paths[0]), "checked")]
    )
    assert _files(project.root) == before


def test_fleet_status_exit_code_agrees_with_status_on_a_database_with_tables_and_no_history(
    project: Project,
) -> None:
    """4 when migrate refuses it, as 'status --exit-code' says; 3 (only pending) once allow_existing
    is set, where the fleet said 4 still."""
    paths = _tenants(project, 1)
    app = project.root / "app.db"
    with closing(sqlite3.connect(app)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        connection.commit()
    before = _files(project.root)
    for table, expected in (("", 4), ("[tool.vcp-migrate]\nallow_existing = true\n", 3)):
        (project.root / "pyproject.toml").write_text(table)
        single = subprocess.run(
            [str(console_script()), "status", "--exit-code", "--db", str(app), "--dir", str(project.dir)],
            cwd=project.root, capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k not in ENV_VARS},
        )  # fmt: skip
        assert single.returncode == expected, single.stderr
        for args in ((str(app),), (str(app), str(paths[0])), (str(app), "--json")):
            fleet = _fleet(project, "status", *args, "--exit-code")
            assert fleet.returncode == expected, (args, fleet.stdout, fleet.stderr)
            assert "no-history" in fleet.stdout
        before["pyproject.toml"] = _digest(project.root / "pyproject.toml")
        assert _files(project.root) == before
    assert _fleet(project, "status", str(paths[0]), "--exit-code").returncode == 3  # only behind: as before


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_each_database_s_warnings_are_shown_under_its_line_in_its_json_and_in_the_report(
    project: Project, jobs: str
) -> None:
    """The single command's warnings on a database (a hard link, a migration changed since it was
    applied) were kept by the fleet and never shown; from worker processes they cross a pipe."""
    paths = _tenants(project, 2, rows=1)
    (project.root / "elsewhere").mkdir()
    os.link(paths[1], project.root / "elsewhere" / "other-name.db")
    text = _fleet(project, "migrate", "tenants/*.db", "--jobs", jobs, "--no-dump", "--report", "run.json")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    linked = lines.index(next(line for line in lines if "tenants/tenant0001.db" in line and "1 -> 2" in line))
    assert lines[linked + 1].startswith("  warning: tenants/tenant0001.db: the database file has 2 hard links")
    assert sum("warning:" in line for line in lines) == 1 and "2 migrated; 1 with warnings" in text.stdout
    report = json.loads((project.root / "run.json").read_text(encoding="utf-8"))
    warnings = {Path(result["path"]).name: result["warnings"] for result in report["results"]}
    assert warnings["tenant0000.db"] == [] and "has 2 hard links" in warnings["tenant0001.db"][0]
    assert report["summary"]["with_warnings"] == 1 and [_version(path) for path in paths] == [2, 2]
    changed = project.dir / "002_notional.sql"
    changed.write_text(changed.read_text(encoding="utf-8") + "-- edited after it was applied\n", encoding="utf-8")
    down = _fleet(project, "rollback", "tenants/*.db", "--jobs", jobs, "--no-dump", "--json")
    assert down.returncode == 0, down.stderr
    found = {Path(line["path"]).name: line["warnings"] for line in map(json.loads, down.stdout.splitlines())}
    said = f"{changed}: changed since it was applied; rolling back with its current down"
    assert found["tenant0000.db"] == [said] and found["tenant0001.db"][-1] == said
    assert "2 with warnings" in down.stderr and [_version(path) for path in paths] == [1, 1]


def test_fleet_rollback_of_a_database_with_nothing_applied_fails_as_the_single_command_does(project: Project) -> None:
    """It was "nothing-to-undo", exit 0, with no version before, where 'rollback' exits 1."""
    project.write("001_trades.sql", TRADES)
    emptied, bare = project.root / "emptied.db", project.root / "bare.db"
    MigrationManager(emptied, project.dir, dump_schema=False).migrate()
    MigrationManager(emptied, project.dir, dump_schema=False).rollback(to=0)
    with closing(sqlite3.connect(bare)) as connection:
        connection.execute("CREATE TABLE app (id INTEGER)")  # tables, no history
    before = {path: _digest(path) for path in (emptied, bare)}
    for path in (emptied, bare):
        single = subprocess.run(
            [str(console_script()), "rollback", "--db", str(path), "--dir", str(project.dir), "--no-dump"],
            capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if k not in ENV_VARS},
        )  # fmt: skip
        assert single.returncode == 1 and "nothing to roll back: no migration is applied" in single.stderr
    down = _cli(project, "rollback", str(emptied), str(bare), "--keep-going", "--json", "--no-dump")
    assert down.exit_code == 1, down.output
    for line in map(json.loads, down.stdout.splitlines()):
        assert (line["state"], line["kind"], line["version_before"], line["version_after"]) == ("failed", "plan", 0, 0)
        assert line["error"] == f"{line['path']}: nothing to roll back: no migration is applied (nothing was changed)"
    to_zero = _cli(project, "rollback", str(emptied), "--to", "0", "--json", "--no-dump")
    assert to_zero.exit_code == 0 and json.loads(to_zero.stdout)["state"] == "nothing-to-undo"
    assert {path: _digest(path) for path in (emptied, bare)} == before


def test_a_report_that_is_or_is_inside_a_backups_folder_is_refused_before_the_run(project: Project) -> None:
    """--report and --backup-dir naming one new path: every database was migrated, then the
    report could not be written (exit 1, no report)."""
    paths = _tenants(project, 2, rows=1)
    before = {path: _digest(path) for path in paths}
    (project.root / "kept").mkdir()
    for args in (
        ("--backup-dir", "backups", "--report", "backups"),
        ("--backup-dir", "backups/", "--report", "./backups"),
        ("--backup-dir", "kept", "--report", "kept/run.json"),
        ("--backup", "--report", "tenants/tenant0001.db.backups"),
    ):
        result = _fleet(project, "migrate", "tenants/*.db", "--no-dump", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert f"Invalid value for --report: {args[-1]!r} cannot be written: it is vcp-migrate's own" in result.stderr
        assert "the backups folder" in result.stderr and result.stdout == ""
        assert {path: _digest(path) for path in paths} == before
        assert not (project.root / "backups").exists() and not list((project.root / "kept").iterdir())
        assert sorted(p.name for p in (project.root / "tenants").iterdir()) == ["tenant0000.db", "tenant0001.db"]


@pytest.mark.parametrize("command", ["migrate", "rollback", "status", "validate"])
def test_a_lock_timeout_that_is_no_number_is_named_as_the_option(project: Project, command: str) -> None:
    """It was named as the Python parameter (lock_timeout), where the single command names --lock-timeout."""
    paths = _tenants(project, 1, rows=1)
    before = _digest(paths[0])
    result = _cli(project, command, str(paths[0]), "--lock-timeout", "nan")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Invalid value for '--lock-timeout': nan is not a number of seconds; give one such as 30"
    )
    assert _digest(paths[0]) == before and _version(paths[0]) == 1


def test_a_byte_order_mark_at_the_start_of_targets_from_is_no_part_of_the_first_line(project: Project) -> None:
    """'\\ufeff# tenants' was a path, reported missing, and failed the run."""
    paths = _tenants(project, 2, rows=1)
    (project.root / "list.txt").write_bytes(b"\xef\xbb\xbf# tenants\r\ntenants/tenant0000.db\r\n")
    result = _cli(project, "migrate", "--targets-from", "list.txt", "--json", "--no-dump")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["path"] for line in result.stdout.splitlines()] == ["tenants/tenant0000.db"]
    assert [_version(path) for path in paths] == [2, 1]
    (project.root / "list.txt").write_bytes(b"\xef\xbb\xbftenants/tenant0001.db\n")  # the mark before a path too
    again = _cli(project, "migrate", "--targets-from", "list.txt", "--json", "--no-dump")
    assert again.exit_code == 0 and json.loads(again.stdout)["path"] == "tenants/tenant0001.db"
    assert [_version(path) for path in paths] == [2, 2]


def test_an_empty_targets_from_or_only_failed_is_said_to_be_empty(project: Project) -> None:
    """It was "cannot be read: Is a directory: '.'": the empty path read as the current folder."""
    paths = _tenants(project, 1, rows=1)
    for option, wanted in (
        ("--targets-from", "a file with one path a line ('-': standard input)"),
        ("--only-failed", "the report of a fleet run"),
    ):
        result = _cli(project, "migrate", str(paths[0]), option, "")
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: Invalid value for {option}: is empty: name {wanted} (see ")
        assert _version(paths[0]) == 1
