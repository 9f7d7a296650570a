"""The floor of deploy-time and CI commands (workload 10), apart from floor.py so that it imports
only what it uses: sqlite3 and click (as a command line does), os, hashlib and json.

    python floor_status.py files DIR          read and checksum every migration file: beside
                                              python -c "import sqlite3, click", what reading the files costs
    python floor_status.py status DB DIR      status --json's work: the files read and checksummed,
                                              the history read, each state decided, one JSON array printed
"""

import hashlib
import os
import sqlite3
import sys

import click  # noqa: F401 - a command line imports it: the floor pays for it as vcp-migrate does


def checksums(directory):
    """Each file's version, name, path and checksum (sha256 of its text with LF line ends)."""
    found = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        with open(path, "rb") as file:
            source = file.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        version, _, rest = name.partition("_")
        found[int(version)] = (rest.rpartition(".")[0], path, hashlib.sha256(source).hexdigest())
    return found


def status(database, directory):
    import json

    found = checksums(directory)
    connection = sqlite3.connect(database)
    query = "SELECT version, name, checksum, applied_at, execution_ms FROM vcp_migrations ORDER BY version"
    applied = {row[0]: row for row in connection.execute(query)}
    connection.close()
    rows = []
    for version in sorted(found.keys() | applied.keys()):
        file, row = found.get(version), applied.get(version)
        state = "missing" if not file else "pending" if not row else "applied" if row[2] == file[2] else "modified"
        rows.append(
            {
                "version": version,
                "name": file[0] if file else row[1],
                "state": state,
                "applied": row is not None,
                "applied_at": row[3] if row else None,
                "execution_ms": row[4] if row else None,
                "checksum": file[2] if file else None,
                "applied_checksum": row[2] if row else None,
                "file": file[1] if file else None,
            }
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    if sys.argv[1] == "files":
        checksums(sys.argv[2])
    else:
        status(sys.argv[2], sys.argv[3])
