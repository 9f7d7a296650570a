"""Concurrency campaign: 8 processes a phase, mixing migrate, rollback, status and validate on
one database, and holders that keep the database past the waiter's lock timeout. Then the same
rounds again with the processes reaching the database through its name, a symbolic link and a
hard link at once: the run lock is the database file's, so they must still take turns.

Each migration appends to a ledger file when it starts on the real database (not on validate's
throw-away copies, in memory or in the temporary folder): each must appear exactly once per
round going up, and once going down.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from .common import Figures, Timer, sha256, start, vcp

DB = "trading.db"
SYMLINK, HARD_LINK = "trading-symlink.db", "trading-hardlink.db"
MIGRATIONS = 6
STEP = """
import os, time

def _ledger(connection, what):
    path = connection.execute("PRAGMA database_list").fetchone()[2]
    if path and os.path.dirname(path) == os.getcwd():  # the database, not one of validate's copies
        with open("ledger.txt", "a") as ledger:
            ledger.write(what + " " + str(os.getpid()) + "\\n")

def up(connection):
    _ledger(connection, "up {version}")  # first, so a second run counts even if its SQL then fails
    connection.execute("CREATE TABLE t{version} (x)")
    time.sleep(0.05)

def down(connection):
    _ledger(connection, "down {version}")
    connection.execute("DROP TABLE t{version}")
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
        seconds: dict[str, list[float]] = {"status": [], "writers": []}
        notes: list[str] = []
        for aliased in (False, True):
            if aliased:
                _make_aliases(project)
            for _ in range(rounds):
                for phase, expected_history in ((UP_PHASE, list(range(1, MIGRATIONS + 1))), (DOWN_PHASE, [])):
                    names = [(DB, SYMLINK, HARD_LINK)[i % 3] if aliased else DB for i in range(len(phase))]
                    _phase(project, phase, names, expected_history, aliased, failures, notes, seconds)
        overshoots, changed = _timeouts(workdir / "timeouts", timeouts, repeats)
        failures["waiters that changed the database"] = changed
    status_seconds, writer_seconds = seconds["status"], seconds["writers"]
    figures.counts = {
        "rounds": rounds,
        "rounds through the name, a symlink and a hard link at once": rounds,
        "processes per phase": len(UP_PHASE),
        "process runs": 2 * rounds * (len(UP_PHASE) + len(DOWN_PHASE)),
        "status: slowest (s)": round(max(status_seconds), 2),
        "writers: slowest (s)": round(max(writer_seconds), 2),
        "lock-timeout waits measured": len(overshoots),
        "overshoot past the timeout, median (s)": round(statistics.median(overshoots), 3),
        "overshoot past the timeout, max (s)": round(max(overshoots), 3),
    }
    figures.failures = {
        "unexpected errors": failures["unexpected errors"],
        "migrations not run exactly once": failures["migrations not run exactly once"],
        "double runs through a symlink or hard link": failures["double runs through a symlink or hard link"],
        "history not as expected": failures["history not as expected"],
        "readers slower than the lock timeout": sum(s > 30 for s in status_seconds),
        "waiters that changed the database": failures["waiters that changed the database"],
    }
    figures.notes = notes[:5]
    figures.seconds = timer.seconds
    return figures


def _phase(
    project: Path,
    phase: list[str],
    names: list[str],
    expected_history: list[int],
    aliased: bool,
    failures: Counter[str],
    notes: list[str],
    seconds: dict[str, list[float]],
) -> None:
    """Run one phase's commands at once, each on its name of the database, and check the ledger."""
    (project / "ledger.txt").write_text("")
    results = _together(project, phase, names)
    for command, name, (code, elapsed, stderr) in zip(phase, names, results, strict=True):
        seconds["status" if command.startswith("status") else "writers"].append(elapsed)
        if code != 0:
            failures["unexpected errors"] += 1
            notes.append(f"{command} --db {name}: exit {code}: {stderr.strip()[:200]}")
    lines = Counter((project / "ledger.txt").read_text().split("\n")[:-1])
    direction = "up" if phase is UP_PHASE else "down"
    runs = [
        sum(n for line, n in lines.items() if line.startswith(f"{direction} {v} ")) for v in range(1, MIGRATIONS + 1)
    ]
    if runs != [1] * MIGRATIONS or len(lines) != MIGRATIONS:
        failures["migrations not run exactly once"] += 1
        notes.append(f"{direction}{' through aliases' if aliased else ''}: ledger {sorted(lines)}")
    if aliased:
        failures["double runs through a symlink or hard link"] += sum(max(n - 1, 0) for n in runs)
    if _history(project) != expected_history:
        failures["history not as expected"] += 1


def _make_aliases(project: Path) -> None:
    """A symbolic link and a hard link to the database, beside it (a hard link elsewhere could not
    share its lock file: the engine warns about those)."""
    sqlite3.connect(project / DB).close()  # it exists by now, unless there were no plain rounds
    (project / SYMLINK).symlink_to(DB)
    os.link(project / DB, project / HARD_LINK)


def _together(project: Path, commands: list[str], names: list[str]) -> list[tuple[int, float, str]]:
    """Start every command at once, each on its name of the database; their exit codes, wall times and stderr."""
    started = time.monotonic()
    processes = [
        start(*command.split(), "--db", name, "--dir", "migrations", cwd=project)
        for command, name in zip(commands, names, strict=True)
    ]
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
                    seconds = _elapsed(workdir, "migrate", "--allow-existing", "--lock-timeout", str(timeout), expect=1)
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
        self.process = start(
            "migrate", "--db", DB, "--dir", "migrations", "--no-backup", "--allow-existing", cwd=self.workdir
        )
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
