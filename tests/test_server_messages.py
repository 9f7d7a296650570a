"""What a run on a real libSQL server says when it is stopped outside a migration: the server not
answering the lease's requests, Ctrl-C while it waits for the lease or lets go of it, a bad URL.
Each says what is true at that point, and names only settings the command has."""

from __future__ import annotations

import pytest

from .conftest import Project


@pytest.mark.parametrize(
    ("command", "given", "named"),
    [
        ("status", ["--db", "http://exa mple:8080"], "check --db"),
        ("current", ["--db", "http://exa mple:8080"], "check --db"),
        (
            "migrate",
            ["--db", "http://127.0.0.1:1", "--wait-for-replica", "http://exa mple"],
            "check --wait-for-replica",
        ),
    ],
)
def test_a_bad_url_names_only_the_option_that_holds_it(
    project: Project, command: str, given: list[str], named: str
) -> None:
    """status, which has no --wait-for-replica, was told to check it."""
    result = project.cli(command, *given)
    assert result.exit_code == 2 and f"({named})" in result.output, result.output
    assert ("--wait-for-replica" in result.output) == ("--wait-for-replica" in given)
    assert not project.db.exists()  # nothing was made
