"""Workload 9: migrations written in Python, applied to a new database, against the floor running
the same SQL from .sql files (a Python migration costs vcp-migrate loading its module and, before
this release, a new connection after every one)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from .tools import Migration, Results, Tool, Vcp, run


def workload_9(vcp: Vcp, floor: Tool, migrations: list[Migration], reps: int, work: Path, results: Results) -> None:
    """Each migration's up as a Python function executing its statements, against the floor."""
    label = f"9. apply {len(migrations)} Python migrations (the floor: the same SQL)"
    results[label][vcp.name] = []  # vcp-migrate first: the report's ratios are against it
    for rep in range(reps):
        for tool in (vcp, floor) if rep % 2 == 0 else (floor, vcp):
            root = work / f"w9-{rep}-{tool.name.split()[0]}"
            root.mkdir(parents=True)
            if tool is vcp:
                _write_python(root, migrations)
            else:
                tool.write(root, migrations, root / "bench.db")
            results[label][tool.name].append(run(tool.migrate(root, root / "bench.db"), root))
            _check(root / "bench.db", len(migrations), f"{label}, {tool.name}")
            shutil.rmtree(root)


def _write_python(root: Path, migrations: list[Migration]) -> None:
    (root / "migrations").mkdir(parents=True)
    for m in migrations:
        ups = [s.strip() for s in m.up.split(";") if s.strip()]
        text = (
            "def up(connection):\n"
            + "".join(f"    connection.execute({statement!r})\n" for statement in ups)
            + f"\n\ndef down(connection):\n    connection.execute({m.down.rstrip(';')!r})\n"
        )
        (root / "migrations" / f"{m.number:04d}_{m.name}.py").write_text(text)


def _check(db: Path, count: int, what: str) -> None:
    connection = sqlite3.connect(db)
    try:
        found = connection.execute("SELECT count(*) FROM vcp_migrations").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name GLOB 't[0-9]*'")
        made = tables.fetchone()[0]
    finally:
        connection.close()
    if (found, made) != (count, count):
        raise SystemExit(f"{what}: expected {count} history rows and tables, found {found} and {made}")
