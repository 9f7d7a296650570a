"""vcp-migrate fleet: which databases a run covers (paths, patterns, --targets-from), and what
it says of those it cannot use; the databases checked after each run."""

from __future__ import annotations

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
