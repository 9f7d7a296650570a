"""The pure planner: from files and history to each migration's state and to exact plans."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vcp_migrate.errors import PlanError
from vcp_migrate.models import AppliedMigration, Directory, FileProblem, MigrationFile
from vcp_migrate.planning import application_order, plan_migrate, plan_rollback, status_rows

DIR = Path("migrations")


def files(*versions: int, changed: tuple[int, ...] = ()) -> Directory:
    """A directory holding a file for each version; ``changed`` ones differ from what was applied."""
    found = tuple(
        MigrationFile(v, f"m{v}", DIR / f"{v:03d}_m{v}.sql", f"new{v}" if v in changed else f"sum{v}", b"")
        for v in versions
    )
    return Directory(DIR, found, ())


def applied(*versions: int) -> dict[int, AppliedMigration]:
    return {
        v: AppliedMigration(v, f"m{v}", f"sum{v}", "2026-11-24T12:00:00.000Z", 1, f"{v:03d}_m{v}.sql") for v in versions
    }


@pytest.mark.parametrize(
    ("directory", "history", "states"),
    [
        (files(1, 2, 3), applied(), {1: "pending", 2: "pending", 3: "pending"}),
        (files(1, 2, 3), applied(1, 2), {1: "applied", 2: "applied", 3: "pending"}),
        (files(1, 2, 3), applied(1, 3), {1: "applied", 2: "out-of-order", 3: "applied"}),
        (files(1, 3), applied(1, 2), {1: "applied", 2: "missing", 3: "pending"}),
        (files(1, 2, changed=(2,)), applied(1, 2), {1: "applied", 2: "modified"}),
        (files(), applied(1), {1: "missing"}),
    ],
    ids=["new database", "two applied", "gap is out of order", "file missing", "file edited", "only history"],
)
def test_status_rows_give_each_version_its_state(
    directory: Directory, history: dict[int, AppliedMigration], states: dict[int, str]
) -> None:
    assert {row.version: row.state for row in status_rows(directory, history)} == states


def test_unusable_files_are_invalid_and_listed_last() -> None:
    directory = Directory(
        DIR,
        files(1).migrations,
        (
            FileProblem("name", DIR / "notes.sql", "bad name"),
            FileProblem("unreadable", DIR / "002_locked.sql", "cannot be read", 2),
        ),
    )
    rows = status_rows(directory, applied(1))
    assert [(row.version, row.name, row.state) for row in rows] == [
        (1, "m1", "applied"),
        (2, "locked", "invalid"),
        (None, "notes", "invalid"),
    ]


@pytest.mark.parametrize(
    ("directory", "history", "options", "plan"),
    [
        (files(1, 2, 3), applied(), {}, [1, 2, 3]),
        (files(1, 2, 3), applied(1), {}, [2, 3]),
        (files(1, 2, 3), applied(), {"target": 2}, [1, 2]),
        (files(1, 2, 3), applied(1, 2, 3), {}, []),
        (files(1, 2, 3), applied(1, 3), {"allow_out_of_order": True}, [2]),
        (files(1, 2), applied(1, 2), {"target": 1}, []),
    ],
    ids=["all", "the rest", "up to a target", "nothing to do", "out of order allowed", "target below applied"],
)
def test_plan_migrate(
    directory: Directory, history: dict[int, AppliedMigration], options: dict[str, object], plan: list[int]
) -> None:
    assert [f.version for f in plan_migrate(directory, history, **options)] == plan  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("directory", "history", "options", "refusal"),
    [
        (files(1, 2, changed=(1,)), applied(1), {}, "changed since it was applied on 2026-11-24T12:00:00.000Z"),
        (files(1, 2, 3), applied(1, 3), {}, "version 2 is pending but version 3 is already applied"),
        (files(1, 2), applied(), {"target": 7}, "target=7 is not a migration in migrations"),
    ],
    ids=["modified file", "out of order", "unknown target"],
)
def test_plan_migrate_refuses(
    directory: Directory, history: dict[int, AppliedMigration], options: dict[str, object], refusal: str
) -> None:
    with pytest.raises(PlanError, match=re.escape(refusal)):
        plan_migrate(directory, history, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("directory", "history", "options", "plan"),
    [
        (files(1, 2, 3), applied(1, 2, 3), {}, [3]),
        (files(1, 2, 3), applied(1, 2, 3), {"steps": 2}, [3, 2]),
        (files(1, 2, 3), applied(1, 2, 3), {"to": 1}, [3, 2]),
        (files(1, 2, 3), applied(1, 2, 3), {"to": 0}, [3, 2, 1]),
        (files(1, 2, 3), applied(1, 2), {"to": 3}, []),
        (files(1, 2), applied(1, 2, 3), {"from_history": True}, ["history 3"]),
    ],
    ids=["newest", "two steps", "down to a version", "all", "target above applied", "missing file from history"],
)
def test_plan_rollback(
    directory: Directory, history: dict[int, AppliedMigration], options: dict[str, object], plan: list[object]
) -> None:
    planned = plan_rollback(directory, history, **options)  # type: ignore[arg-type]
    described = [f"history {i.version}" if isinstance(i, AppliedMigration) else i.version for i in planned]
    assert described == plan


@pytest.mark.parametrize(
    ("history", "options", "refusal"),
    [
        (applied(1), {"steps": 2}, "cannot roll back 2: 1 migration(s) applied"),
        (applied(1, 2, 3), {}, "version 3 (m3) is applied but its file is missing from migrations"),
        (applied(1, 2), {"to": 9}, "to=9 is not a migration in migrations"),
    ],
    ids=["more steps than applied", "missing file", "unknown target"],
)
def test_plan_rollback_refuses(history: dict[int, AppliedMigration], options: dict[str, object], refusal: str) -> None:
    with pytest.raises(PlanError, match=re.escape(refusal)):
        plan_rollback(files(1, 2), history, **options)  # type: ignore[arg-type]


def test_a_long_list_of_known_versions_is_cut_short() -> None:
    with pytest.raises(PlanError) as raised:
        plan_rollback(files(*range(1, 1001)), applied(*range(1, 1001)), to=5000)
    message = str(raised.value)
    assert "known versions: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 990 more" in message and len(message) < 200


def test_the_order_of_application_is_applied_at_then_version() -> None:
    """One run applies in version order, several rows in the same millisecond; an out-of-order
    migrate applies a lower version later."""
    history = applied(1, 2, 3, 4)  # all in the same millisecond
    history[2] = history[2]._replace(applied_at="2026-11-24T12:00:00.001Z")
    assert application_order(history) == [1, 3, 4, 2]
    assert [m.version for m in plan_rollback(files(1, 2, 3, 4), history, steps=3)] == [2, 4, 3]


@pytest.mark.parametrize(
    ("stamps", "order"),
    [
        # 3's made a number by hand: it keeps its place after 1 and 2 (it came first, and rollback undid 2)
        ({3: 1795521600}, [1, 2, 3, 4]),
        ({1: b"\x00", 3: "later"}, [1, 2, 3, 4]),
        # 3 applied last (out of order): 2, with no time, comes right after 1, before 4
        ({3: "2026-11-24T12:00:00.005Z", 2: 17.5}, [1, 2, 4, 3]),
        # 2 applied last (out of order): 3, with no time, comes after it (after every one below it)
        ({2: "2026-11-24T12:00:00.005Z", 3: 17.5}, [1, 4, 2, 3]),
        # other forms of a time are that time: SQLite's (UTC), an offset, a lower-case z
        ({1: "2026-11-24 12:00:03", 2: "2026-11-24T08:00:02-04:00", 3: "2026-11-24t12:00:01.000z"}, [4, 3, 2, 1]),
    ],
)
def test_the_order_of_application_reads_each_applied_at_as_a_time(stamps: dict[int, object], order: list[int]) -> None:
    history = applied(1, 2, 3, 4)  # all at 12:00:00.000 but those changed here
    for version, stamp in stamps.items():
        history[version] = history[version]._replace(applied_at=stamp)  # type: ignore[arg-type]
    assert application_order(history) == order
