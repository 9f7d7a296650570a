"""The floor: vcp-migrate's work done by a minimal script with nothing but sqlite3.

    python floor.py migrate DB DIR       each migration in its own transaction, with its history row
    python floor.py status DB DIR        the history against the files
    python floor.py rollback DB DIR N    the newest N, each in its own transaction
    python floor.py fleet LIST DIR JOBS  migrate each database named in the file LIST (one a
                                         line), in JOBS processes, setting PRAGMA user_version
    python floor.py server URL DIR       migrate the database of the libSQL server at URL through
                                         vcp-migrate's own client (hrana), setting PRAGMA user_version

It writes the same history rows (version, name, checksum, applied_at, execution_ms, file,
source) and makes no checks: it is what the work costs with no tool around it.
"""

import hashlib
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

HISTORY = (
    "CREATE TABLE IF NOT EXISTS vcp_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " checksum TEXT NOT NULL, applied_at TEXT NOT NULL, execution_ms INTEGER NOT NULL, file TEXT, source BLOB)"
)
META = "CREATE TABLE vcp_migrations_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
META_ROWS = "INSERT INTO vcp_migrations_meta (key, value) VALUES ('layout', '2'), ('database_id', ?)"


INSERT_ROW = "INSERT INTO vcp_migrations VALUES (?, ?, ?, ?, ?, ?, ?)"


def history_row(version, path, source, started):
    """The history row vcp-migrate writes for a migration applied from ``path``."""
    elapsed = round((time.perf_counter() - started) * 1000)
    checksum = hashlib.sha256(source).hexdigest()
    return (
        version,
        path.stem.split("_", 1)[1],
        checksum,
        datetime.now(timezone.utc).isoformat(),
        elapsed,
        path.name,
        source,
    )


def sections(path):
    text = path.read_text()
    up, _, down = text.partition("-- migrate:down")
    return up.replace("-- migrate:up", ""), down


def statements(sql):
    chunks, current = [], ""
    for part in sql.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                chunks.append(current)
            current = ""
    return chunks


def files(directory):
    return sorted(Path(directory).glob("*.sql"), key=lambda p: int(p.name.split("_", 1)[0]))


def migrate(connection, directory):
    connection.execute(HISTORY)
    done = {row[0] for row in connection.execute("SELECT version FROM vcp_migrations")}
    for path in files(directory):
        version = int(path.name.split("_", 1)[0])
        if version in done:
            continue
        started = time.perf_counter()
        source = path.read_bytes()
        connection.execute("BEGIN IMMEDIATE")
        for statement in statements(sections(path)[0]):
            connection.execute(statement)
        connection.execute(INSERT_ROW, history_row(version, path, source, started))
        connection.execute("COMMIT")


def status(connection, directory):
    applied = {row[0] for row in connection.execute("SELECT version FROM vcp_migrations")}
    for path in files(directory):
        version = int(path.name.split("_", 1)[0])
        print(version, path.stem, "applied" if version in applied else "pending")


def rollback(connection, directory, count):
    by_version = {int(p.name.split("_", 1)[0]): p for p in files(directory)}
    newest = [
        row[0]
        for row in connection.execute("SELECT version FROM vcp_migrations ORDER BY version DESC LIMIT ?", (count,))
    ]
    for version in newest:
        connection.execute("BEGIN IMMEDIATE")
        for statement in statements(sections(by_version[version])[1]):
            connection.execute(statement)
        connection.execute("DELETE FROM vcp_migrations WHERE version = ?", (version,))
        connection.execute("COMMIT")


def fleet(listing, directory, jobs, part):
    """Migrate every ``jobs``-th database of the list from ``part`` on; part 0 starts the other
    parts as processes of their own. The files are read once per process, as a fleet's worker does."""
    children = []
    if part == 0:
        for other in range(1, jobs):
            command = [sys.executable, __file__, "fleet", listing, directory, str(jobs), str(other)]
            children.append(subprocess.Popen(command))
    loaded = []
    for path in files(directory):
        source = path.read_bytes()
        name = path.stem.split("_", 1)[1]
        checksum = hashlib.sha256(source).hexdigest()
        sql = statements(sections(path)[0])
        loaded.append((int(path.name.split("_", 1)[0]), name, checksum, path.name, source, sql))
    for database in Path(listing).read_text().splitlines()[part::jobs]:
        connection = sqlite3.connect(database, isolation_level=None)
        done = {row[0] for row in connection.execute("SELECT version FROM vcp_migrations")}
        for version, name, checksum, file, source, sql in loaded:
            if version in done:
                continue
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            for statement in sql:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO vcp_migrations VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    version,
                    name,
                    checksum,
                    datetime.now(timezone.utc).isoformat(),
                    round((time.perf_counter() - started) * 1000),
                    file,
                    source,
                ),
            )
            connection.execute(f"PRAGMA user_version = {version}")
            connection.execute("COMMIT")
        connection.close()
    if [child.wait() for child in children].count(0) != len(children):
        sys.exit(1)


def server(url, directory):
    """One stream, one request a statement: the history read once, then for each migration BEGIN
    IMMEDIATE, its statements, its history row, PRAGMA user_version, COMMIT. On a database without
    history, the first transaction also creates the history tables and the meta rows (layout 2 and
    a database id), as vcp-migrate does."""
    from vcp_migrate.backends.hrana import Stream  # the client vcp-migrate uses, as installed

    stream = Stream(url)
    try:
        done = {row[0] for row in stream.execute("SELECT version FROM vcp_migrations").rows}
    except sqlite3.OperationalError:  # no such table: a database without history
        done = None
    for path in files(directory):
        version = int(path.name.split("_", 1)[0])
        if done is not None and version in done:
            continue
        started = time.perf_counter()
        source = path.read_bytes()
        stream.execute("BEGIN IMMEDIATE")
        if done is None:
            stream.execute(HISTORY)
            stream.execute(META)
            stream.execute(META_ROWS, (uuid.uuid4().hex,))
            done = set()
        for statement in statements(sections(path)[0]):
            stream.execute(statement)
        stream.execute(INSERT_ROW, history_row(version, path, source, started))
        stream.execute(f"PRAGMA user_version = {version}")
        stream.execute("COMMIT")
    stream.close()


def main():
    command, database, directory, *rest = sys.argv[1:]
    if command == "fleet":
        fleet(database, directory, int(rest[0]), int(rest[1]) if len(rest) > 1 else 0)
        return
    if command == "server":
        server(database, directory)
        return
    connection = sqlite3.connect(database, isolation_level=None)
    if command == "migrate":
        migrate(connection, directory)
    elif command == "status":
        status(connection, directory)
    else:
        rollback(connection, directory, int(rest[0]))
    connection.close()


if __name__ == "__main__":
    main()
