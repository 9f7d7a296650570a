"""Run every reliability campaign and print one table of figures.

    python -m tests.reliability            the full campaigns (the README's figures)
    python -m tests.reliability --quick    the reduced campaigns CI runs on every change

Exits 1 if any failure figure is not 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import bad_input, concurrency, crash, model, rehearsal
from .common import Figures


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability")
    parser.add_argument("--quick", action="store_true", help="the reduced campaigns run in CI")
    parser.add_argument("--seed", type=int, default=20261124)
    arguments = parser.parse_args()
    quick = arguments.quick
    print(_machine(), flush=True)
    results: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="vcp-reliability-") as scratch:
        work = Path(scratch)
        for name, campaign in (
            (
                "crash",
                lambda: crash.run(
                    kills=24 if quick else 200,
                    rows=10_000 if quick else 100_000,
                    seed=arguments.seed,
                    workdir=work / "crash",
                ),
            ),
            (
                "concurrency",
                lambda: concurrency.run(
                    rounds=3 if quick else 20,
                    workdir=work / "concurrency",
                    timeouts=(0.5,) if quick else (0.5, 1.0, 2.0),
                    repeats=2 if quick else 3,
                ),
            ),
            ("bad input", lambda: bad_input.run(work / "bad-input")),
            ("rehearsal", lambda: rehearsal.run(work / "rehearsal")),
            ("model-based", lambda: model.run(examples=30 if quick else 300, steps=15 if quick else 25)),
        ):
            print(f"running the {name} campaign ...", file=sys.stderr, flush=True)
            results.append(campaign())
            print(_table([results[-1]]), flush=True)
    failed = [f for f in results if not f.ok]
    print(
        "RESULT: "
        + ("every failure figure is 0" if not failed else f"failures in {', '.join(f.campaign for f in failed)}")
    )
    return 1 if failed else 0


def _machine() -> str:
    return (
        f"vcp-migrate reliability campaigns, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def _table(results: list[Figures]) -> str:
    lines = []
    for figures in results:
        lines.append(f"\n{figures.campaign} ({figures.seconds:.0f} s)")
        lines += [f"  {key:<60} {value}" for key, value in figures.counts.items()]
        lines += [f"  FAILURES {key:<51} {value}" for key, value in figures.failures.items()]
        lines += [f"    note: {note}" for note in figures.notes]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
