"""Each tool as its users run it: the same migrations written in its own format, the commands
that apply them, show status and roll back, and ``run``, which times those commands.

Every tool gets the same SQL. The floor is a minimal script with the standard library's sqlite3
doing the same work: one transaction per migration with its history row.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from vcp_migrate.sqltext import split_statements

Results = dict[str, dict[str, list[tuple[float, float]]]]  # workload -> tool -> [(seconds, peak MB)]


LAUNCH = Path(__file__).with_name("launch.py")


def run(commands: list[list[str]], cwd: Path, cpu: list[float] | None = None) -> tuple[float, float]:
    """Run commands one after the other; (wall seconds, peak resident MB of any of them). ``cpu``,
    if given, gets the CPU seconds (user and system) they took, their processes' included."""
    seconds, peak, used = 0.0, 0.0, 0.0
    for command in commands:
        with tempfile.TemporaryFile() as errors:
            took, mb, code, spent = launched(command, cwd, stdout=subprocess.DEVNULL, stderr=errors)
            if code != 0:
                errors.seek(0)
                raise SystemExit(f"{' '.join(command)} failed ({code}): {errors.read().decode()[-800:]}")
        seconds, peak, used = seconds + took, max(peak, mb), used + spent
    if cpu is not None:
        cpu.append(used)
    return seconds, peak


def launched(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, **streams: object
) -> tuple[float, float, int, float]:
    """Run ``command`` through launch.py: (its wall seconds, its own peak resident MB, its exit
    code, the CPU seconds of it and the processes it waited for)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report"
        launcher = [sys.executable, "-S", str(LAUNCH), str(report), *command]
        subprocess.run(launcher, cwd=cwd, env=env or tool_env(), check=True, **streams)  # type: ignore[call-overload]
        seconds, kb, code, cpu = report.read_text().split()
    return float(seconds), int(kb) / 1024, int(code), float(cpu)


def run_on_terminal(command: list[str], cwd: Path, columns: int = 120) -> tuple[float, float]:
    """Run one command with its output on a pseudo-terminal ``columns`` wide, read as a terminal
    would; (wall seconds, peak resident MB)."""
    import pty
    import threading

    primary, secondary = pty.openpty()
    env = {**tool_env(), "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm-256color"}
    output: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: every process closed its end
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        seconds, mb, code, _ = launched(command, cwd, env, stdout=secondary, stderr=secondary)
    finally:
        os.close(secondary)
        reader.join()
        os.close(primary)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed: {b''.join(output).decode(errors='replace')[-800:]}")
    return seconds, mb


def tool_env() -> dict[str, str]:
    """The tools run as their users run them: installed, with bytecode caches."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VCP_MIGRATE_") and k != "PYTHONPATH"}


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    up: str
    down: str


class Tool:
    """A migration tool under test. Commands are argument lists run from ``root``."""

    name = ""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        raise NotImplementedError

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        raise NotImplementedError

    def status(self, root: Path, db: Path) -> list[list[str]]:
        raise NotImplementedError

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        raise NotImplementedError


class Vcp(Tool):
    name = "vcp-migrate"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        (root / "migrations").mkdir(parents=True, exist_ok=True)
        for m in migrations:
            text = f"-- migrate:up\n{m.up}\n-- migrate:down\n{m.down}\n"
            (root / "migrations" / f"{m.number:04d}_{m.name}.sql").write_text(text)

    def _run(self, command: str, db: Path, *extra: str) -> list[str]:
        return [str(self.bin / "vcp-migrate"), command, "--db", str(db), "--dir", "migrations", *extra]

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("migrate", db, "--no-backup", "--no-dump")]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("status", db)]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        return [self._run("rollback", db, "--steps", str(count), "--no-backup", "--no-dump")]


class VcpJson(Vcp):
    name = "vcp-migrate --json"

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("status", db, "--json")]


class Floor(Tool):
    """The same work with nothing but sqlite3: vcp-migrate's files, vcp-migrate's history rows."""

    name = "floor (sqlite3)"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        Vcp(self.bin).write(root, migrations, db)

    def _run(self, command: str, db: Path, *extra: str) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("floor.py")), command, str(db), "migrations", *extra]

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("migrate", db)]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("status", db)]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        return [self._run("rollback", db, str(count))]


class Dbmate(Tool):
    name = "dbmate"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        (root / "db" / "migrations").mkdir(parents=True, exist_ok=True)
        for m in migrations:
            text = f"-- migrate:up\n{m.up}\n-- migrate:down\n{m.down}\n"
            (root / "db" / "migrations" / f"{20260000000000 + m.number}_{m.name}.sql").write_text(text)

    def _run(self, command: str, db: Path) -> list[str]:
        return [str(self.bin / "dbmate"), "--url", f"sqlite:{db}", "--no-dump-schema", command]

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("up", db)]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("status", db)]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        return [self._run("rollback", db)] * count  # dbmate rolls back one migration a run


class Yoyo(Tool):
    name = "yoyo"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        (root / "yoyo").mkdir(parents=True, exist_ok=True)
        for m in migrations:
            (root / "yoyo" / f"{m.number:04d}_{m.name}.sql").write_text(m.up + "\n")
            (root / "yoyo" / f"{m.number:04d}_{m.name}.rollback.sql").write_text(m.down + "\n")

    def _run(self, command: str, db: Path, *extra: str) -> list[str]:
        return [str(self.bin / "yoyo"), command, "--no-config-file", "--database", f"sqlite:///{db}", *extra, "yoyo"]

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("apply", db, "--batch")]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("list", db)]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        first = migrations[-count]
        return [self._run("rollback", db, "--batch", "--revision", f"{first.number:04d}_{first.name}")]


class Alembic(Tool):
    name = "alembic"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        versions = root / "alembic" / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        (root / "alembic.ini").write_text(f"[alembic]\nscript_location = alembic\nsqlalchemy.url = sqlite:///{db}\n")
        (root / "alembic" / "env.py").write_text(ALEMBIC_ENV)
        previous = None
        for m in migrations:
            up = "\n".join(f"    op.execute({s!r})" for s in split_statements(m.up)) or "    pass"
            down = "\n".join(f"    op.execute({s!r})" for s in split_statements(m.down)) or "    pass"
            (versions / f"r{m.number:04d}_{m.name}.py").write_text(
                f'"""{m.name}"""\nfrom alembic import op\n\nrevision = "r{m.number:04d}"\n'
                f"down_revision = {previous!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
                f"def upgrade():\n{up}\n\n\ndef downgrade():\n{down}\n"
            )
            previous = f"r{m.number:04d}"

    def _run(self, *args: str) -> list[str]:
        return [str(self.bin / "alembic"), *args]

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("upgrade", "head")]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [self._run("current")]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        return [self._run("downgrade", f"-{count}")]


ALEMBIC_ENV = textwrap.dedent(
    """
    from alembic import context
    from sqlalchemy import engine_from_config, pool

    config = context.config
    connectable = engine_from_config(
        config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()
    """
)


class Caribou(Tool):
    name = "caribou"

    def write(self, root: Path, migrations: list[Migration], db: Path) -> None:
        (root / "caribou").mkdir(parents=True, exist_ok=True)
        for m in migrations:
            up = "\n".join(f"    connection.execute({s!r})" for s in split_statements(m.up)) or "    pass"
            down = "\n".join(f"    connection.execute({s!r})" for s in split_statements(m.down)) or "    pass"
            (root / "caribou" / f"{20260000000000 + m.number}_{m.name}.py").write_text(
                f"def upgrade(connection):\n{up}\n\n\ndef downgrade(connection):\n{down}\n"
            )

    def migrate(self, root: Path, db: Path) -> list[list[str]]:
        return [[str(self.bin / "caribou"), "upgrade", str(db), "caribou"]]

    def status(self, root: Path, db: Path) -> list[list[str]]:
        return [[str(self.bin / "caribou"), "version", str(db)]]

    def rollback(self, root: Path, db: Path, count: int, migrations: list[Migration]) -> list[list[str]]:
        target = 20260000000000 + migrations[-count - 1].number if count < len(migrations) else 0
        return [[str(self.bin / "caribou"), "downgrade", str(db), "caribou", str(target)]]


def every_tool(bin_dir: Path) -> list[Tool]:
    return [cls(bin_dir) for cls in (Vcp, Floor, Dbmate, Yoyo, Alembic, Caribou)]
