"""Concurrency campaign: 8 processes a phase, mixing migrate, rollback, status and validate on
one database, and holders that keep the database past the waiter's lock timeout.

Each migration appends to a ledger file when it runs on the real database (not on validate's
copies in memory): each must appear exactly once per round going up, and once going down.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from .common import Figures, Timer, sha256, start, vcp

DB = "trading.db"
MIGRATIONS = 6
STEP = """
import os, time

def _ledger(connection, what):
    if connection.execute("PRAGMA database_list").fetchone()[2]:  # a file, not a copy in memory
        with open("ledger.txt", "a") as ledger:
            ledger.write(what + " " + str(os.getpid()) + "\\n")

def up(connection):
    connection.execute("CREATE TABLE t{version} (x)")
    time.sleep(0.05)
    _ledger(connection, "up {version}")

def down(connection):
    connection.execute("DROP TABLE t{version}")
    _ledger(connection, "down {version}")
"""
SLOW = """
import time
from pathlib import Path

def up(connection):
    connection.execute("CREATE TABLE slow (x)")
    Path("holding").write_text("")
    time.sleep(120)

def down(connection):
    connection.execute("DROP TABLE slow")
"""
UP_PHASE = ["migrate"] * 4 + ["status"] * 2 + ["status --json"] + ["validate"]
DOWN_PHASE = ["rollback --to 0"] * 3 + ["status"] * 3 + ["validate"] * 2


def run(rounds: int, workdir: Path, timeouts: tuple[float, ...] = (0.5, 1.0, 2.0), repeats: int = 3) -> Figures:
    figures = Figures("concurrency")
    with Timer() as timer:
        project = workdir / "concurrency"
        (project / "migrations").mkdir(parents=True)
        for version in range(1, MIGRATIONS + 1):
            (project / "migrations" / f"{version:03d}_step.py").write_text(STEP.format(version=version))
        failures: Counter[str] = Counter()
        status_seconds: list[float] = []
        writer_seconds: list[float] = []
        notes: list[str] = []
        for _ in range(rounds):
            for phase, expected_history in ((UP_PHASE, list(range(1, MIGRATIONS + 1))), (DOWN_PHASE, [])):
                (project / "ledger.txt").write_text("")
                results = _together(project, phase)
                for command, (code, seconds, stderr) in zip(phase, results, strict=True):
                    (status_seconds if command.startswith("status") else writer_seconds).append(seconds)
                    if code != 0:
                        failures["unexpected errors"] += 1
                        notes.append(f"{command}: exit {code}: {stderr.strip()[:200]}")
                lines = Counter((project / "ledger.txt").read_text().split("\n")[:-1])
                direction = "up" if phase is UP_PHASE else "down"
                once = all(
                    sum(n for line, n in lines.items() if line.startswith(f"{direction} {v} ")) == 1
                    for v in range(1, MIGRATIONS + 1)
                )
                if not once or len(lines) != MIGRATIONS:
                    failures["migrations not run exactly once"] += 1
                    notes.append(f"{direction}: ledger {sorted(lines)}")
                if _history(project) != expected_history:
                    failures["history not as expected"] += 1
        overshoots, changed = _timeouts(workdir / "timeouts", timeouts, repeats)
        failures["waiters that changed the database"] = changed
    figures.counts = {
        "rounds": rounds,
        "processes per phase": len(UP_PHASE),
        "process runs": rounds * (len(UP_PHASE) + len(DOWN_PHASE)),
        "status: slowest (s)": round(max(status_seconds), 2),
        "writers: slowest (s)": round(max(writer_seconds), 2),
        "lock-timeout waits measured": len(overshoots),
        "overshoot past the timeout, median (s)": round(statistics.median(overshoots), 3),
        "overshoot past the timeout, max (s)": round(max(overshoots), 3),
    }
    figures.failures = {
        "unexpected errors": failures["unexpected errors"],
        "migrations not run exactly once": failures["migrations not run exactly once"],
        "history not as expected": failures["history not as expected"],
        "readers slower than the lock timeout": sum(s > 30 for s in status_seconds),
        "waiters that changed the database": failures["waiters that changed the database"],
    }
    figures.notes = notes[:5]
    figures.seconds = timer.seconds
    return figures


def _together(project: Path, commands: list[str]) -> list[tuple[int, float, str]]:
    """Start every command at once; their exit codes, wall times and stderr."""
    started = time.monotonic()
    processes = [start(*command.split(), "--db", DB, "--dir", "migrations", cwd=project) for command in commands]
    results = []
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        results.append((process.returncode, time.monotonic() - started, stderr))
    return results


def _history(project: Path) -> list[int]:
    connection = sqlite3.connect(project / DB)
    try:
        return [r[0] for r in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")]
    finally:
        connection.close()


def _timeouts(workdir: Path, timeouts: tuple[float, ...], repeats: int) -> tuple[list[float], int]:
    """A holder keeps the database (another run's lock, or an application's write transaction);
    the waiter must give up close to its --lock-timeout, changing nothing. Returns how far past
    the timeout each waiter gave up, net of its start-up time, and how many changed anything."""
    workdir.mkdir(parents=True)
    (workdir / "migrations").mkdir()
    (workdir / "migrations" / "001_slow.py").write_text(SLOW)
    startup = statistics.median(_elapsed(workdir, "status") for _ in range(3))
    overshoots: list[float] = []
    changed = 0
    for timeout in timeouts:
        for _ in range(repeats):
            for holder in ("run", "application"):
                (workdir / DB).unlink(missing_ok=True)
                sqlite3.connect(workdir / DB).execute("CREATE TABLE app (x)").connection.commit()
                before = sha256(workdir / DB)
                with _holding(workdir, holder):
                    seconds = _elapsed(workdir, "migrate", "--lock-timeout", str(timeout), expect=1)
                changed += sha256(workdir / DB) != before
                overshoots.append(seconds - timeout - startup)
    shutil.rmtree(workdir)
    return overshoots, changed


class _holding:
    def __init__(self, workdir: Path, holder: str) -> None:
        self.workdir, self.holder = workdir, holder

    def __enter__(self) -> None:
        if self.holder == "application":
            self.connection = sqlite3.connect(self.workdir / DB, isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
            return
        (self.workdir / "holding").unlink(missing_ok=True)
        self.process = start("migrate", "--db", DB, "--dir", "migrations", "--no-backup", cwd=self.workdir)
        while not (self.workdir / "holding").exists():
            assert self.process.poll() is None, self.process.communicate()
            time.sleep(0.01)

    def __exit__(self, *_: object) -> None:
        if self.holder == "application":
            self.connection.execute("ROLLBACK")
            self.connection.close()
        else:
            self.process.kill()
            self.process.communicate()
            sqlite3.connect(self.workdir / DB).close()  # recover the killed holder's journal


def _elapsed(workdir: Path, *args: str, expect: int = 0) -> float:
    started = time.monotonic()
    result: subprocess.CompletedProcess[str] = vcp(*args, "--db", DB, "--dir", "migrations", cwd=workdir)
    seconds = time.monotonic() - started
    assert result.returncode == expect, (args, result.returncode, result.stderr)
    return seconds
