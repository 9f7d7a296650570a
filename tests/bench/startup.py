"""Workload 10: what users feel at every deploy and in CI, on 1,000 applied migrations: ``up`` with
nothing to do, ``status --json``, and the status table on a terminal and piped; each beside
what bounds it from below.

- ``python -c "import sqlite3, click"``: starting Python with what any such command imports;
- the files: that import, then every migration file read and checksummed (``floor_status.py files``),
  so that reading the files costs (this) minus (the import);
- the status floor: status --json's whole work in a minimal script that imports click as a
  command line does (``floor_status.py status``): the files read and checksummed, the history
  read (SQLite parses the database's schema for that: 2,000 objects here), the states, the JSON.

On a terminal the output goes to a pseudo-terminal that is read as a terminal reads it.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from pathlib import Path

from .tools import Migration, Results, Vcp, run, run_on_terminal

LABEL = "10. deploy and CI: {count} applied"
IMPORT = 'python -c "import sqlite3, click"'
FILES = "  the import, then read the files"
STATUS_FLOOR = "  status floor (status --json's work)"
FLOOR_SCRIPT = Path(__file__).with_name("floor_status.py")


def workload_10(vcp: Vcp, migrations: list[Migration], reps: int, work: Path, results: Results) -> None:
    """Each command ``reps`` times, in a rotating order, on one database with every migration applied."""
    root = work / "w10"
    root.mkdir()
    db = root / "bench.db"
    vcp.write(root, migrations, db)
    run(vcp.migrate(root, db), root)
    base = [str(vcp.bin / "vcp-migrate")]
    where = ["--db", str(db), "--dir", "migrations"]
    floor = [sys.executable, str(FLOOR_SCRIPT)]
    commands = {
        "vcp-migrate up, nothing to do": (False, [*base, "up", *where]),
        "vcp-migrate status --json": (False, [*base, "status", "--json", *where]),
        "vcp-migrate status, piped": (False, [*base, "status", *where]),
        "vcp-migrate status, terminal": (True, [*base, "status", *where]),
        "vcp-migrate status --json, terminal": (True, [*base, "status", "--json", *where]),
        IMPORT: (False, [sys.executable, "-c", "import sqlite3, click"]),
        FILES: (False, [*floor, "files", "migrations"]),
        STATUS_FLOOR: (False, [*floor, "status", str(db), "migrations"]),
    }
    label = LABEL.format(count=f"{len(migrations):,}")
    names = list(commands)
    for name in names:
        results[label][name] = []  # in this order in the report
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            on_terminal, command = commands[name]
            results[label][name].append(run_on_terminal(command, root) if on_terminal else run([command], root))
    shutil.rmtree(root)


def deploy_targets(results: Results) -> str:
    """Workload 10 against the targets of issue 14, as ratios with the times beside them."""
    label = next((k for k in results if k.startswith("10. ")), None)
    if label is None:
        return ""
    median = {name: statistics.median(s for s, _ in runs) for name, runs in results[label].items() if runs}
    imports, files_alone = median[IMPORT], median[FILES] - median[IMPORT]
    bound = 1.2 * imports + files_alone
    lines = [
        "\n10. against the targets",
        f"  reading and checksumming the files: {files_alone * 1000:.1f} ms (beside the import, {imports:.3f} s)",
    ]
    for name in ("vcp-migrate up, nothing to do", "vcp-migrate status --json"):
        lines.append(
            f"  {name}: {median[name]:.3f} s = {median[name] / bound:.2f} x (1.2 x the import + the files,"
            f" {bound:.3f} s; target at most 1); {median[name] / median[STATUS_FLOOR]:.2f} x the status floor"
            f" ({median[STATUS_FLOOR]:.3f} s)"
        )
    json_piped, json_terminal = median["vcp-migrate status --json"], median["vcp-migrate status --json, terminal"]
    table, plain = median["vcp-migrate status, terminal"], median["vcp-migrate status, piped"]
    lines.append(f"  status table on a terminal / --json there: {table / json_terminal:.2f} (target at most 1.3)")
    lines.append(f"  status plain text piped / --json piped: {plain / json_piped:.2f} (target at most 1.3)")
    return "\n".join(lines)
