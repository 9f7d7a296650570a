"""repair: show how applied files changed and record their new checksums once confirmed."""

from __future__ import annotations

import pytest

from vcp_migrate import PlanError

from .conftest import Project, three


def test_repair_shows_the_diff_and_records_after_confirmation(project: Project) -> None:
    three(project)
    project.manager().migrate()
    project.sql("002_b.sql", "CREATE TABLE b(x); -- reviewed: comment only", "DROP TABLE b;")
    declined = project.cli("repair")  # no terminal to answer: nothing is recorded
    assert declined.exit_code == 1
    assert declined.stderr.strip() == (
        "Error: aborted: no answer to the question; nothing was changed (pass --yes to skip questions)"
    )
    assert (
        "-CREATE TABLE b(x);" in declined.stdout and "+CREATE TABLE b(x); -- reviewed: comment only" in declined.stdout
    )
    assert project.manager().status()[1]["state"] == "modified"
    answered_no = project.cli("repair", input="n\n")
    assert answered_no.exit_code == 0 and "Recorded new checksums: nothing." in answered_no.stdout
    result = project.cli("repair", "--yes")
    assert result.exit_code == 0 and "Recorded new checksums: 2." in result.stdout
    assert project.manager().status()[1]["state"] == "applied"
    assert project.manager().migrate() == []
    with pytest.raises(PlanError, match="version 1 is not an applied migration whose file changed"):
        project.manager().repair([1])
