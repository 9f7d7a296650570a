"""Run the benchmark and print medians and ratios against vcp-migrate.

    python -m tests.bench            the full workloads (the README's table)
    python -m tests.bench --quick    small sizes, one repetition: CI runs it so the code keeps working
    python -m tests.bench --only 7   only the workloads named (1-3, 4-5, 6, 7, 8, 9, 10); repeatable

Run with the interpreter of a virtualenv that has vcp-migrate and the peers installed
(``make bench`` makes one). Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from .python_steps import workload_9
from .server import server_ratio, workload_8
from .startup import deploy_targets, workload_10
from .tools import Migration, Results, Tool, Vcp, VcpJson, every_tool, launched, run, tool_env


def table_migrations(count: int) -> list[Migration]:
    return [
        Migration(
            i,
            f"t{i}",
            f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, x TEXT);\nCREATE INDEX t{i}_x ON t{i}(x);",
            f"DROP TABLE t{i};",
        )
        for i in range(1, count + 1)
    ]


def trades_migrations(rows: int) -> list[Migration]:
    return [
        Migration(
            1,
            "trades",
            "CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity INTEGER NOT NULL,"
            " price REAL NOT NULL, ts TEXT NOT NULL);\n"
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})"
            " INSERT INTO trades SELECT i, 'SYM' || (i % 500), 1 + i % 1000, (i % 10000) / 100.0,"
            " '2026-01-01' FROM n;\nCREATE INDEX trades_symbol ON trades(symbol);",
            "DROP TABLE trades;",
        ),
        Migration(
            2,
            "notional",
            "ALTER TABLE trades ADD COLUMN notional REAL;\nUPDATE trades SET notional = quantity * price;",
            "ALTER TABLE trades DROP COLUMN notional;",
        ),
        Migration(
            3,
            "quantity_real",
            "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity REAL NOT NULL,"
            " price REAL NOT NULL, ts TEXT NOT NULL, notional REAL);\n"
            "INSERT INTO trades_new SELECT id, symbol, quantity, price, ts, notional FROM trades;\n"
            "DROP TABLE trades;\nALTER TABLE trades_new RENAME TO trades;\n"
            "CREATE INDEX trades_symbol ON trades(symbol);",
            "SELECT 1;",
        ),
    ]


def rotate(tools: list[Tool], repetition: int) -> list[Tool]:
    shift = repetition % len(tools)
    return tools[shift:] + tools[:shift]


def workloads_1_to_3(tools: list[Tool], count: int, reps: int, work: Path, results: Results) -> None:
    migrations = table_migrations(count)
    for rep in range(reps):
        for tool in rotate(tools, rep):
            root = work / f"w1-{rep}-{tool.name.split()[0]}"
            db = root / "bench.db"
            root.mkdir(parents=True)
            tool.write(root, migrations, db)
            results[f"1. apply {count} migrations"][tool.name].append(run(tool.migrate(root, db), root))
            results[f"2. status, {count} applied"][tool.name].append(run(tool.status(root, db), root))
            if isinstance(tool, Vcp):
                results[f"2. status, {count} applied"][VcpJson.name].append(
                    run(VcpJson(tool.bin).status(root, db), root)
                )
            rollback = tool.rollback(root, db, count // 10, migrations)
            results[f"3. roll back {count // 10}"][tool.name].append(run(rollback, root))
            shutil.rmtree(root)
        for label, code in IMPORTS.items():
            results[f"2. status, {count} applied"][label].append(run([[sys.executable, "-c", code]], work))


IMPORTS = {
    "import sqlite3, click, rich (baseline)": "import sqlite3, click, rich.console, rich.table",
    "import sqlite3, click (baseline)": "import sqlite3, click",
}


def workload_4(tools: list[Tool], rows: int, reps: int, work: Path, results: Results, label: str) -> dict[str, Path]:
    """Add a column and backfill it, then rebuild the table with a column's type changed."""
    migrations = trades_migrations(rows)
    templates = {}
    for tool in tools:
        root = work / f"w4-template-{tool.name.split()[0]}-{rows}"
        root.mkdir(parents=True)
        db = root / "bench.db"
        tool.write(root, migrations[:1], db)
        run(tool.migrate(root, db), root)
        templates[tool.name] = root
    for rep in range(reps):
        for tool in rotate(tools, rep):
            template = templates[tool.name]
            root = work / f"w4-{rep}-{tool.name.split()[0]}"
            shutil.copytree(template, root)
            db = root / "bench.db"
            _retarget(root, template, db)
            tool.write(root, migrations, db)
            results[label][tool.name].append(run(tool.migrate(root, db), root))
            shutil.rmtree(root)
    return templates


def _retarget(root: Path, template: Path, db: Path) -> None:
    """A copied alembic.ini still names the template's database."""
    ini = root / "alembic.ini"
    if ini.exists():
        ini.write_text(ini.read_text().replace(str(template / "bench.db"), str(db)))


def workload_5(vcp: Vcp, template: Path, rows: int, size_mb: int, reps: int, work: Path, results: Results) -> None:
    """The backup before a migration on a large database, against cp; the dry run of workload 4
    against its real run."""
    big = work / "big"
    big.mkdir()
    payloads = size_mb * 1000  # rows of 1 kB
    connection = sqlite3.connect(big / "bench.db")
    connection.executescript(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
        "CREATE TABLE payload (id INTEGER PRIMARY KEY, data BLOB);"
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {payloads})"
        " INSERT INTO payload SELECT i, randomblob(1000) FROM n;"
    )
    connection.close()
    vcp.write(big, [Migration(1, "marker", "CREATE TABLE marker (x);", "DROP TABLE marker;")], big / "bench.db")
    size = (big / "bench.db").stat().st_size / 1e6
    label = f"5a. backup of a {size:.0f} MB database"
    for _ in range(reps):
        seconds, peak = _backup_seconds(vcp, big)
        results[label][f"{vcp.name} backup"].append((seconds, peak))
        started = time.perf_counter()
        subprocess.run(["cp", str(big / "bench.db"), str(big / "copy.db")], check=True)
        results[label]["cp"].append((time.perf_counter() - started, 0.0))
        subprocess.run(["sync", str(big / "copy.db")], check=True)
        results[label]["cp + sync"].append((time.perf_counter() - started, 0.0))
        (big / "copy.db").unlink()
        # validate: the integrity check, and the pending migration linted on a scratch copy.
        validate = [str(vcp.bin / "vcp-migrate"), "validate", "--db", "bench.db", "--dir", "migrations"]
        results[f"5c. validate of the {size:.0f} MB database"][f"{vcp.name} validate"].append(_any_exit(validate, big))
    shutil.rmtree(big)
    migrations = trades_migrations(rows)
    for rep in range(reps):
        for mode in ("real", "dry run"):
            root = work / f"w5-{rep}-{mode.replace(' ', '-')}"
            shutil.copytree(template, root)
            vcp.write(root, migrations, root / "bench.db")
            command = vcp.migrate(root, root / "bench.db")[0]
            if mode == "dry run":
                command = [*command[:6], "--dry-run"]
            results["5b. workload 4: dry run against real run"][f"{vcp.name} {mode}"].append(run([command], root))
            shutil.rmtree(root)


def _any_exit(command: list[str], root: Path) -> tuple[float, float]:
    """(wall seconds, peak MB) of a command that may exit 1 (validate finds the table made without
    migrations as drift); only a crash fails the benchmark."""
    with tempfile.TemporaryFile() as errors:
        seconds, peak, code, _ = launched(command, root, stdout=subprocess.DEVNULL, stderr=errors)
        errors.seek(0)
        assert code in (0, 1), errors.read().decode()[-800:]
    return seconds, peak


def _backup_seconds(vcp: Vcp, root: Path) -> tuple[float, float]:
    """Migrate with the backup on; the backup's own time, as vcp-migrate reports it."""
    # The payload table was made without vcp-migrate: migrate refuses such a database unless told.
    command = [str(vcp.bin / "vcp-migrate"), "migrate", "--db", "bench.db", "--dir", "migrations", "--no-dump"]
    command.append("--allow-existing")
    with tempfile.TemporaryFile() as output:
        _, peak, code, _ = launched(command, root, stdout=output, stderr=subprocess.STDOUT)
        output.seek(0)
        text = output.read().decode()
    assert code == 0, text
    seconds = float(re.search(r" in ([0-9.]+) s,", text)[1])  # type: ignore[index]
    subprocess.run(
        [
            str(vcp.bin / "vcp-migrate"),
            "rollback",
            "--db",
            "bench.db",
            "--dir",
            "migrations",
            "--no-backup",
            "--no-dump",
        ],
        cwd=root,
        check=True,
        capture_output=True,
    )
    for backup in (root / "bench.db.backups").glob("*"):
        backup.unlink()
    return seconds, peak


def workload_6(vcp: Vcp, semicolons: int, reps: int, work: Path, results: Results) -> None:
    """One INSERT whose literal holds ``semicolons`` semicolons among letters: splitting it must
    take time in proportion to its size (checking growing prefixes took 67 s for 1 MB)."""
    value = (";" * 12 + "x" * 13) * (semicolons // 12)
    label = f"6. split a {len(value) / 1e6:.1f} MB statement with {semicolons:,} semicolons"
    up = f"CREATE TABLE big (v TEXT);\nINSERT INTO big VALUES ('{value}');"
    for rep in range(reps):
        root = work / f"w6-{rep}"
        root.mkdir(parents=True)
        vcp.write(root, [Migration(1, "big", up, "DROP TABLE big;")], root / "bench.db")
        results[label][vcp.name].append(run(vcp.migrate(root, root / "bench.db"), root))
        connection = sqlite3.connect(root / "bench.db")
        stored = connection.execute("SELECT v FROM big").fetchone()
        connection.close()
        if stored != (value,):
            raise SystemExit(f"{label}: the value stored is not the value written")
        shutil.rmtree(root)


FLEET = "vcp-migrate fleet --jobs 2"
FLEET_FLOOR = "floor (sqlite3), 2 processes"
FLEET_FLOOR_ALONE = "floor (sqlite3), 1 process"
CPU = "7. fleet: CPU time"
FLOOR_SCRIPT = Path(__file__).with_name("floor.py")
SHELL_LOOP = 'for db in "$@"; do "$0" migrate --db "$db" --dir migrations --no-backup --no-dump || exit 1; done'


def workload_7(vcp: Vcp, count: int, sample: int, reps: int, work: Path, results: Results) -> None:
    """Fleets: ``count`` databases at version 1 with 100 rows each, one pending migration (add a
    column and backfill it). Side by side, each on fresh copies: the fleet command with 2 workers,
    then its no-op rerun; a shell loop of the single command on ``sample`` databases, scaled to
    ``count``; the floor in 2 processes and in 1. The peak memory of the fleet's workers is taken
    on a tenth of the databases and on all of them."""
    migrations = trades_migrations(100)[:2]
    prepared = work / "w7-prepared"
    (prepared / "dbs").mkdir(parents=True)
    vcp.write(prepared, migrations[:1], prepared / "dbs")
    names = [f"tenant{i:05d}.db" for i in range(count)]
    empty = work / "w7-empty.db"
    with closing(sqlite3.connect(empty)) as connection:
        connection.execute("VACUUM")  # a database with nothing in it (a fleet refuses a 0-byte file)
    for name in names:
        shutil.copyfile(empty, prepared / "dbs" / name)
    # vcp-migrate takes each empty database to version 1 itself, so each has its own database id.
    run([[str(vcp.bin / "vcp-migrate"), "fleet", "migrate", "dbs/*.db", "--dir", "migrations", "--no-dump"]], prepared)
    _check_fleet(prepared, names, 1)
    vcp.write(prepared, migrations, prepared / "dbs")
    fleet = [str(vcp.bin / "vcp-migrate"), "fleet", "migrate", "dbs/*.db", "--dir", "migrations", "--no-dump"]
    fleet += ["--jobs", "2"]
    label = f"7. fleet: migrate {count:,} databases of 100 rows, add+backfill a column"
    noop = f"7. fleet: the no-op rerun, {count:,} databases up to date"
    memory = "7. fleet: peak memory (median s of the run beside it)"
    cpu = f"{CPU} (median CPU s, user and system, of all the processes)"
    shell = f"shell loop of migrate, {sample} x {count / sample:g}"
    for name in (FLEET, FLEET_FLOOR, FLEET_FLOOR_ALONE, shell):
        results[label][name] = []  # the fleet first: the report's ratios are against it
    for name in (FLEET, FLEET_FLOOR, FLEET_FLOOR_ALONE):
        results[cpu][name] = []
    for size in (count // 10, count):
        results[memory][f"each worker, {size:,} databases"] = []
        results[memory][f"main process, {size:,} databases"] = []
    kinds = ["fleet", "floor 2", "floor 1", "shell loop", "fleet on a tenth"]
    for rep in range(reps):
        for kind in kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]:
            root = work / f"w7-{rep}-{kind.replace(' ', '-')}"
            chosen = {"fleet on a tenth": names[: count // 10], "shell loop": names[:sample]}.get(kind, names)
            _copy_fleet(prepared, root, chosen)
            if kind.startswith("fleet"):
                seconds, peak, main_mb, workers_mb, used = _run_watched(fleet, root)
                _check_fleet(root, chosen, 2)
                if kind == "fleet":
                    results[label][FLEET].append((seconds, peak))
                    results[cpu][FLEET].append((used, peak))
                    results[noop][FLEET].append(run([fleet], root))
                    _check_fleet(root, chosen, 2)
                results[memory][f"each worker, {len(chosen):,} databases"].append((seconds, workers_mb))
                results[memory][f"main process, {len(chosen):,} databases"].append((seconds, main_mb))
            elif kind.startswith("floor"):
                (root / "targets.txt").write_text("".join(f"dbs/{name}\n" for name in chosen))
                jobs = kind.split()[1]
                command = [sys.executable, str(FLOOR_SCRIPT), "fleet", "targets.txt", "migrations", jobs]
                name = FLEET_FLOOR if jobs == "2" else FLEET_FLOOR_ALONE
                used_cpu: list[float] = []
                results[label][name].append(run([command], root, used_cpu))
                results[cpu][name].append((used_cpu[0], results[label][name][-1][1]))
                _check_fleet(root, chosen, 2)
            else:
                loop = ["sh", "-c", SHELL_LOOP, str(vcp.bin / "vcp-migrate"), *(f"dbs/{name}" for name in chosen)]
                seconds, peak = run([loop], root)
                results[label][shell].append((seconds * count / sample, peak))
                _check_fleet(root, chosen, 2)
            shutil.rmtree(root)
    shutil.rmtree(prepared)


def _copy_fleet(prepared: Path, root: Path, names: list[str]) -> None:
    """Fresh copies of the databases, written out before the clock starts."""
    shutil.copytree(prepared / "migrations", root / "migrations")
    (root / "dbs").mkdir()
    for name in names:
        shutil.copyfile(prepared / "dbs" / name, root / "dbs" / name)
    os.sync()


def _check_fleet(root: Path, names: list[str], version: int) -> None:
    """Every database at ``version``, with its history, user_version and (at 2) the backfill."""
    for name in names:
        connection = sqlite3.connect(root / "dbs" / name)
        found = (
            connection.execute("PRAGMA user_version").fetchone()[0],
            [row[0] for row in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")],
            connection.execute("SELECT count(*) FROM trades").fetchone()[0],
            version < 2 or connection.execute("SELECT count(*) FROM trades WHERE notional IS NULL").fetchone()[0],
        )
        connection.close()
        if found != (version, list(range(1, version + 1)), 100, version < 2 or 0):
            raise SystemExit(f"{root / 'dbs' / name}: expected version {version} with 100 rows, found {found}")


def _run_watched(command: list[str], cwd: Path) -> tuple[float, float, float, float, float]:
    """Run a fleet command; (wall seconds, peak MB of all its processes, peak MB of the main
    process, highest peak MB of one worker, CPU seconds of all of them). The workers' peaks are
    their VmHWM, read while they run (0 where /proc cannot tell)."""
    peaks: dict[int, int] = {}
    workers: set[int] = set()
    done = threading.Event()
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors, env=tool_env())

        def watch() -> None:
            while not done.wait(0.05):
                _sample_peaks(process.pid, peaks, workers)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(process.pid, 0)  # its workers' CPU too: it waited for them
        seconds = time.perf_counter() - started
        done.set()
        watcher.join()
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(command)} failed: {errors.read().decode()[-800:]}")
    worker_kb = max((kb for pid, kb in peaks.items() if pid in workers), default=0)
    # The processes' own high-water marks: the rusage of a process the benchmark started counts the
    # benchmark's own peak too (see launch.py).
    main_mb = peaks.get(process.pid, 0) / 1024
    return seconds, max(peaks.values(), default=0) / 1024, main_mb, worker_kb / 1024, usage.ru_utime + usage.ru_stime


def _sample_peaks(pid: int, peaks: dict[int, int], workers: set[int]) -> None:
    """Read the high-water mark of resident memory of ``pid`` and of its worker processes (those
    multiprocessing spawned, not its resource tracker)."""
    try:
        children = [
            int(child)
            for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        ]
    except OSError:
        children = []
    for each in (pid, *children):
        try:
            if each != pid and each not in workers and b"spawn_main" in Path(f"/proc/{each}/cmdline").read_bytes():
                workers.add(each)
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue  # gone, or no /proc here
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            peaks[each] = max(peaks.get(each, 0), int(match[1]))


def fleet_targets(results: Results, count: int) -> str:
    """Workload 7 against the targets of issue 12, as ratios with the times beside them."""
    label = next((k for k in results if k.startswith("7. fleet: migrate")), None)
    if label is None:
        return ""
    by_tool = results[label]
    median = {tool: statistics.median(s for s, _ in runs) for tool, runs in by_tool.items() if runs}
    shell = next(tool for tool in by_tool if tool.startswith("shell loop"))
    noop_runs = next(v[FLEET] for k, v in results.items() if k.startswith("7. fleet: the no-op"))
    noop = statistics.median(s for s, _ in noop_runs)
    memory = next(v for k, v in results.items() if k.startswith("7. fleet: peak memory"))
    fleet = median[FLEET]
    lines = [
        "\n7. fleet against the targets",
        f"  fleet / floor, 2 processes: {fleet / median[FLEET_FLOOR]:.2f} (target at most 1.3);"
        f" {fleet:.2f} s against {median[FLEET_FLOOR]:.2f} s",
        f"  fleet / floor, 1 process: {fleet / median[FLEET_FLOOR_ALONE]:.2f};"
        f" the floor alone {median[FLEET_FLOOR_ALONE]:.2f} s",
        f"  shell loop / fleet: {median[shell] / fleet:.1f} (target at least 30); {median[shell]:.1f} s scaled",
        f"  fleet per database: {fleet / count * 1000:.2f} ms; shell loop {median[shell] / count * 1000:.1f} ms",
        f"  no-op rerun: {noop / count * 1000:.2f} ms per database (target at most 1); {noop:.2f} s",
    ]
    cpu = next((v for k, v in results.items() if k.startswith(CPU)), {})
    if cpu.get(FLEET) and cpu.get(FLEET_FLOOR):
        used = {name: statistics.median(s for s, _ in runs) / count * 1000 for name, runs in cpu.items() if runs}
        lines.append(
            f"  CPU per database (user and system, all processes): fleet {used[FLEET]:.2f} ms, floor in 2"
            f" processes {used[FLEET_FLOOR]:.2f} ms ({used[FLEET] / used[FLEET_FLOOR]:.2f}x), floor in 1"
            f" {used[FLEET_FLOOR_ALONE]:.2f} ms"
        )
    for name, runs in memory.items():
        peak = max(p for _, p in runs)
        lines.append(f"  peak memory, {name}: " + (f"{peak:.1f} MB" if peak else "not measured (no /proc)"))
    return "\n".join(lines)


def report(results: Results) -> str:
    lines = []
    for workload, by_tool in results.items():
        lines.append(f"\n{workload}")
        reference = next((t for t in by_tool if t.startswith("vcp-migrate")), None)
        base = statistics.median(s for s, _ in by_tool[reference]) if reference else None
        lines.append(f"  {'':40} {'median s':>10} {'x vcp-migrate':>14} {'peak MB':>9}   runs")
        for tool, runs in by_tool.items():
            median = statistics.median(s for s, _ in runs)
            peak = max(p for _, p in runs)
            ratio = f"{median / base:.2f}" if base else "-"
            lines.append(f"  {tool:40} {median:10.3f} {ratio:>14} {peak:9.1f}   {len(runs)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        help="run only these workloads (7: fleets, 8: libSQL, 9: Python migrations, 10: deploy and CI); repeatable",
    )
    arguments = parser.parse_args()
    quick = arguments.quick
    chosen = set(arguments.only or WORKLOADS)
    count, rows, big_mb, reps = (50, 10_000, 20, 1) if quick else (1000, 1_000_000, 1000, 5)
    fleet_count, fleet_sample = (200, 20) if quick else (10_000, 200)
    bin_dir = Path(sys.executable).parent
    tools = every_tool(bin_dir)
    vcp = tools[0]
    assert isinstance(vcp, Vcp)
    print(
        f"vcp-migrate benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}",
        flush=True,
    )
    results: Results = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="vcp-bench-", dir=Path.cwd()) as scratch:
        work = Path(scratch)
        if "1-3" in chosen:
            workloads_1_to_3(tools, count, reps, work, results)
            print(report(results), flush=True)
        if "4-5" in chosen:
            label = f"4. add+backfill a column, then rebuild, {rows:,} rows"
            templates = workload_4(tools, rows, max(1, reps - 2), work, results, label)
            small = f"4. the same on {rows // 100:,} rows (memory)"
            workload_4([vcp], rows // 100, 1, work / "small", results, small)
            workload_5(vcp, templates[vcp.name], rows, big_mb, max(1, reps - 2), work, results)
        if "6" in chosen:
            workload_6(vcp, 48_000 if quick else 480_000, reps, work, results)
        if "7" in chosen:
            workload_7(vcp, fleet_count, fleet_sample, max(1, reps - 2), work, results)
        if "8" in chosen:
            workload_8(vcp, table_migrations(20 if quick else 200), reps, work, results)
        if "9" in chosen:
            workload_9(vcp, tools[1], table_migrations(20 if quick else 200), reps, work, results)
        if "10" in chosen:
            workload_10(vcp, table_migrations(count), 2 if quick else 3 * reps, work, results)
    print(report({k: v for k, v in results.items() if not k.startswith(("1.", "2.", "3."))}), flush=True)
    if "7" in chosen:
        print(fleet_targets(results, fleet_count), flush=True)
    if "8" in chosen:
        print(server_ratio(results), flush=True)
    if "10" in chosen:
        print(deploy_targets(results), flush=True)
    return 0


WORKLOADS = ("1-3", "4-5", "6", "7", "8", "9", "10")


if __name__ == "__main__":
    sys.exit(main())
