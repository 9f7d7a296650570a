"""vcp-migrate fleet: which databases a run covers (paths, patterns, --targets-from), and what
it says of those it cannot use; the databases checked after each run."""

from __future__ import annotations

import shutil

from .conftest import Project
from .test_fleet import _cli, _consistent, _tenants


def test_a_targets_from_that_cannot_be_read_is_named_once(project: Project) -> None:
    """It was "absent.txt: cannot be read: [Errno 2] No such file or directory: 'absent.txt'":
    the path twice, and Python's errno, where the report's own message said the reason alone."""
    paths = _tenants(project, 1, rows=1)
    (project.root / "lists").mkdir()
    for given, why in (("absent.txt", "No such file or directory"), ("lists", "Is a directory")):
        result = _cli(project, "migrate", "--targets-from", given)
        assert result.exit_code == 2
        assert result.stderr == f"Error: {given}: cannot be read: {why} (give a file with one path a line)\n"
    assert _consistent(paths[0]) == 1


def test_a_pattern_s_matches_leave_out_folders(project: Project) -> None:
    """'tenants/**' matched 'tenants/' and each folder below it: the first failed as "not a
    regular file" and, by default, the fleet started nothing after it."""
    paths = _tenants(project, 2, rows=1)
    below = project.root / "tenants" / "archive" / "old.db"
    below.parent.mkdir()
    shutil.copyfile(paths[0], below)
    result = _cli(project, "migrate", "tenants/**", "--no-dump")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("migrated ") == 3 and "not a regular file" not in result.output
    assert [_consistent(path) for path in (*paths, below)] == [2, 2, 2]
    (project.root / "empty" / "inside").mkdir(parents=True)
    refused = _cli(project, "migrate", "empty/*")
    assert refused.exit_code == 2
    assert "the pattern 'empty/*' matches no file but folders, backups and SQLite's own files" in refused.stderr
    named = _cli(project, "migrate", "empty/inside")  # a folder named, not matched, still fails as one
    assert named.exit_code == 1 and "empty/inside: is not a regular file" in named.stdout
