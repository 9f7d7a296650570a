"""Crash campaign: SIGKILL migrate, rollback, redo and restore at random moments, in
rollback-journal and WAL modes, and check what the next process finds.

After each kill: PRAGMA integrity_check is ok; the schema and the rows are exactly those of the
version the history records; the next migrate finishes with the schema and rows of an
uninterrupted run.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .common import Figures, Timer, start, vcp
from .workload import Reference, build_reference, state

OPERATIONS = ("migrate", "rollback", "redo", "restore")
DB = "trading.db"


@dataclass(frozen=True)
class Outcome:
    operation: str
    mode: str
    killed: bool
    mid_transaction: bool
    corrupt: bool = False
    mismatch: bool = False
    diverged: bool = False
    detail: str = ""


def run(kills: int, rows: int, seed: int, workdir: Path, workers: int = 2) -> Figures:
    """Kill processes until ``kills`` of them died before finishing; return the figures."""
    figures = Figures("crash")
    with Timer() as timer:
        reference = build_reference(workdir / "reference", rows)
        durations = _calibrate(reference, workdir / "calibration")
        outcomes: list[Outcome] = []
        rng = random.Random(seed)
        index = 0
        with ThreadPoolExecutor(workers) as pool:
            while sum(o.killed for o in outcomes) < kills and index < kills * 4:
                batch = [(index + i, rng.randrange(2**32)) for i in range(workers * 2)]
                index += len(batch)
                outcomes += pool.map(lambda job: _trial(job[0], job[1], reference, workdir, durations), batch)
    killed = [o for o in outcomes if o.killed]
    by_kind = Counter((o.operation, o.mode) for o in killed)
    figures.counts = {
        "rows in trades": rows,
        "migrations": reference.last,
        "kills": len(killed),
        **{f"kills of {op} ({mode})": by_kind[(op, mode)] for op in OPERATIONS for mode in ("delete", "wal")},
        "kills during a write transaction": sum(o.mid_transaction for o in killed),
        "runs that finished before the kill": len(outcomes) - len(killed),
    }
    figures.failures = {
        "corrupt databases": sum(o.corrupt for o in outcomes),
        "history/schema or data mismatches": sum(o.mismatch for o in outcomes),
        "next migrate did not converge": sum(o.diverged for o in outcomes),
    }
    figures.notes = [o.detail for o in outcomes if o.detail][:5]
    figures.seconds = timer.seconds
    return figures


def _calibrate(reference: Reference, workdir: Path) -> dict[str, float]:
    """How long each operation takes uninterrupted, start-up included: kills land within it."""
    durations = {}
    for operation in OPERATIONS:
        directory = _prepare(workdir / operation, reference, *_scenario(operation, reference, random.Random(0)))
        started = time.monotonic()
        result = vcp(*_arguments(operation, directory, 1), cwd=directory)
        assert result.returncode == 0, result.stderr
        durations[operation] = time.monotonic() - started
        shutil.rmtree(directory)
    return durations


def _scenario(operation: str, reference: Reference, rng: random.Random) -> tuple[int, int]:
    """(version to start from, what the operation takes: steps, or the backup's version)."""
    last = reference.last
    if operation == "migrate":
        return rng.randrange(0, last), 0
    start_at = rng.randrange(1, last + 1)
    if operation == "rollback":
        return start_at, rng.randint(1, start_at)
    if operation == "restore":
        return start_at, rng.choice([v for v in range(1, last + 1) if v != start_at])
    return start_at, 0


def _prepare(directory: Path, reference: Reference, start_at: int, extra: int, mode: str = "delete") -> Path:
    directory.mkdir(parents=True)
    shutil.copytree(reference.files[0].parent / "migrations", directory / "migrations")
    shutil.copyfile(reference.files[start_at], directory / DB)
    connection = sqlite3.connect(directory / DB)
    connection.execute(f"PRAGMA journal_mode = {mode}")
    connection.close()
    if extra and (directory / "migrations").exists() and start_at:
        backups = directory / f"{DB}.backups"
        backups.mkdir(exist_ok=True)
        shutil.copyfile(reference.files[extra], backups / f"20260101T000000.000Z-v{extra}.db")
    return directory


def _arguments(operation: str, directory: Path, extra: int) -> list[str]:
    common = ["--db", DB, "--dir", "migrations", "--lock-timeout", "10"]
    if operation == "rollback":
        return ["rollback", "--steps", str(extra), *common]
    if operation == "restore":
        return ["restore", "--yes", *common]
    return [operation, *common]


def _trial(index: int, seed: int, reference: Reference, workdir: Path, durations: dict[str, float]) -> Outcome:
    rng = random.Random(seed)
    operation = OPERATIONS[index % len(OPERATIONS)]
    mode = ("delete", "wal")[(index // len(OPERATIONS)) % 2]
    start_at, extra = _scenario(operation, reference, rng)
    directory = _prepare(workdir / f"trial-{index}", reference, start_at, extra, mode)
    try:
        process = start(*_arguments(operation, directory, extra), cwd=directory)
        time.sleep(rng.uniform(0, durations[operation]))
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.communicate()
        journal = directory / f"{DB}-journal"
        wal = directory / f"{DB}-wal"
        mid = killed and (
            (journal.exists() and journal.stat().st_size > 0) or (mode == "wal" and _uncommitted_wal(wal))
        )
        return _check(operation, mode, killed, mid, directory, reference)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _uncommitted_wal(wal: Path) -> bool:
    """Whether the WAL holds frames after its last commit: a transaction was being written."""
    if not wal.exists() or wal.stat().st_size <= 32:
        return False
    data = wal.read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    frame = 24 + page_size
    frames = (len(data) - 32) // frame
    if frames == 0:
        return False
    last_header = 32 + (frames - 1) * frame
    return int.from_bytes(data[last_header + 4 : last_header + 8], "big") == 0  # not a commit frame


def _check(operation: str, mode: str, killed: bool, mid: bool, directory: Path, reference: Reference) -> Outcome:
    outcome = Outcome(operation, mode, killed, mid)
    database = directory / DB
    connection = sqlite3.connect(database)  # opening it rolls back a hot journal, as any next process would
    try:
        integrity = connection.execute("PRAGMA integrity_check").fetchall()
        has_history = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'vcp_migrations'").fetchone()
        versions = (
            [r[0] for r in connection.execute("SELECT version FROM vcp_migrations ORDER BY version")]
            if has_history
            else []
        )
    finally:
        connection.close()
    if integrity != [("ok",)]:
        return Outcome(operation, mode, killed, mid, corrupt=True, detail=f"{operation}/{mode}: {integrity[:3]}")
    expected = list(range(1, len(versions) + 1))
    at = len(versions)
    if versions != expected or state(database) != (reference.schemas[at], reference.digests[at]):
        return Outcome(operation, mode, killed, mid, mismatch=True, detail=f"{operation}/{mode}: history {versions}")
    result = vcp("migrate", "--db", DB, "--dir", "migrations", "--lock-timeout", "10", cwd=directory)
    last = reference.last
    if result.returncode != 0 or state(database) != (reference.schemas[last], reference.digests[last]):
        return Outcome(
            operation, mode, killed, mid, diverged=True, detail=f"{operation}/{mode}: {result.stderr.strip()}"
        )
    return outcome
