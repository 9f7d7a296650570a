"""Model-based testing: random migration sets, random sequences of commands, and after every
step the history, the schema (and rows), status and PRAGMA user_version must agree."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vcp_migrate import MigrationManager
from vcp_migrate.checks import in_memory
from vcp_migrate.discovery import scan
from vcp_migrate.execution import Runner
from vcp_migrate.loading import load
from vcp_migrate.schema import snapshot, table_digests

KINDS = ("table", "index", "column", "rows", "python")


def migration_text(kind: str, version: int, tables: list[int]) -> tuple[str, str, int | None]:
    """(file name, content, table created) of migration ``version`` of ``kind`` on ``tables``."""
    if kind != "table" and not tables:
        kind = "table"
    target = tables[version % len(tables)] if tables else 0
    if kind == "table":
        up = f"CREATE TABLE m{version} (a INTEGER, b TEXT);\nINSERT INTO m{version} VALUES (1, 'x'), (2, 'y');"
        return f"{version:03d}_table.sql", sql(up, f"DROP TABLE m{version};"), version
    if kind == "index":
        return (
            f"{version:03d}_index.sql",
            sql(f"CREATE INDEX ix{version} ON m{target}(a);", f"DROP INDEX ix{version};"),
            None,
        )
    if kind == "column":
        up = f"ALTER TABLE m{target} ADD COLUMN c{version} INTEGER DEFAULT {version};"
        return f"{version:03d}_column.sql", sql(up, f"ALTER TABLE m{target} DROP COLUMN c{version};"), None
    if kind == "rows":
        up = f"INSERT INTO m{target} (a, b) VALUES ({1000 + version}, 'v{version}');"
        return f"{version:03d}_rows.sql", sql(up, f"DELETE FROM m{target} WHERE a = {1000 + version};"), None
    python = (
        f"def up(connection):\n    connection.execute('CREATE TABLE p{version} (x)')\n"
        f"    connection.executemany('INSERT INTO p{version} VALUES (?)', [(i,) for i in range(3)])\n"
        f"def down(connection):\n    connection.execute('DROP TABLE p{version}')\n"
    )
    return f"{version:03d}_python.py", python, None


def sql(up: str, down: str) -> str:
    return f"-- migrate:up\n{up}\n-- migrate:down\n{down}\n"


class Migrations(RuleBasedStateMachine):
    """The system under test: one directory, one database, driven through the Python API."""

    machines = 0  # counted for the reliability figures
    checks = 0

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.dir = self.root / "migrations"
        self.db = self.root / "model.db"
        self.manager = MigrationManager(self.db, self.dir, backup=False, dump_schema=False)

    @initialize(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    def write_migrations(self, kinds: list[str]) -> None:
        self.dir.mkdir()
        tables: list[int] = []
        for version, kind in enumerate(kinds, 1):
            name, text, created = migration_text(kind, version, tables)
            (self.dir / name).write_text(text)
            tables += [created] if created else []

    def versions(self) -> list[int]:
        return [m.version for m in scan(self.dir).migrations]

    def applied(self) -> list[int]:
        if not self.db.exists():
            return []
        return [int(row["version"]) for row in self.manager.status() if row["applied"]]  # type: ignore[call-overload]

    @rule()
    def migrate(self) -> None:
        self.manager.migrate()

    @rule(data=st.data())
    def migrate_to(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.versions()))
        self.manager.migrate(target)

    @precondition(lambda self: self.applied())
    @rule(data=st.data())
    def rollback_steps(self, data: st.DataObject) -> None:
        self.manager.rollback(data.draw(st.integers(1, len(self.applied()))))

    @precondition(lambda self: self.db.exists())
    @rule(data=st.data())
    def rollback_to(self, data: st.DataObject) -> None:
        self.manager.rollback(to=data.draw(st.sampled_from([0, *self.versions()])))

    @precondition(lambda self: self.applied())
    @rule()
    def redo(self) -> None:
        self.manager.redo()

    @rule(name=st.from_regex(r"[A-Za-z][A-Za-z ]{0,12}", fullmatch=True))
    def new(self, name: str) -> None:
        path = self.manager.new(name, sql=len(name) % 2 == 0)
        assert path.parent == self.dir and path.exists()

    @precondition(lambda self: self.db.exists() and not self.applied())
    @rule(data=st.data())
    def baseline(self, data: st.DataObject) -> None:
        """Adopt a database whose schema the application built before the tool: build it with the
        migrations, forget the history, then baseline it."""
        target = data.draw(st.sampled_from(self.versions()))
        self.manager.migrate(target)
        connection = sqlite3.connect(self.db)
        connection.execute("DELETE FROM vcp_migrations")
        connection.execute("PRAGMA user_version = 0")
        connection.commit()
        connection.close()
        assert self.manager.baseline(target) == [v for v in self.versions() if v <= target]

    @invariant()
    def history_schema_status_and_user_version_agree(self) -> None:
        if not self.db.exists():
            return
        connection = sqlite3.connect(self.db)
        try:
            has_history = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'vcp_migrations'").fetchone()
            history = (
                [r[0] for r in connection.execute("SELECT version FROM vcp_migrations ORDER BY 1")]
                if has_history
                else []
            )
            user_version = connection.execute("PRAGMA user_version").fetchone()[0]
            live = (snapshot(connection), table_digests(connection))
        finally:
            connection.close()
        assert history == self.applied()
        assert history == self.versions()[: len(history)], "applied migrations are not a prefix"
        assert user_version == max(history, default=0)
        assert live == self.expected(history)
        Migrations.checks += 1

    def expected(self, history: list[int]) -> tuple[str, dict[str, str]]:
        """Schema and rows of the applied migrations, replayed on an empty database in memory."""
        files = {m.version: m for m in scan(self.dir).migrations}
        session = in_memory()
        try:
            runner = Runner(session, user_version=False)
            for version in history:
                assert runner.one(load(files[version]), "up", earlier=0).error is None
            return snapshot(session.connection), table_digests(session.connection)
        finally:
            session.close()

    def teardown(self) -> None:
        Migrations.machines += 1
        shutil.rmtree(self.root, ignore_errors=True)


Migrations.TestCase.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestMigrations = Migrations.TestCase
