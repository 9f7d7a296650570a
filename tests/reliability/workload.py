"""The migrations the campaigns run, and the reference state after each version.

Twenty-one migrations on a trades table of ``rows`` rows: schema changes, backfills, data
migrations, Python migrations, two table rebuilds (one under a view and a trigger), and a
non-transactional VACUUM. Every down is the exact inverse of its up, so each version has one
schema and one content, whichever way it was reached.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vcp_migrate import MigrationManager
from vcp_migrate.schema import snapshot, table_digests


def migrations(rows: int) -> dict[str, str]:
    """File name -> content of the workload's migrations."""
    sql = {
        "001_create_trades.sql": f"""
-- migrate:up
CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity INTEGER NOT NULL,
                     price REAL NOT NULL, ts TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO trades SELECT i, 'SYM' || (i % 97), 1 + i % 500, (i % 10000) / 100.0,
                          '2026-01-01T00:00:' || printf('%02d', i % 60) FROM n;
-- migrate:down
DROP TABLE trades;
""",
        "002_index_symbol.sql": """
-- migrate:up
CREATE INDEX trades_symbol ON trades(symbol);
-- migrate:down
DROP INDEX trades_symbol;
""",
        "003_add_pnl.sql": """
-- migrate:up
ALTER TABLE trades ADD COLUMN pnl REAL;
-- migrate:down
ALTER TABLE trades DROP COLUMN pnl;
""",
        "004_backfill_pnl.sql": """
-- migrate:up
UPDATE trades SET pnl = quantity * price / 100.0;
-- migrate:down
UPDATE trades SET pnl = NULL;
""",
        "005_accounts.sql": """
-- migrate:up
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
INSERT INTO accounts SELECT i, 'account ' || i FROM n;
-- migrate:down
DROP TABLE accounts;
""",
        "006_account_of_trade.sql": """
-- migrate:up
ALTER TABLE trades ADD COLUMN account_id INTEGER;
UPDATE trades SET account_id = 1 + id % 100;
-- migrate:down
ALTER TABLE trades DROP COLUMN account_id;
""",
        "008_daily_volume.sql": """
-- migrate:up
CREATE TABLE daily_volume (symbol TEXT PRIMARY KEY, volume INTEGER NOT NULL);
INSERT INTO daily_volume SELECT symbol, sum(quantity) FROM trades GROUP BY symbol;
-- migrate:down
DROP TABLE daily_volume;
""",
        "009_big_trades_view.sql": """
-- migrate:up
CREATE VIEW big_trades AS SELECT id, symbol, quantity FROM trades WHERE quantity > 400;
-- migrate:down
DROP VIEW big_trades;
""",
        "010_audit_trigger.sql": """
-- migrate:up
CREATE TABLE audit (trade_id INTEGER, action TEXT);
CREATE TRIGGER trades_audit AFTER DELETE ON trades BEGIN
    INSERT INTO audit VALUES (old.id, 'delete');
END;
-- migrate:down
DROP TRIGGER trades_audit;
DROP TABLE audit;
""",
        "012_vacuum.sql": """
-- migrate:up transaction:false
VACUUM;
-- migrate:down transaction:false
SELECT 1;
""",
        "013_archive_tenth.sql": """
-- migrate:up
CREATE TABLE trades_archive AS SELECT * FROM trades WHERE id % 10 = 0;
DELETE FROM trades WHERE id % 10 = 0;
DELETE FROM audit;
-- migrate:down
INSERT INTO trades SELECT * FROM trades_archive;
DROP TABLE trades_archive;
""",
        "014_index_ts.sql": """
-- migrate:up
CREATE INDEX trades_ts ON trades(ts);
-- migrate:down
DROP INDEX trades_ts;
""",
        "015_rename_account_name.sql": """
-- migrate:up
ALTER TABLE accounts RENAME COLUMN name TO display_name;
-- migrate:down
ALTER TABLE accounts RENAME COLUMN display_name TO name;
""",
        "016_settings.sql": """
-- migrate:up
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO settings VALUES ('currency', 'USD'), ('fee_bps', '5');
-- migrate:down
DROP TABLE settings;
""",
        "017_fee_change.sql": """
-- migrate:up
UPDATE settings SET value = '7' WHERE key = 'fee_bps';
-- migrate:down
UPDATE settings SET value = '5' WHERE key = 'fee_bps';
""",
        "018_positions.sql": """
-- migrate:up
CREATE TABLE positions AS SELECT symbol, sum(quantity) AS quantity, count(*) AS trades FROM trades GROUP BY symbol;
CREATE UNIQUE INDEX positions_symbol ON positions(symbol);
-- migrate:down
DROP TABLE positions;
""",
        "019_settings_seed.sql": """
-- migrate:up
INSERT INTO settings VALUES ('venue', 'XNYS');
-- migrate:down
DELETE FROM settings WHERE key = 'venue';
""",
        "021_accounts_active.sql": """
-- migrate:up
ALTER TABLE accounts ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
UPDATE accounts SET active = 0 WHERE id % 7 = 0;
-- migrate:down
ALTER TABLE accounts DROP COLUMN active;
""",
    }
    python = {
        "007_rebuild_trades_check.py": REBUILD_WITH_CHECK,
        "011_notional.py": NOTIONAL,
        "020_rebuild_trades_under_view.py": REBUILD_UNDER_VIEW,
    }
    return {**sql, **python}


REBUILD_WITH_CHECK = '''
"""Rebuild trades to add CHECK (quantity > 0): SQLite cannot add a constraint in place."""

COLUMNS = "id, symbol, quantity, price, ts, pnl, account_id"


def rebuild(connection, check):
    connection.execute(
        "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, quantity INTEGER NOT NULL"
        + (" CHECK (quantity > 0)" if check else "")
        + ", price REAL NOT NULL, ts TEXT NOT NULL, pnl REAL, account_id INTEGER)"
    )
    connection.execute(f"INSERT INTO trades_new ({COLUMNS}) SELECT {COLUMNS} FROM trades")
    connection.execute("DROP TABLE trades")
    connection.execute("ALTER TABLE trades_new RENAME TO trades")
    connection.execute("CREATE INDEX trades_symbol ON trades(symbol)")


def up(connection):
    rebuild(connection, check=True)


def down(connection):
    rebuild(connection, check=False)
'''

NOTIONAL = '''
"""A data migration in Python: notional per trade, written in batches."""


def up(connection):
    connection.execute("ALTER TABLE trades ADD COLUMN notional REAL")
    rows = connection.execute("SELECT id, quantity, price FROM trades").fetchall()
    connection.executemany("UPDATE trades SET notional = ? WHERE id = ?", ((q * p, i) for i, q, p in rows))


def down(connection):
    connection.execute("ALTER TABLE trades DROP COLUMN notional")
'''

REBUILD_UNDER_VIEW = '''
"""Rebuild trades (symbol becomes COLLATE NOCASE) under a view and a trigger: drop them, rebuild, recreate."""

COLUMNS = "id, symbol, quantity, price, ts, pnl, account_id, notional"
VIEW = "CREATE VIEW big_trades AS SELECT id, symbol, quantity FROM trades WHERE quantity > 400"
TRIGGER = (
    "CREATE TRIGGER trades_audit AFTER DELETE ON trades BEGIN "
    "INSERT INTO audit VALUES (old.id, 'delete'); END"
)


def rebuild(connection, collate):
    connection.execute("DROP VIEW big_trades")
    connection.execute("DROP TRIGGER trades_audit")
    connection.execute(
        "CREATE TABLE trades_new (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL"
        + (" COLLATE NOCASE" if collate else "")
        + ", quantity INTEGER NOT NULL CHECK (quantity > 0), price REAL NOT NULL, ts TEXT NOT NULL,"
        " pnl REAL, account_id INTEGER, notional REAL)"
    )
    connection.execute(f"INSERT INTO trades_new ({COLUMNS}) SELECT {COLUMNS} FROM trades")
    connection.execute("DROP TABLE trades")
    connection.execute("ALTER TABLE trades_new RENAME TO trades")
    connection.execute("CREATE INDEX trades_symbol ON trades(symbol)")
    connection.execute("CREATE INDEX trades_ts ON trades(ts)")
    connection.execute(VIEW)
    connection.execute(TRIGGER)


def up(connection):
    rebuild(connection, collate=True)


def down(connection):
    rebuild(connection, collate=False)
'''


def write(directory: Path, rows: int) -> Path:
    """Write the workload's migrations into ``directory`` (created); return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in migrations(rows).items():
        (directory / name).write_text(text.lstrip("\n"))
    return directory


@dataclass(frozen=True)
class Reference:
    """The state after each version: a database file, its schema and the digests of its rows."""

    files: dict[int, Path]
    schemas: dict[int, str]
    digests: dict[int, dict[str, str]]

    @property
    def last(self) -> int:
        return max(self.files)


def state(database: Path) -> tuple[str, dict[str, str]]:
    """(schema, row digests) of a database file."""
    connection = sqlite3.connect(database)
    try:
        return snapshot(connection), table_digests(connection)
    finally:
        connection.close()


def build_reference(workdir: Path, rows: int) -> Reference:
    """Migrate one database version by version, keeping a copy after each (so all share one
    database id); then check that rolling back from the end reaches every state exactly."""
    directory = write(workdir / "migrations", rows)
    database = workdir / "reference.db"
    manager = MigrationManager(database, directory, backup=False, dump_schema=False)
    files: dict[int, Path] = {}
    versions = [m["version"] for m in manager.status()]
    for version in [0, *versions]:
        if version:
            manager.migrate(version)  # type: ignore[arg-type]
        copy = workdir / f"at-{version}.db"
        if database.exists():
            shutil.copyfile(database, copy)
        else:
            sqlite3.connect(copy).close()
        files[int(version)] = copy  # type: ignore[call-overload]
    reference = Reference(files, {}, {})
    for version, path in files.items():
        reference.schemas[version], reference.digests[version] = state(path)
    for version in sorted(files, reverse=True)[1:]:
        manager.rollback(to=version)
        assert state(database) == (reference.schemas[version], reference.digests[version]), (
            f"the workload's down to {version} is not the exact inverse of its up"
        )
    return reference
