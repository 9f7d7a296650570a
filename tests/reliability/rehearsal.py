"""Rehearsal campaign: migrations that try to write other files, run only through the commands
that rehearse (validate, validate --roundtrip, dry runs), as real processes.

Nothing a rehearsal runs may write a file: each case must leave every file under the project
byte-identical (the live database included), and must never be reported as rehearsed cleanly.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from .common import Figures, Timer, sha256, tree, vcp

DB = "trading.db"
BASE = "-- migrate:up\nCREATE TABLE a (x);\n-- migrate:down\nDROP TABLE a;\n"

# What each attack migration does; {db} is the live database's absolute path.
ATTACKS = {
    "attach a new file and write to it": (
        "-- migrate:up\nATTACH 'side.db' AS side;\nCREATE TABLE side.t (x);\nINSERT INTO side.t VALUES (1);\n"
        "-- migrate:down\nSELECT 1;\n"
    ),
    "attach the live database and write to it": (
        "-- migrate:up\nATTACH '{db}' AS live;\nINSERT INTO live.a VALUES (1);\n-- migrate:down\nSELECT 1;\n"
    ),
    "attach through a file: URI": (
        "-- migrate:up\nATTACH 'file:uri.db?mode=rwc' AS u;\nCREATE TABLE u.t (x);\n-- migrate:down\nSELECT 1;\n"
    ),
    "VACUUM INTO a file": (
        "-- migrate:up transaction:false\nVACUUM INTO 'copy.db';\n-- migrate:down transaction:false\nSELECT 1;\n"
    ),
    "Python migration attaching a file": (
        "def up(c):\n    c.execute(\"ATTACH 'py.db' AS p\")\n    c.execute('CREATE TABLE p.t (x)')\n\n"
        "def down(c):\n    pass\n"
    ),
    "Python migration catching the refusal, then attaching again": (
        "import sqlite3\n\ndef up(c):\n    try:\n        c.execute(\"ATTACH 'py2.db' AS p\")\n"
        "    except sqlite3.Error:\n        pass\n    c.execute('CREATE TABLE b (x)')\n\n"
        "def down(c):\n    c.execute('DROP TABLE b')\n"
    ),
}
COMMANDS = (
    ("validate",),
    ("validate", "--roundtrip"),
    ("migrate", "--dry-run"),
    ("migrate", "--dry-run", "--sql"),
)


def _project(root: Path, attack: str) -> None:
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "001_a.sql").write_text(BASE)
    result = vcp("migrate", "--db", DB, "--dir", "migrations", "--no-backup", "--no-dump", cwd=root)
    assert result.returncode == 0, result.stderr
    suffix = ".sql" if attack.startswith("-- migrate") else ".py"
    (root / "migrations" / f"002_attack{suffix}").write_text(attack.replace("{db}", str(root / DB)))


def check(attack: str, command: tuple[str, ...], root: Path) -> list[str]:
    """Run one rehearsal of one attack; the kinds of failure it shows."""
    _project(root, attack)
    database, files = sha256(root / DB), tree(root)
    result = vcp(*command, "--db", DB, "--dir", "migrations", cwd=root, timeout=120)
    failures = []
    if sha256(root / DB) != database:
        failures.append("live database changed")
    if tree(root) != files:
        failures.append("file written")
    if "cannot be rehearsed" not in result.stdout + result.stderr:
        failures.append("reported as rehearsed")
    if "Traceback" in result.stdout + result.stderr:
        failures.append("traceback")
    return failures


def run(workdir: Path) -> Figures:
    figures = Figures("rehearsal side effects")
    with Timer() as timer:
        kinds: Counter[str] = Counter()
        notes = []
        runs = 0
        for name, attack in ATTACKS.items():
            for command in COMMANDS:
                root = workdir / f"case-{runs}"
                runs += 1
                try:
                    found = check(attack, command, root)
                finally:
                    shutil.rmtree(root, ignore_errors=True)
                kinds.update(found)
                if found:
                    notes.append(f"[{name}: {' '.join(command)}] {', '.join(found)}")
    figures.counts = {"attacks": len(ATTACKS), "rehearsals (attack x command)": runs}
    figures.failures = {
        kind: kinds[kind] for kind in ("live database changed", "file written", "reported as rehearsed", "traceback")
    }
    figures.notes = notes
    figures.seconds = timer.seconds
    return figures
